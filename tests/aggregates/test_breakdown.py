"""Breakdowns, calendar series and period projections on the pure Meter: each agrees
with the summary, the daily series and the plan it is built beside."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregates import geodesic_area_m2
from aggregates.breakdown import breakdown
from aggregates.contracts import OWNER_SCOPE, user_scope
from aggregates.periods import Calendar, period_start
from aggregates.products import EVENT_TYPES, Product
from aggregates.usage import (
    PeriodType,
    Span,
    by_period,
    period_projection,
    plan,
    span_bounds,
    summary,
)
from schemas.events import EventType
from tests.aggregates.test_meter import OWNER, T0, Harness, sq

NOW = datetime(2027, 6, 1, tzinfo=UTC)
KINDS = [
    ("fieldBoundaryCreated", {}),
    ("providerFileProcessingFinished", {}),
    ("satelliteImageProcessingFinished", {"provider": "sentinel"}),
    ("satelliteImageProcessingFinished", {"provider": "planet"}),
]
# one event: who, what, which day after T0 (crossing into the second term), where, failed
event = st.tuples(
    st.sampled_from(["u1", "u2", "u3"]),
    st.integers(0, len(KINDS) - 1),
    st.integers(0, 420),
    st.integers(0, 3),
    st.booleans(),
)


def _feed(h: Harness, events: list[tuple[str, int, int, int, bool]]) -> None:
    for n, (user, kind, day, cell, failed) in enumerate(events):
        type_, extra = KINDS[kind]
        kw = dict(extra)
        if type_ == "fieldBoundaryCreated":
            kw["field_id"] = f"f{n}"
        h.event(type_, user, sq(10 + 0.0006 * cell, 50), ts=T0 + timedelta(days=day, hours=n),
                status="FAILED" if failed else "SUCCESS", **kw)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, min_size=1, max_size=10), st.integers(0, 420), st.integers(0, 420))
def test_breakdown_sums_equal_the_summary(
    events: list[tuple[str, int, int, int, bool]], a: int, b: int
) -> None:
    h = Harness()
    _feed(h, events)
    start, end = sorted((T0.date() + timedelta(days=a), T0.date() + timedelta(days=b)))
    found = breakdown(h.meter, OWNER, start, end, recent=3)
    assert found.products == summary(h.meter, OWNER, start, end)
    for s in found.products:
        by_users = sum(u.added_m2[s.contract.product] for u in found.users)
        assert by_users == pytest.approx(s.users_added_m2, abs=1e-6)
        # the billable area a projection sums is what the summary summed
        summed = period_projection(h.meter, s.contract, start, end, end)
        assert summed.added_m2 == pytest.approx(s.users_added_m2, abs=1e-6)
    in_range = [e for e in events if start <= (T0 + timedelta(days=e[2], hours=0)).date() <= end]
    assert found.events == len(in_range) == sum(t.events for t in found.event_types)
    assert sum(u.events for u in found.users) == found.events
    newest = list(h.meter.records.select(OWNER, start=start, end=end))
    assert found.recent == newest[:3]
    unified = [u.added_m2.get(Product.UNIFIED_AREA, 0.0) for u in found.users]
    assert unified == sorted(unified, reverse=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, min_size=1, max_size=10), st.integers(0, 420), st.integers(0, 420),
       st.sampled_from([PeriodType.WEEK, PeriodType.MONTH, PeriodType.QUARTER,
                        PeriodType.YEAR]))
def test_calendar_buckets_sum_to_the_range_and_end_on_its_total(
    events: list[tuple[str, int, int, int, bool]], a: int, b: int, period: PeriodType
) -> None:
    h = Harness()
    _feed(h, events)
    start, end = sorted((T0.date() + timedelta(days=a), T0.date() + timedelta(days=b)))
    for product in (Product.UNIFIED_AREA, Product.OPERATIONS_FILE):
        contract = h.meter.contract_for(OWNER, product)
        if contract is None:
            continue
        for scope in (OWNER_SCOPE, user_scope("u1")):
            days = by_period(h.meter, contract, scope, PeriodType.DAY, start, end, NOW)
            buckets = by_period(h.meter, contract, scope, period, start, end, NOW)
            assert sum(p.added_m2 for p in buckets) == pytest.approx(
                sum(d.added_m2 for d in days), abs=1e-6)
            assert buckets[-1].total_m2 == days[-1].total_m2
            firsts = sorted({period_start(d.start.date(), Calendar(period.value)) for d in days})
            assert [p.start.date() for p in buckets] == firsts


def test_breakdown_by_user_type_and_newest_records() -> None:
    h = Harness()
    one = geodesic_area_m2(sq(10, 50))
    h.event("providerFileProcessingFinished", "u1", sq(10, 50), ts=T0)
    h.event("providerFileProcessingFinished", "u2", sq(10, 50), ts=T0 + timedelta(hours=1))
    h.event("fieldBoundaryCreated", "u2", sq(11, 50), field_id="f", ts=T0 + timedelta(days=1))
    h.event("providerFileProcessingFinished", "u2", sq(12, 50), status="FAILED",
            ts=T0 + timedelta(days=1, hours=1))
    h.event("providerFileProcessingFinished", "u1", sq(13, 50), ts=T0 + timedelta(days=2))
    found = breakdown(h.meter, OWNER, T0.date(), T0.date() + timedelta(days=1), recent=2)
    assert [u.leaf_user_id for u in found.users] == ["u2", "u1"]
    u2 = found.users[0]
    assert u2.events == 3
    assert u2.added_m2[Product.OPERATIONS_FILE] == pytest.approx(one, rel=1e-9)
    assert u2.added_m2[Product.FIELDS_BOUNDARY] == pytest.approx(one, rel=1e-6)
    assert u2.added_m2[Product.UNIFIED_AREA] == pytest.approx(2 * one, rel=1e-6)
    assert found.users[1].added_m2[Product.OPERATIONS_FILE] == pytest.approx(one, rel=1e-9)
    assert [(t.event_type, t.events) for t in found.event_types] == [
        ("fieldBoundaryCreated", 1), ("providerFileProcessingFinished", 3)]
    assert found.events == 4
    assert [r.event_id for r in found.recent] == ["e4", "e3"]
    files = next(s for s in found.products if s.contract.product is Product.OPERATIONS_FILE)
    assert files.added_m2 == pytest.approx(one, rel=1e-9)
    assert files.users_added_m2 == pytest.approx(2 * one, rel=1e-9)


def _steady() -> tuple[Harness, float]:
    """One new square a day for 40 days from T0 (1 March 2026)."""
    h = Harness()
    for i in range(40):
        h.event("providerFileProcessingFinished", "u1", sq(10 + 0.002 * i, 50),
                ts=T0 + timedelta(days=i))
    return h, geodesic_area_m2(sq(10, 50))


def test_a_period_projects_what_it_added_plus_the_plan_rate_for_each_day_left() -> None:
    h, one = _steady()
    contract = h.meter.contract_for(OWNER, Product.OPERATIONS_FILE)
    assert contract is not None
    today = date(2026, 4, 9)
    first, last = span_bounds(Span.MONTH, today, contract)
    p = period_projection(h.meter, contract, first, last, today)
    assert (first, last, p.days_remaining) == (date(2026, 4, 1), date(2026, 4, 30), 21)
    assert p.added_m2 == pytest.approx(9 * one, rel=1e-6)
    assert p.projected_m2 == pytest.approx(30 * one, rel=1e-6)
    # over the term, it is the plan's projection
    first, last = span_bounds(Span.TERM, today, contract)
    term = period_projection(h.meter, contract, first, last, today)
    assert term.projected_m2 == pytest.approx(plan(h.meter, contract, today).projected_m2)
    assert term.projected_high_m2 == pytest.approx(
        plan(h.meter, contract, today).projected_high_m2)


def test_a_past_period_projects_what_it_added_and_a_future_one_only_the_rate() -> None:
    h, one = _steady()
    contract = h.meter.contract_for(OWNER, Product.OPERATIONS_FILE)
    assert contract is not None
    today = date(2026, 4, 9)
    past = period_projection(h.meter, contract, date(2026, 3, 2), date(2026, 3, 8), today)
    assert past.days_remaining == 0 and past.projected_m2 == pytest.approx(7 * one, rel=1e-6)
    first, last = span_bounds(Span.QUARTER, date(2026, 8, 1), contract)
    ahead = period_projection(h.meter, contract, first, last, today)
    assert (first, last, ahead.added_m2, ahead.days_remaining) == (
        date(2026, 7, 1), date(2026, 9, 30), 0.0, 92)
    assert ahead.projected_m2 == pytest.approx(92 * one, rel=1e-6)


def test_a_user_idle_in_the_range_is_left_out() -> None:
    h = Harness()
    h.event("providerFileProcessingFinished", "u1", sq(10, 50), ts=T0)
    h.event("providerFileProcessingFinished", "u2", sq(11, 50), ts=T0 + timedelta(days=3))
    h.event("providerFileProcessingFinished", "u3", sq(12, 50), status="FAILED",
            ts=T0 + timedelta(days=3))
    found = breakdown(h.meter, OWNER, T0.date() + timedelta(days=1), T0.date() + timedelta(days=5),
                      recent=10)
    assert [(u.leaf_user_id, u.events) for u in found.users] == [("u2", 1), ("u3", 1)]


def test_the_breakdown_knows_every_event_type_ingest_accepts() -> None:
    assert get_args(EventType) == EVENT_TYPES
