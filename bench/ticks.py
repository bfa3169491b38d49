"""Many owners metered by a real worker, then a tick over them all: how long the worker's
loop was held.

Each owner adds its ledgers, R-trees and contracts to the worker's memory (~200 objects
the garbage collector tracks), and the collector's full passes walk them all, holding the
loop (streams/collector.py). A tick sends a snapshot of every (owner, product, scope, day)
changed since the last one; at a day's end, or at the first tick after a takeover, that is
every owner the partition served that day at once: ~9 snapshots for an owner with two
users, each with its bookkeeping write. Here the worker ticks every 60 s, so the tick
after a burst of events from many owners carries them all, as a day's end does.
`/health` is asked every 10 ms during the burst, and from its end to the tick's last
snapshot: the slowest answers are the longest the loop was held. Then a second worker
joins the group and takes half the partitions: the first drops their owners' Meters, and
`/health` is asked on the first until it has. Issue 9 asks that nothing hold the loop
over 100 ms. Run `make bench-ticks`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from shapely.geometry import box, mapping

from bench.check import FIELD
from bench.goals import verdict
from bench.pipeline import tail_consumer
from bench.probe import Bench, loop_held, on_one_worker
from bench.scenes import GOAL_MS, records
from schemas.codec import dumps
from streams.topics import DAILY_TOPIC

TICK_SECONDS = 60.0
EVENTS_AN_OWNER = 3
QUIET_S = 3.0  # no snapshot for this long after the tick: its sends are over


def owner(n: int) -> str:
    return f"ticks-{n}@example.com"


def events(owners: int, rng: random.Random) -> list[dict[str, Any]]:
    """A few fields for each of many owners, two users each."""
    now = datetime.now(UTC).isoformat()
    return [{"id": f"t{n}-{i}", "type": "fieldBoundaryCreated", "timestamp": now,
             "apiOwner": owner(n), "leafUserId": f"u{i % 2}", "fieldId": f"f{i}",
             "geometry": mapping(box(lon := 10 + rng.random(), lat := 40 + rng.random(),
                                     lon + FIELD[0], lat + FIELD[1]))}
            for n in range(owners) for i in range(EVENTS_AN_OWNER)]


async def snapshots_after_tick(consumer: AIOKafkaConsumer) -> tuple[int, float]:
    """Snapshots until none came for QUIET_S, and how long they took from the first: the
    burst is metered within a tick period, so they are the next tick's."""
    count, first, last = 0, 0.0, time.monotonic()
    while count == 0 or time.monotonic() - last < QUIET_S:
        batch = await consumer.getmany(timeout_ms=500)
        found = sum(len(ms) for ms in batch.values())
        if found:
            last = time.monotonic()
            first = first or last
            count += found
            sys.stderr.write(f"\r  snapshots: {count}")
    sys.stderr.write("\n")
    return count, last - first


async def rebalanced(bench: Bench) -> None:
    """A second worker joins; returns QUIET_S after the first has given up its share of
    the partitions, and dropped their Meters, and stopped rebalancing."""
    async with aiohttp.ClientSession() as session:
        before = await ready(session, bench.url("/ready"))
        await asyncio.to_thread(bench.join)
        while True:
            now = await ready(session, bench.url("/ready"))
            reasons = {problem["reason"] for problem in now["not_ready"]}
            if now["assigned"] < before["assigned"] and "rebalancing" not in reasons:
                break
            await asyncio.sleep(0.1)
    await asyncio.sleep(QUIET_S)


async def ready(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def run(bench: Bench, *, owners: int) -> None:
    consumer = await tail_consumer(bench.bootstrap, "usage.records")
    daily = await tail_consumer(bench.bootstrap, DAILY_TOPIC)
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        async with loop_held(bench.health) as burst:
            for ev in events(owners, random.Random(1)):
                await producer.send("events.field-boundaries", dumps(ev),
                                    key=ev["apiOwner"].encode())
            await records(consumer, owners * EVENTS_AN_OWNER, lambda _: True)
        metered = time.monotonic() - started
        async with loop_held(bench.health) as tick:
            count, took = await snapshots_after_tick(daily)
        print(f"{owners:,} owners x {EVENTS_AN_OWNER} events metered in {metered:.1f} s, the "
              f"slowest /health answer meanwhile {burst.ms:.0f} ms; the tick after them sent "
              f"{count:,} snapshots in {took:.1f} s, the slowest /health answer from the "
              f"burst's end to the last snapshot {tick.ms:.0f} ms (goal < {GOAL_MS:.0f} ms: "
              f"{verdict(max(burst.ms, tick.ms) < GOAL_MS)})")
        async with loop_held(bench.health) as rebalance:
            await rebalanced(bench)
        print(f"a second worker joined: the slowest /health answer of the first, from the "
              f"join until it gave up its share of the owners, {rebalance.ms:.0f} ms "
              f"(goal < {GOAL_MS:.0f} ms: {verdict(rebalance.ms < GOAL_MS)})")
    finally:
        await producer.stop()
        await consumer.stop()
        await daily.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, default=1_000)
    owners = parser.parse_args().owners
    on_one_worker("ticks", partial(run, owners=owners),
                  env={"ACREAGE_TICK_SECONDS": str(TICK_SECONDS)})


if __name__ == "__main__":
    main()
