"""End to end on a real Kafka broker: real boundaries in, daily snapshots out, vs the oracle."""

from __future__ import annotations

import shutil
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregates import geodesic_area_m2, normalize_geometry
from tests.support.kafka import (
    Broker,
    Worker,
    produce_events,
    produce_raw,
    read_topic,
    wait_for_group,
    wait_until,
)
from tests.support.scenario import Scenario, build
from tests.support.snapshots import last_totals, latest_snapshots

REL = 1e-6


def mismatches(
    got: dict[tuple[str, str], float], oracle: dict[tuple[str, str], float]
) -> list[Any]:
    """(key, got, want, relative error) for every scope that is off, or missing."""
    return [
        (k, got.get(k), want, (got[k] - want) / max(abs(want), 1.0) if k in got else None)
        for k, want in sorted(oracle.items())
        if k not in got or abs(got[k] - want) > REL * max(abs(want), 1.0)
    ]


def records(broker: Broker, owner: str) -> list[dict[str, Any]]:
    return [v for _, v in read_topic(broker.bootstrap, "usage.records") if v["apiOwner"] == owner]


def wait_for_records(broker: Broker, owner: str, ids: set[str], timeout: float) -> list[Any]:
    def done() -> list[Any] | None:
        got = records(broker, owner)
        return got if {r["eventId"] for r in got} >= ids else None

    result = wait_until(done, timeout, interval=2.0)
    assert result, "not every event produced a usage record in time"
    return list(result)


def wait_for_oracle(broker: Broker, sc: Scenario, timeout: float) -> list[Any]:
    oracle = sc.oracle()
    state: dict[str, list[Any]] = {"bad": []}

    def converged() -> bool:
        state["bad"] = mismatches(last_totals(latest_snapshots(broker, sc.owner)), oracle)
        return not state["bad"]

    wait_until(converged, timeout, interval=2.0)
    return state["bad"]


