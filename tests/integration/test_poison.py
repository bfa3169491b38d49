"""Poison on the real broker: metering of valid events goes on undisturbed.

Bad ids in every id field, multi-megabyte records, a 200,000-vertex polygon, a geometry
too big for the metering topic and extreme timestamps are interleaved with a real-data
scenario. Each must come out as exactly one dead letter with its reason, the worker
must still be running, and the valid events' totals must equal the oracle.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.codec import dumps
from schemas.events import TOPIC_TYPES
from streams.replay import TOPIC_OF_TYPE
from tests.support.kafka import Broker, Worker, produce_raw, read_topic, wait_for_group, wait_until
from tests.support.scenario import Scenario, build
from tests.support.snapshots import last_totals, latest_snapshots

APP_ID = "it-poison"
PARTITIONS = 4  # what tests.support.kafka.Worker configures
BIG = 10 * 1024 * 1024
DEAD_LETTER_LIMIT = 256 * 1024  # ACREAGE_DEAD_LETTER_MAX_PAYLOAD_BYTES default
REL = 1e-6
ID_FIELDS = {
    "id": "providerFileProcessingFinished",
    "apiOwner": "providerFileProcessingFinished",
    "leafUserId": "providerFileProcessingFinished",
    "fieldId": "fieldBoundaryCreated",
    "fileId": "providerFileProcessingFinished",
    "operationId": "operationProcessingFinished",
    "imageId": "satelliteImageProcessingFinished",
}


@dataclass(frozen=True)
class Poison:
    topic: str
    value: bytes
    reason: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.value).hexdigest()


def square(n: int) -> dict[str, Any]:
    """Away from every scenario field: if a poison event were counted, totals would move."""
    x, y = -60.0 + 0.01 * n, -30.0
    ring = [[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def poison_event(owner: str, n: int, type_: str, **fields: Any) -> dict[str, Any]:
    ids = {
        "fieldBoundaryCreated": {"fieldId": f"pf{n}"},
        "providerFileProcessingFinished": {"fileId": f"pfile{n}"},
        "operationProcessingFinished": {"operationId": f"pop{n}"},
        "satelliteImageProcessingFinished": {"imageId": f"pimg{n}", "provider": "planet"},
    }[type_]
    return {
        "id": f"poison-{n}",
        "type": type_,
        "timestamp": datetime.now(UTC).isoformat(),
        "apiOwner": owner,
        "leafUserId": "user-a",
        "geometry": square(n),
        **ids,
        **fields,
    }


def circle(vertices: int) -> dict[str, Any]:
    pts = [
        [
            10 + 0.01 * math.cos(2 * math.pi * k / vertices),
            50 + 0.01 * math.sin(2 * math.pi * k / vertices),
        ]
        for k in range(vertices - 1)
    ]
    return {"type": "Polygon", "coordinates": [[*pts, pts[0]]]}


def poisons(owner: str) -> list[Poison]:
    out: list[Poison] = []

    def add(reason: str, type_: str, **fields: Any) -> None:
        ev = poison_event(owner, len(out), type_, **fields)
        out.append(Poison(TOPIC_OF_TYPE[type_], dumps(ev), reason))

    for field, type_ in ID_FIELDS.items():
        for char in ("\x1f", "\x00", "\x7f", "\u0085"):
            add("invalid_id", type_, **{field: f"u1{char}7"})
    add("invalid_id", "providerFileProcessingFinished", leafUserId="")
    add("invalid_id", "providerFileProcessingFinished", leafUserId="x" * 257)
    add("invalid_id", "providerFileProcessingFinished", leafUserId="u" * 5_000_000)  # 5 MB text
    now = datetime.now(UTC)
    for ts in (
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "9999-06-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        (now + timedelta(hours=2)).isoformat(),
        (now - timedelta(days=401)).isoformat(),
    ):
        add("timestamp_out_of_range", "providerFileProcessingFinished", timestamp=ts)
    add("geometry_too_many_vertices", "fieldBoundaryCreated", geometry=circle(200_000))
    strip = [[0.0, 10.0], [30.0, 10.0], [30.0, 10.001], [0.0, 10.001], [0.0, 10.0]]
    add(
        "too_large",
        "satelliteImageProcessingFinished",
        geometry={"type": "Polygon", "coordinates": [strip]},
    )
    binary = b"\xff\xfe" + uuid.uuid4().bytes * 320_000  # 5 MB, not UTF-8
    out.append(Poison("events.operations", binary, "bad_json"))
    return out


async def _create_input_topics(bootstrap: str) -> None:
    """Before the worker starts (it creates only what is missing): the default 1 MB limit
    would make the broker refuse the big poison, and never let ingest see it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, PARTITIONS, 1, topic_configs={"max.message.bytes": str(BIG)})
                for name in TOPIC_TYPES
            ]
        )
    finally:
        await admin.close()


