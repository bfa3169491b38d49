"""How long the worker's loop was held, seen from outside: the slowest answer to a cheap
request asked at a steady pace. Every request is served on the loop that also meters,
so a loop held for a second answers a second late."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from bench.goals import report_load
from tests.support.kafka import Broker, Worker


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


def on_one_worker(
    name: str, run: Callable[[str, str], Coroutine[Any, Any, None]],
    env: dict[str, str] | None = None,
) -> None:
    """`run(bootstrap, health_url)` against a broker and one worker started for it in a
    scratch directory, the machine's load printed before and after."""
    report_load("before")
    root = Path(tempfile.mkdtemp(prefix=f"acreage-{name}-"))
    broker = Broker(root / "kafka").start()
    worker = Worker(broker, "bench", root / "worker", extra_env=env or {}).start()
    try:
        asyncio.run(run(broker.bootstrap, f"http://127.0.0.1:{worker.web_port}/health"))
    finally:
        worker.stop()
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    report_load("after")
