"""Carry-over at the term start, AUDIT's daily history and the contract start, in event
time and whatever the arrival order (issue 8 items 2, 3 and 5)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from aggregates.contracts import OWNER_SCOPE, contract_id_for
from aggregates.periods import add_years
from aggregates.products import Product
from tests.aggregates.test_meter import NOW, OWNER, T0, Harness, area, sq

FB = Product.FIELDS_BOUNDARY
A, B, C = sq(10, 50), sq(11, 50), sq(12, 50)
NEXT_TERM = add_years(T0.date(), 1)


def create(h: Harness, field: str, geom: object, days: float, event_id: str) -> None:
    h.event("fieldBoundaryCreated", "u1", geom, field_id=field, ts=T0 + timedelta(days=days),
            event_id=event_id)


def delete(h: Harness, field: str, days: float, event_id: str) -> None:
    h.event("fieldBoundaryDeleted", "u1", field_id=field, ts=T0 + timedelta(days=days),
            event_id=event_id)


def tick_after_next_term_starts(h: Harness) -> None:
    h.persist(h.meter.tick(NOW + timedelta(days=400), h.next_seq()))


def next_term_total(h: Harness) -> float:
    return h.meter.total_m2(contract_id_for(OWNER, FB), 1, OWNER_SCOPE)


def test_live_boundaries_are_carried_at_the_term_start_with_no_event_after_it() -> None:
    h = Harness()
    create(h, "a", A, 0, "a")
    create(h, "b", B, 1, "b")
    tick_after_next_term_starts(h)
    assert next_term_total(h) == pytest.approx(area(A, B), rel=1e-9)
    unified = h.meter.total_m2(contract_id_for(OWNER, Product.UNIFIED_AREA), 1, OWNER_SCOPE)
    assert unified == pytest.approx(area(A, B), rel=1e-9)
    assert h.rebuilt().tick(NOW + timedelta(days=401), h.next_seq()).records == []


def test_a_late_create_dated_in_the_old_term_is_carried() -> None:
    h = Harness()
    create(h, "a", A, 0, "a")
    create(h, "b", B, 1, "b")
    tick_after_next_term_starts(h)
    create(h, "c", C, 200, "c")  # arrives after the new term was seeded
    assert next_term_total(h) == pytest.approx(area(A, B, C), rel=1e-9)


def test_a_late_delete_dated_in_the_old_term_arriving_in_time_is_not_carried() -> None:
    h = Harness(field_wait=timedelta(minutes=10))
    create(h, "a", A, 0, "a")
    create(h, "b", B, 1, "b")
    create(h, "c", C, 2, "c")
    tick_after_next_term_starts(h)  # notices the new term; waits for boundaries behind it
    delete(h, "c", 300, "c-gone")
    h.persist(h.meter.tick(NOW + timedelta(days=400, minutes=10), h.next_seq()))
    assert next_term_total(h) == pytest.approx(area(A, B), rel=1e-9)


def test_audit_days_are_the_live_union_at_each_days_end_after_late_updates() -> None:
    """A boundary live on days 0-1, deleted on day 2, created again on day 4: past days
    read 1,1,0,0,1,1 even when the delete arrives last."""
    h = Harness()
    create(h, "a", A, 0, "a")
    h.event("fieldBoundaryCreated", "u1", A, field_id="a", ts=T0 + timedelta(days=4),
            event_id="again")
    h.event("providerFileProcessingFinished", "u1", B, ts=T0 + timedelta(days=5))
    delete(h, "a", 2, "gone")
    cid = contract_id_for(OWNER, Product.AUDIT_FIELDS_BOUNDARY)
    for meter in (h.meter, h.rebuilt()):
        by_day = meter.by_day(cid, 0, OWNER_SCOPE)
        running, totals = 0.0, []
        for offset in range(6):
            running += by_day.get((T0.date() + timedelta(days=offset)).toordinal(), 0.0)
            totals.append(round(running / area(A), 9))
        assert totals == [1, 1, 0, 0, 1, 1]
        assert meter.total_m2(cid, 0, OWNER_SCOPE) == pytest.approx(area(A), rel=1e-9)


def test_a_contract_start_moves_back_only_while_none_of_its_days_is_final() -> None:
    h = Harness()
    h.event("providerFileProcessingFinished", "u1", A, ts=T0)
    h.event("providerFileProcessingFinished", "u1", B, ts=T0 - timedelta(days=3))
    contract = h.meter.contract_for(OWNER, Product.OPERATIONS_FILE)
    assert contract is not None and contract.start == T0.date() - timedelta(days=3)
    h.tick()  # grace 0: every day so far is final
    h.event("providerFileProcessingFinished", "u1", C, ts=T0 - timedelta(days=10))
    contract = h.meter.contract_for(OWNER, Product.OPERATIONS_FILE)
    assert contract is not None and contract.start == T0.date() - timedelta(days=3)
    first_day = h.meter.by_day(contract.contract_id, 0, OWNER_SCOPE)
    assert first_day[(T0.date() - timedelta(days=3)).toordinal()] == pytest.approx(
        area(B, C), rel=1e-9
    )
    assert isinstance(contract.start, date)


def test_audit_days_in_any_arrival_order_equal_the_union_at_each_days_end() -> None:
    """Overlapping fields of two users, created, updated and deleted over six days: every
    arrival order gives each day the area of the union live at its end."""
    import random

    import shapely

    from aggregates import geodesic_area_m2
    from aggregates.contracts import user_scope

    shapes = [sq(10 + 0.0006 * i, 50, 0.001) for i in range(6)]
    events = []  # (event id, user, field, day, shape or None for a delete)
    for i, shape in enumerate(shapes):
        events.append((f"c{i}", f"u{i % 2}", f"f{i}", i % 3, shape))
        if i % 2 == 0:
            events.append((f"m{i}", f"u{i % 2}", f"f{i}", 3 + i % 2, sq(10.0003 * i, 50.0005)))
        if i % 3 == 1:
            events.append((f"d{i}", f"u{i % 2}", f"f{i}", 4, None))

    def live_at_end(day: int, scope: str) -> float:
        latest: dict[tuple[str, str], tuple[int, object]] = {}
        for _, user, field, d, shape in events:
            mine = scope == OWNER_SCOPE or user_scope(user) == scope
            newer = (user, field) not in latest or latest[(user, field)][0] <= d
            if d <= day and mine and newer:
                latest[(user, field)] = (d, shape)
        live = [s for _, s in latest.values() if s is not None]
        return geodesic_area_m2(shapely.union_all(live)) if live else 0.0

    cid = contract_id_for(OWNER, Product.AUDIT_FIELDS_BOUNDARY)
    for seed in range(6):
        h = Harness()
        for event_id, user, field, day, shape in random.Random(seed).sample(events, len(events)):
            ts = T0 + timedelta(days=day, hours=int(event_id[1:]))
            kind = "fieldBoundaryDeleted" if shape is None else "fieldBoundaryCreated"
            h.event(kind, user, shape, field_id=field, ts=ts, event_id=event_id)
        for meter in (h.meter, h.rebuilt()):
            for scope in (OWNER_SCOPE, user_scope("u0"), user_scope("u1")):
                by_day, running = meter.by_day(cid, 0, scope), 0.0
                for day in range(6):
                    running += by_day.get((T0.date() + timedelta(days=day)).toordinal(), 0.0)
                    expected = pytest.approx(live_at_end(day, scope), rel=1e-6, abs=1e-6)
                    assert running == expected, (seed, scope, day)
