"""Clock ticks: the leader sends one to every metering partition, so snapshots are
emitted from inside stream processing, where table writes are allowed and ordered."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.codec import dumps
from schemas.internal import TickMessage
from streams.runtime import Runtime


def register(rt: Runtime) -> None:
    @rt.app.timer(rt.settings.tick_seconds, on_leader=True)
    async def tick() -> None:
        await send_ticks(rt, datetime.now(UTC))


async def send_ticks(rt: Runtime, now: datetime) -> None:
    """Addressed by partition, not keyed by owner: every partition's Meter needs the
    clock, including partitions no owner has written to yet. Apart from the timer, tests
    send these to drive the metering agent's clock themselves."""
    value = dumps(TickMessage(now=now).model_dump(mode="json"))
    for partition in range(rt.settings.partitions):
        await rt.metering.send(key=None, value=value, partition=partition)
