"""The producer-buffer guard of streams/faust_guards.py on a real Faust ProducerBuffer,
with a sender slower than Faust's 100 ms patience, as a busy 2-core machine is."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from streams.faust_guards import drain_on_flush


async def slow_buffer(sent: list[Any]) -> Any:
    app = faust.App("guards-test", store="memory://", autodiscover=False)
    buffer = app.producer.buffer

    async def slow_send(fut: Any) -> None:
        await asyncio.sleep(0.15)
        sent.append(fut)

    buffer._send_pending = slow_send
    return buffer


async def test_fausts_own_flush_returns_with_messages_still_buffered() -> None:
    """Why the guard exists: if this starts failing, Faust fixed it and the guard can go."""
    sent: list[Any] = []
    buffer = await slow_buffer(sent)
    await buffer.start()
    try:
        for i in range(3):
            buffer.pending.put_nowait(i)
        await buffer.flush()
        assert len(sent) < 3
    finally:
        while len(sent) < 3:  # let the sender finish: stopping flushes and refuses leftovers
            await asyncio.sleep(0.05)
        await buffer.stop()


async def test_guarded_flush_returns_only_when_everything_was_handed_on() -> None:
    sent: list[Any] = []
    buffer = await slow_buffer(sent)
    drain_on_flush(buffer)
    await buffer.start()
    try:
        for i in range(3):
            buffer.pending.put_nowait(i)
        await buffer.flush()
        assert sent == [0, 1, 2]
    finally:
        await buffer.stop()
