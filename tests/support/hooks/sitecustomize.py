"""Loaded by the fault matrix's worker subprocesses only (this folder is put on their
PYTHONPATH): while the file named by ACREAGE_TEST_HOLD_CHANGELOG exists, Faust's producer
buffer holds back every changelog message, as a busy worker's buffer does for a moment.
Faust commits offsets after a buffer flush that gives up after 100 ms, so without
streams/acks.py such a commit covers table writes that never reached Kafka."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from faust.transport.producer import ProducerBuffer

_HOLD = Path(os.environ["ACREAGE_TEST_HOLD_CHANGELOG"])
_send = ProducerBuffer._send_pending


async def _held(self: ProducerBuffer, fut: Any) -> None:
    if fut.message.channel.get_topic_name().endswith("-changelog"):
        while _HOLD.exists():
            await asyncio.sleep(0.05)
    await _send(self, fut)


ProducerBuffer._send_pending = _held  # type: ignore[method-assign]
