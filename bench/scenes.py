"""A satellite scene, or a field as wide, metered by a real worker: how long the
worker's loop was held.

A scene's add cuts it into ~512 pieces a square degree in each of its four ledgers
(`make bench-check`: 0.2-1.5 s a ledger), ~3,000 table writes in all. The worker meters
it in a thread and stores the writes a slice at a time (streams/holder.py), so its loop
keeps answering every owner and the broker; `/health`, asked every 10 ms while the scene
is metered, says how long the loop was held at most. A field as wide as a scene is
metered in the thread too, its delete included. Issue 9 asks that no request hold
the loop over 100 ms. Run `make bench-scenes`.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from shapely.geometry import box, mapping

from bench.check import FIELD
from bench.goals import verdict
from bench.pipeline import tail_consumer
from bench.probe import Bench, loop_held, on_one_worker
from schemas.codec import dumps, loads

OWNER = "scenes@example.com"
FIELDS = 2_000
GOAL_MS = 100.0


def event(kind: str, n: int, geometry: Any, **ids: str) -> dict[str, Any]:
    shape = {} if geometry is None else {"geometry": mapping(geometry)}
    return {"id": f"{kind}-{n}", "type": kind, "timestamp": datetime.now(UTC).isoformat(),
            "apiOwner": OWNER, "leafUserId": "u1", **shape, **ids}


def wide(n: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Events as wide as a square degree, each timed alone: two scenes, then a field over
    the fields and its delete (no shape in the event, but the field's is taken out of the
    live union, which unites again the 2,000 under it)."""
    scene, field = "satelliteImageProcessingFinished", "fieldBoundaryCreated"
    return [
        ("1°x1° scene over 2,000 fields", "events.satellite",
         event(scene, n, box(10, 40, 11, 41), imageId="img-0", provider="planet")),
        ("1°x1° scene on open ground", "events.satellite",
         event(scene, n + 1, box(20, 40, 21, 41), imageId="img-1", provider="planet")),
        ("1°x1° field over 2,000 fields", "events.field-boundaries",
         event(field, n + 2, box(10, 40, 11, 41), fieldId="wide")),
        ("the same field deleted", "events.field-boundaries",
         event("fieldBoundaryDeleted", n + 3, None, fieldId="wide")),
    ]


def fields(rng: random.Random) -> list[dict[str, Any]]:
    """Fields scattered over the square degree the first scene covers."""
    return [event("fieldBoundaryCreated", i,
                  box(lon := 10 + rng.random(), lat := 40 + rng.random(),
                      lon + FIELD[0], lat + FIELD[1]), fieldId=f"f{i}")
            for i in range(FIELDS)]


async def records(consumer: AIOKafkaConsumer, wanted: int,
                  ours: Callable[[str], bool] = OWNER.__eq__) -> None:
    seen = 0
    while seen < wanted:
        batch = await consumer.getmany(timeout_ms=500)
        found = sum(1 for ms in batch.values() for m in ms if ours(loads(m.value)["apiOwner"]))
        if found:
            seen += found
            sys.stderr.write(f"\r  usage records: {seen}/{wanted}")
    sys.stderr.write("\n")


async def run(bench: Bench) -> None:
    consumer = await tail_consumer(bench.bootstrap, "usage.records")
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, linger_ms=5)
    await producer.start()
    try:
        for ev in fields(random.Random(1)):
            await producer.send("events.field-boundaries", dumps(ev), key=OWNER.encode())
        await records(consumer, FIELDS)
        for label, topic, body in wide(FIELDS):
            async with loop_held(bench.health) as held:
                started = time.monotonic()
                await producer.send_and_wait(topic, dumps(body), key=OWNER.encode())
                await records(consumer, 1)
                took = time.monotonic() - started
            print(f"{label}: metered {took:.2f} s after its send; the slowest /health answer "
                  f"meanwhile {held.ms:.0f} ms (goal < {GOAL_MS:.0f} ms: "
                  f"{verdict(held.ms < GOAL_MS)})")
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    on_one_worker("scenes", run)


if __name__ == "__main__":
    main()