def scrape(worker: Worker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The worker's /metrics as {(name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics") as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def produce_boundaries_first(broker: Broker, events: list[dict[str, Any]]) -> None:
    """Input topics are not ordered with each other, and an operation is clipped to the
    boundary current when it is metered: so boundaries go first, as in production where
    a field exists before anything is done on it."""
    creates = [e for e in events if e["type"] == "fieldBoundaryCreated"]
    rest = [e for e in events if e["type"] != "fieldBoundaryCreated"]
    produce_events(broker.bootstrap, creates)
    wait_for_records(broker, events[0]["apiOwner"], {e["id"] for e in creates}, timeout=600)
    produce_events(broker.bootstrap, rest)


def owner_id() -> str:
    return f"owner-{uuid.uuid4().hex[:8]}@example.com"


def test_replay_of_real_boundaries_matches_union_all_oracle(broker: Broker, tmp_path: Path) -> None:
    sc = build(owner_id(), boundaries=2200)
    worker = Worker(broker, "it-replay", tmp_path / "worker").start()
    wait_for_group(broker, "it-replay", members=1)
    try:
        produce_boundaries_first(broker, sc.events)
        produce_raw(broker.bootstrap, ((t, b"k", raw) for t, raw in sc.bad_records))
        got = wait_for_records(broker, sc.owner, {e["id"] for e in sc.events}, timeout=600)
        bad = wait_for_oracle(broker, sc, timeout=60)
        assert not bad, "\n".join(map(str, bad))
        metrics = scrape(worker)
    finally:
        assert worker.stop() == 0
    reasons = [r["reason"] for r in got]
    assert reasons.count("duplicate") == sc.duplicates
    assert reasons.count("failed") == sc.failed
    assert all(r["areaAddedOwnerM2"] == 0 for r in got if r["reason"] in ("duplicate", "failed"))
    letters = [v for _, v in read_topic(broker.bootstrap, "usage.dead-letter")]
    assert len(letters) == len(sc.bad_records)
    assert all(v["reason"] and v["error"] and v["topic"].startswith("events.") for v in letters)
    assert {v["payload"] for v in letters if v["payloadEncoding"] == "utf-8"} >= {"{not json"}
    counted = metrics[
        ("acreage_events_total", (("outcome", "counted"), ("type", "fieldBoundaryCreated")))
    ]
    assert counted == sum(1 for r in got if r["type"] == "fieldBoundaryCreated" and r["counted"])
    assert sum(
        v for (name, _), v in metrics.items() if name == "acreage_dead_letters_total"
    ) == len(sc.bad_records)
    assert metrics[("acreage_processing_seconds_count", ())] >= len(sc.events)
    assert metrics[("acreage_stored_pieces", ())] > 0
    assert any(name == "acreage_consumer_lag" for name, _ in metrics)


def test_kill9_then_restart_and_empty_data_dir_recovery_neither_lose_nor_double(
    broker: Broker, tmp_path: Path
) -> None:
    sc = build(owner_id(), boundaries=900)
    creates = [e for e in sc.events if e["type"] == "fieldBoundaryCreated"]
    rest = [e for e in sc.events if e["type"] != "fieldBoundaryCreated"]
    half = len(creates) // 2
    first, second = creates[:half], creates[half:]
    data = tmp_path / "worker"
    worker = Worker(broker, "it-crash", data).start()
    wait_for_group(broker, "it-crash", members=1)
    produce_events(broker.bootstrap, first)
    wait_until(lambda: len(records(broker, sc.owner)) > half // 3, 300, interval=0.5)
    worker.kill9()  # mid-replay: part of the first half is processed, not all committed

    worker = Worker(broker, "it-crash", data).start()  # same data dir
    wait_for_group(broker, "it-crash", members=1)
    wait_for_records(broker, sc.owner, {e["id"] for e in first}, timeout=300)
    worker.kill9()
    shutil.rmtree(data)

    worker = Worker(broker, "it-crash", data).start()  # empty data dir: changelog only
    wait_for_group(broker, "it-crash", members=1)
    try:
        produce_boundaries_first(broker, second + first[:50] + rest)  # with re-sent duplicates
        wait_for_records(broker, sc.owner, {e["id"] for e in sc.events}, timeout=300)
        bad = wait_for_oracle(broker, sc, timeout=60)
        assert not bad, "\n".join(map(str, bad))
    finally:
        worker.stop()


class Timeline:
    """Hand-made events with explicit days, for roll-over and late-event rules."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.events: list[dict[str, Any]] = []

    def add(self, type_: str, when: datetime, user: str = "u1", **fields: Any) -> None:
        self.events.append(
            {
                "id": f"{self.owner}:{len(self.events)}",
                "type": type_,
                "timestamp": when.isoformat(),
                "apiOwner": self.owner,
                "leafUserId": user,
                **fields,
            }
        )


def square(x: float, y: float, size: float = 0.001) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]],
    }


def m2(*geojson: dict[str, Any]) -> float:
    import shapely

    return geodesic_area_m2(shapely.union_all([normalize_geometry(g) for g in geojson]))


def test_day_and_term_rollover_and_late_correction(broker: Broker, tmp_path: Path) -> None:
    owner = owner_id()
    t0 = datetime(2025, 3, 1, 10, tzinfo=UTC)
    kept, gone, new = square(10, 50), square(11, 50), square(12, 50)
    early, late, first = square(20, 50), square(20.0005, 50), square(30, 50)
    tl = Timeline(owner)
    # The file contract starts on day 0, so the late day-1 file below lands inside its
    # term; its days are final by then, and SPEC §3 keeps a final contract's start.
    tl.add("providerFileProcessingFinished", t0, fileId="first", geometry=first)
    tl.add("fieldBoundaryCreated", t0, fieldId="kept", geometry=kept)
    tl.add("fieldBoundaryCreated", t0, fieldId="gone", geometry=gone)
    tl.add("fieldBoundaryDeleted", t0 + timedelta(days=100), fieldId="gone")
    tl.add("fieldBoundaryCreated", t0 + timedelta(days=400), "u2", fieldId="new", geometry=new)
    tl.add("providerFileProcessingFinished", t0 + timedelta(days=2), fileId="a", geometry=late)
    # The timeline spans 400 days from 2025-03-01: wider than the default plausibility window.
    wide = {"ACREAGE_MAX_EVENT_AGE_DAYS": "3650"}
    worker = Worker(broker, "it-rollover", tmp_path / "worker", extra_env=wide).start()
    wait_for_group(broker, "it-rollover", members=1)
    try:
        produce_events(broker.bootstrap, tl.events)
        wait_for_records(broker, owner, {e["id"] for e in tl.events}, timeout=120)
        late_id = f"{owner}:{len(tl.events)}"
        tl.add("providerFileProcessingFinished", t0 + timedelta(days=1), fileId="b", geometry=early)
        before = latest_snapshots(broker, owner)
        produce_events(broker.bootstrap, tl.events[-1:])
        wait_for_records(broker, owner, {late_id}, timeout=60)
        snaps: Callable[[], dict[str, dict[str, Any]]] = lambda: latest_snapshots(broker, owner)  # noqa: E731
        day = lambda d: (t0 + timedelta(days=d)).date().isoformat()  # noqa: E731

        def by(product: str, scope: str, date: str) -> dict[str, Any] | None:
            return next(
                (
                    s
                    for s in snaps().values()
                    if (s["product"], s["scope"], s["date"]) == (product, scope, date)
                ),
                None,
            )

        assert wait_until(lambda: by("OPERATIONS_FILE", "api-owner", day(1)), 30, 0.5)
        # Carry-over is seeded by a tick once the field wait has passed after it noticed
        # the new term (ACREAGE_FIELD_WAIT_SECONDS is 10 s for test workers).
        assert wait_until(lambda: by("FIELDS_BOUNDARY", "api-owner", day(365)), 45, 0.5)
    finally:
        worker.stop()
    fb = "FIELDS_BOUNDARY"
    assert by(fb, "api-owner", day(0))["totalAreaM2"] == pytest.approx(m2(kept, gone), rel=REL)
    assert by(fb, "api-owner", day(365))["totalAreaM2"] == pytest.approx(m2(kept), rel=REL)
    term2 = by(fb, "api-owner", day(400))
    assert term2["totalAreaM2"] == pytest.approx(m2(kept, new), rel=REL)
    assert by(fb, "leaf-user:u1", day(365))["totalAreaM2"] == pytest.approx(m2(kept), rel=REL)
    audit = by("AUDIT_FIELDS_BOUNDARY", "api-owner", day(100))
    assert audit["areaAddedM2"] == pytest.approx(-m2(gone), rel=REL)
    ops_day1 = by("OPERATIONS_FILE", "api-owner", day(1))
    ops_day2 = by("OPERATIONS_FILE", "api-owner", day(2))
    old_day2 = next(
        s
        for s in before.values()
        if (s["product"], s["scope"], s["date"]) == ("OPERATIONS_FILE", "api-owner", day(2))
    )
    ops_day0 = by("OPERATIONS_FILE", "api-owner", day(0))
    assert ops_day1["totalAreaM2"] == pytest.approx(m2(first, early), rel=REL)
    assert ops_day2["totalAreaM2"] == pytest.approx(m2(first, early, late), rel=REL)
    assert ops_day2["revision"] > old_day2["revision"]
    added = ops_day0["areaAddedM2"] + ops_day1["areaAddedM2"] + ops_day2["areaAddedM2"]
    assert added == pytest.approx(m2(first, early, late), rel=REL)
