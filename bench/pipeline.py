"""Whole-pipeline benchmark on the real broker: throughput, snapshot latency, recovery.

Issue 9's throughput goal is >= 1,500 boundary events/s per worker through the real
broker: one worker here, events from ingest's topic to usage records out, so the figure
includes Kafka, ingest, the table's changelog and the records' sends, not just metering.
Run with `make bench-pipeline` (or `python -m bench.pipeline --events 5000`). Prints
figures; asserts nothing. Recovery of a large state is bench.takeover's.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.goals import report_load, verdict
from schemas.codec import dumps, loads
from tests.support.kafka import Broker, Worker
from tests.support.scenario import load_features

GOAL_EVENTS_PER_S = 1_500.0


def boundary_events(owner: str, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{owner}:{i}",
            "type": "fieldBoundaryCreated",
            "timestamp": "2026-03-02T10:00:00Z",
            "apiOwner": owner,
            "leafUserId": f"user-{i % 2}",
            "fieldId": f"f{i}",
            "geometry": f["geometry"],
        }
        for i, f in enumerate(features)
    ]


async def tail_consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.1)
    for tp in consumer.assignment():
        await consumer.seek_to_end(tp)
    return consumer


async def throughput(bootstrap: str, events: list[dict[str, Any]]) -> float:
    """Events/s from the first send until the last usage record came out."""
    consumer = await tail_consumer(bootstrap, "usage.records")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    owner = events[0]["apiOwner"]
    started = time.perf_counter()
    for ev in events:
        await producer.send("events.field-boundaries", dumps(ev), key=owner.encode())
    await producer.flush()
    seen = 0
    while seen < len(events):
        batch = await consumer.getmany(timeout_ms=1000)
        seen += sum(
            1 for msgs in batch.values() for m in msgs if loads(m.value)["apiOwner"] == owner
        )
        sys.stderr.write(f"\rpipeline: {seen}/{len(events)} records")
    elapsed = time.perf_counter() - started
    sys.stderr.write("\n")
    await producer.stop()
    await consumer.stop()
    return len(events) / elapsed


async def snapshot_latency(bootstrap: str, features: list[dict[str, Any]], n: int) -> list[float]:
    """Seconds from sending an event to its owner's first provisional snapshot."""
    consumer = await tail_consumer(bootstrap, "usage.consumption-daily")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    sent: dict[str, float] = {}
    latencies: list[float] = []

    async def collect() -> None:
        while len(latencies) < n:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    owner = loads(m.value)["apiOwner"]
                    if owner in sent:
                        latencies.append(time.perf_counter() - sent.pop(owner))

    collector = asyncio.create_task(collect())
    for i in range(n):
        owner = f"lat-{uuid.uuid4().hex[:8]}@example.com"
        ev = boundary_events(owner, [features[i % len(features)]])[0]
        sent[owner] = time.perf_counter()
        await producer.send_and_wait("events.field-boundaries", dumps(ev), key=owner.encode())
        await asyncio.sleep(0.1)
    await asyncio.wait_for(collector, 120)
    await producer.stop()
    await consumer.stop()
    return latencies


async def recovery(bootstrap: str, worker: Worker) -> float:
    """Seconds from starting a worker on an empty data dir until it meters a new event."""
    consumer = await tail_consumer(bootstrap, "usage.records")
    shutil.rmtree(worker.data_dir)
    started = time.perf_counter()
    worker.start()
    owner = f"rec-{uuid.uuid4().hex[:8]}@example.com"
    ev = boundary_events(owner, [load_features("east_africa_fields.geojson")[0]])[0]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    await producer.send_and_wait("events.field-boundaries", dumps(ev), key=owner.encode())
    await producer.stop()
    while True:
        batch = await consumer.getmany(timeout_ms=500)
        if any(loads(m.value)["apiOwner"] == owner for msgs in batch.values() for m in msgs):
            break
    await consumer.stop()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--latency-probes", type=int, default=100)
    args = parser.parse_args()
    features = (load_features("chofu_fude_2019.geojson") + load_features("fiboa_parcels.geojson"))[
        : args.events
    ]
    root = Path(tempfile.mkdtemp(prefix="acreage-bench-"))
    broker = Broker(root / "kafka").start()
    worker = Worker(
        broker, "bench", root / "worker", extra_env={"ACREAGE_TICK_SECONDS": "1.0"}
    ).start()
    try:
        owner = f"tp-{uuid.uuid4().hex[:8]}@example.com"
        report_load("at start")
        rate = asyncio.run(throughput(broker.bootstrap, boundary_events(owner, features)))
        print(f"pipeline: {len(features)} boundary events, one worker: {rate:,.0f} events/s "
              f"(goal >= {GOAL_EVENTS_PER_S:,.0f} events/s per worker: "
              f"{verdict(rate >= GOAL_EVENTS_PER_S)})")
        report_load("after throughput")
        lat = asyncio.run(snapshot_latency(broker.bootstrap, features, args.latency_probes))
        lat.sort()
        print(
            f"event -> provisional snapshot (tick 1.0 s, {len(lat)} probes): "
            f"median {statistics.median(lat) * 1000:.0f} ms, "
            f"p99 {lat[int(0.99 * (len(lat) - 1))] * 1000:.0f} ms"
        )
        worker.kill9()
        seconds = asyncio.run(recovery(broker.bootstrap, worker))
        print(
            f"recovery from changelog only (kill -9, empty data dir, "
            f"{len(features)} fields of state): {seconds:.1f} s to meter a new event"
        )
        report_load("at end")
    finally:
        worker.stop()
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
