"""SPEC §2 "Order does not matter" on the pure Meter: operations and their boundaries,
and FAILED retries (issue 8 items 1 and 7)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
import shapely

from aggregates.contracts import OWNER_SCOPE, contract_id_for, user_scope
from aggregates.products import Product
from tests.aggregates.test_meter import NOW, OWNER, T0, Harness, area, sq

OPS = Product.OPERATIONS_OPERATION
V1, V2 = sq(10, 50, 0.002), sq(10.001, 50, 0.002)


def boundary(h: Harness, type_: str, geom: Any, hours: float, event_id: str) -> None:
    h.event(type_, "u1", geom, field_id="f1", ts=T0 + timedelta(hours=hours), event_id=event_id)


def operation(h: Harness, geom: Any, hours: float, event_id: str) -> None:
    h.event("operationProcessingFinished", "u1", geom, field_id="f1",
            ts=T0 + timedelta(hours=hours), event_id=event_id)


def ops_total(h: Harness) -> float:
    return h.total(OPS, OWNER_SCOPE)


def test_an_operation_arriving_before_its_boundary_is_clipped_once_it_arrives() -> None:
    h = Harness()
    op = sq(10.0015, 50.0015)
    operation(h, op, 2, "op")
    assert h.meter.contract_for(OWNER, OPS) is None  # nothing counted while it waits
    boundary(h, "fieldBoundaryCreated", V1, 1, "b1")
    h.tick()
    assert ops_total(h) == pytest.approx(area(shapely.intersection(op, V1)), rel=1e-9)


def test_an_operation_is_clipped_to_the_version_in_force_at_its_time_in_any_order() -> None:
    """v1 at 1h, v2 at 3h, an operation at 2h and one at 4h: each clips to its own version,
    whichever order the five events arrive in."""
    op_a, op_b = sq(10.0005, 50.0005, 0.002), sq(10.0015, 50.0005, 0.002)
    expected = area(shapely.intersection(op_a, V1), shapely.intersection(op_b, V2))
    events = [
        lambda h: boundary(h, "fieldBoundaryCreated", V1, 1, "b1"),
        lambda h: boundary(h, "fieldBoundaryUpdated", V2, 3, "b2"),
        lambda h: operation(h, op_a, 2, "op-a"),
        lambda h: operation(h, op_b, 4, "op-b"),
    ]
    for seed in range(8):
        h = Harness()
        for apply in random.Random(seed).sample(events, len(events)):
            apply(h)
        h.tick()
        assert ops_total(h) == pytest.approx(expected, rel=1e-9), seed
        unified = h.total(Product.UNIFIED_AREA, OWNER_SCOPE)
        assert unified == pytest.approx(area(V1, V2), rel=1e-9), seed


def test_deleted_and_unknown_fields_count_unclipped_and_say_why() -> None:
    h = Harness()
    boundary(h, "fieldBoundaryCreated", V1, 1, "b1")
    boundary(h, "fieldBoundaryDeleted", None, 2, "b2")
    op = sq(10.0015, 50.0015)
    operation(h, op, 3, "after-delete")
    h.event("operationProcessingFinished", "u1", sq(20, 50), field_id="nope", event_id="unknown")
    reasons = {r.event_id: r.reason for r in h.tick().records}
    assert reasons == {"after-delete": "field-deleted", "unknown": "field-unknown"}
    assert ops_total(h) == pytest.approx(area(op, sq(20, 50)), rel=1e-9)


def test_an_operation_waits_for_its_field_across_a_restart_and_dedups_meanwhile() -> None:
    h = Harness()
    op = sq(10.0015, 50.0015)
    operation(h, op, 2, "op")
    h.meter = h.rebuilt()
    again = h.event("operationProcessingFinished", "u1", op, field_id="f1", event_id="op")
    assert [r.reason for r in again.records] == ["duplicate"]
    boundary(h, "fieldBoundaryCreated", V1, 1, "b1")
    h.meter = h.rebuilt()
    released = h.tick().records
    assert [r.event_id for r in released] == ["op"]
    assert ops_total(h) == pytest.approx(area(shapely.intersection(op, V1)), rel=1e-9)
    assert h.rebuilt().tick(NOW, h.next_seq()).records == []


def test_an_operation_waits_the_configured_time_after_it_arrives() -> None:
    h = Harness(field_wait=timedelta(minutes=5))
    operation(h, sq(10.0015, 50.0015), 2, "op")
    assert h.meter.tick(NOW + timedelta(minutes=4), h.next_seq()).records == []
    assert [r.event_id for r in h.meter.tick(NOW + timedelta(minutes=5), h.next_seq()).records] \
        == ["op"]


def test_a_failed_event_retried_with_the_same_id_counts() -> None:
    h = Harness()
    a = sq(10, 50)
    failed = h.event("providerFileProcessingFinished", "u1", a, event_id="x", status="FAILED")
    assert [r.reason for r in failed.records] == ["failed"]
    retry = h.event("providerFileProcessingFinished", "u1", a, event_id="x")
    assert retry.records[0].counted and retry.records[0].reason is None
    cid = contract_id_for(OWNER, Product.OPERATIONS_FILE)
    rebuilt = h.rebuilt()
    assert rebuilt.total_m2(cid, 0, user_scope("u1")) == pytest.approx(area(a), rel=1e-9)
    assert sorted(str(r.reason) for r in rebuilt.records.select(OWNER)) == ["None", "failed"]


def test_ids_are_forgotten_past_the_dedup_horizon_and_a_late_redelivery_adds_nothing() -> None:
    h = Harness()
    h.meter.ids.horizon = timedelta(days=30)
    a = sq(10, 50)
    h.event("providerFileProcessingFinished", "u1", a, event_id="old")
    h.event("providerFileProcessingFinished", "u1", sq(11, 50), event_id="recent",
            ts=T0 + timedelta(days=20))
    h.tick()
    inside = h.event("providerFileProcessingFinished", "u1", a, event_id="old")
    assert [r.reason for r in inside.records] == ["duplicate"]
    h.event("providerFileProcessingFinished", "u1", sq(12, 50), event_id="new",
            ts=T0 + timedelta(days=40))
    h.tick()
    assert h.meter.ids.seen("owner@example.com", "old") is None  # bounded state
    beyond = h.event("providerFileProcessingFinished", "u1", a, event_id="old")
    assert beyond.records[0].reason is None and beyond.records[0].area_added_owner_m2 == 0.0
    cid = contract_id_for(OWNER, Product.OPERATIONS_FILE)
    total = h.meter.total_m2(cid, 0, OWNER_SCOPE)
    assert total == pytest.approx(area(a, sq(11, 50), sq(12, 50)), rel=1e-9)
