"""A message that raises inside the Meter costs that message only (issue 7 §1).

The crafted message reaches the metering topic directly, as a bug upstream of the Meter
would deliver it: a boundary event with no field id. The Meter counts its geometry in
FIELDS_BOUNDARY and UNIFIED_AREA in memory, then fails in AUDIT. Nothing of it may stay
counted, the stream must go on, and the message must be dead-lettered.
"""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import shapely
from shapely.geometry import box, mapping

from aggregates import geodesic_area_m2
from aggregates.contracts import OWNER_SCOPE
from schemas.codec import dumps
from schemas.events import EventEnvelope
from schemas.internal import EventMessage
from streams.topics import metering_topic, partition_of
from tests.support.kafka import Broker, Worker, produce_events, produce_raw, read_topic, wait_until
from tests.support.snapshots import last_totals, latest_snapshots

OWNER = "errors@example.com"
APP = "acreage-errors"
A = box(10.0, 50.0, 10.001, 50.001)
B = box(10.002, 50.0, 10.003, 50.001)


def event(event_id: str, type_: str, geom: object, **fields: str) -> dict[str, object]:
    return {
        "id": event_id,
        "type": type_,
        "timestamp": datetime.now(UTC).isoformat(),
        "apiOwner": OWNER,
        "leafUserId": "u1",
        "geometry": mapping(geom),
        **fields,
    }


def poison_message() -> bytes:
    envelope = EventEnvelope.model_validate(
        {k: v for k, v in event("bad", "fieldBoundaryCreated", B).items() if k != "geometry"}
    )
    return dumps(EventMessage(event=envelope, wkb=shapely.to_wkb(B, hex=True)).model_dump(
        mode="json"))


def test_a_failing_message_is_dead_lettered_and_leaves_state_as_before(
    broker: Broker, tmp_path: Path
) -> None:
    worker = Worker(broker, APP, tmp_path / "w1").start()
    try:
        produce_events(broker.bootstrap, [event("a", "fieldBoundaryCreated", A, fieldId="fa")])
        assert wait_until(lambda: _owner_total(broker, "FIELDS_BOUNDARY") > 0, 90)
        topic = metering_topic(APP)
        partition = partition_of(OWNER, 4)
        produce_raw(broker.bootstrap, [(topic, OWNER.encode(), poison_message())])
        produce_events(
            broker.bootstrap, [event("b", "providerFileProcessingFinished", B, fileId="fb")]
        )
        assert wait_until(lambda: _owner_total(broker, "OPERATIONS_FILE") > 0, 90)
        expected = {
            "FIELDS_BOUNDARY": geodesic_area_m2(A),
            "OPERATIONS_FILE": geodesic_area_m2(B),
            "UNIFIED_AREA": geodesic_area_m2(shapely.union(A, B)),
        }
        assert wait_until(
            lambda: all(
                _owner_total(broker, p) == pytest.approx(v, rel=1e-6) for p, v in expected.items()
            ),
            30,
        ), {p: _owner_total(broker, p) for p in expected}
        letters = [v for _, v in read_topic(broker.bootstrap, "usage.dead-letter") if v]
        assert [(v["reason"], v["topic"], v["partition"]) for v in letters] == [
            ("internal_error", topic, partition)
        ]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics").read()
        assert b"acreage_metering_errors_total 1.0" in metrics
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        worker.stop()


def _owner_total(broker: Broker, product: str) -> float:
    totals = last_totals(latest_snapshots(broker, OWNER))
    return float(totals.get((product, OWNER_SCOPE), 0.0))