def interleave(events: list[dict[str, Any]], bad: list[Poison]) -> list[tuple[str, bytes, bytes]]:
    """Poison spread evenly through the valid events, on their own topics."""
    valid = [(TOPIC_OF_TYPE[e["type"]], e["apiOwner"].encode(), dumps(e)) for e in events]
    step = max(1, len(valid) // max(1, len(bad)))
    out: list[tuple[str, bytes, bytes]] = []
    for i, p in enumerate(bad):
        out += valid[i * step : (i + 1) * step]
        out.append((p.topic, b"poison", p.value))
    return out + valid[len(bad) * step :]


def produce(broker: Broker, events: list[dict[str, Any]], bad: list[Poison]) -> None:
    produce_raw(broker.bootstrap, interleave(events, bad), max_request_size=BIG + 1024 * 1024)


def recorded_ids(broker: Broker, owner: str) -> set[str]:
    return {
        v["eventId"]
        for _, v in read_topic(broker.bootstrap, "usage.records")
        if v["apiOwner"] == owner
    }


def mismatches(sc: Scenario, broker: Broker) -> list[Any]:
    got = last_totals(latest_snapshots(broker, sc.owner))
    return [
        (k, got.get(k), want)
        for k, want in sorted(sc.oracle().items())
        if k not in got or abs(got[k] - want) > REL * max(abs(want), 1.0)
    ]


def dead_letter_counts(worker: Worker) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics") as resp:
        text = resp.read().decode()
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "acreage_dead_letters_total"
    }


def test_poison_is_dead_lettered_and_metering_goes_on(broker: Broker, tmp_path: Path) -> None:
    sc = build(f"owner-{uuid.uuid4().hex[:8]}@example.com", boundaries=200)
    bad = poisons(sc.owner)
    creates = [e for e in sc.events if e["type"] == "fieldBoundaryCreated"]
    rest = [e for e in sc.events if e["type"] != "fieldBoundaryCreated"]
    asyncio.run(_create_input_topics(broker.bootstrap))
    worker = Worker(broker, APP_ID, tmp_path / "worker").start()
    try:
        wait_for_group(broker, APP_ID, members=1)
        # Boundaries first, as in test_pipeline: operations are clipped to them.
        produce(broker, creates, bad[: len(bad) // 2])
        want = {e["id"] for e in creates}
        assert wait_until(lambda: recorded_ids(broker, sc.owner) >= want, 120, 1.0)
        produce(broker, rest, bad[len(bad) // 2 :])
        want = {e["id"] for e in sc.events}
        assert wait_until(lambda: recorded_ids(broker, sc.owner) >= want, 120, 1.0)
        assert wait_until(lambda: not mismatches(sc, broker), 60, 1.0), mismatches(sc, broker)
        letters = [v for _, v in read_topic(broker.bootstrap, "usage.dead-letter")]
        assert worker.proc is not None and worker.proc.poll() is None, "worker died"
        counts = dead_letter_counts(worker)
    finally:
        assert worker.stop() == 0

    by_sha: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_sha.setdefault(letter["payloadSha256"], []).append(letter)
    assert len(letters) == len(bad)
    for p in bad:
        [letter] = by_sha[p.sha256]
        assert (letter["reason"], letter["topic"], letter["payloadSize"]) == (
            p.reason,
            p.topic,
            len(p.value),
        ), letter["error"]
        assert letter["payloadTruncated"] is (len(p.value) > DEAD_LETTER_LIMIT)
        if letter["payloadTruncated"]:
            assert len(letter["payload"]) <= DEAD_LETTER_LIMIT
    assert {p.reason for p in bad} == {r for r, n in counts.items() if n}
    assert sum(counts.values()) == len(bad) and not counts.get("unsent")
    assert recorded_ids(broker, sc.owner).isdisjoint({f"poison-{n}" for n in range(len(bad))})
