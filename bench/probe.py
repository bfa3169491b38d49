"""How long the worker's loop was held, seen from outside: the slowest answer to a cheap
request asked at a steady pace. Every request is served on the loop that also meters,
so a loop held for a second answers a second late."""

from __future__ import annotations

import asyncio
import time

import aiohttp


async def slowest_answer(url: str, done: asyncio.Event, every_s: float = 0.1) -> float:
    """The slowest of the worker's answers to `url` asked every `every_s`, from its first."""
    slowest = 0.0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        while not done.is_set():
            asked = time.monotonic()
            try:
                async with session.get(url) as resp:
                    await resp.read()
                slowest = max(slowest, time.monotonic() - asked)
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(every_s)
    return slowest
