"""aggregates.usage on the Meter the metering agent built: units, series by hour, day and
month, projections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from shapely.geometry import box

from aggregates import geodesic_area_m2
from aggregates.contracts import OWNER_SCOPE, contract_id_for, user_scope
from aggregates.products import Product
from aggregates.usage import (
    Confidence,
    PeriodType,
    by_period,
    daily_series,
    plan,
)
from schemas.units import Unit, convert, to_m2
from tests.api.conftest import OWNER, Feed, sq

FILE = contract_id_for(OWNER, Product.OPERATIONS_FILE)


def test_units() -> None:
    assert convert(4046.8564224, Unit.ACRES) == 1.0
    assert convert(25_000, Unit.HECTARES) == 2.5
    for unit in Unit:
        assert to_m2(convert(1234.5, unit), unit) == pytest.approx(1234.5)


async def test_series_is_zero_filled_and_restarts_with_each_term(feed: Feed) -> None:
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    await feed.event(OWNER, "u1", sq(0, 0), ts=t0)
    await feed.event(OWNER, "u1", sq(0, 0), ts=datetime(2027, 3, 2, 12, tzinfo=UTC))  # term 1
    contract = feed.meter.contracts[FILE]
    now = datetime(2027, 3, 10, tzinfo=UTC)
    days = daily_series(feed.meter, contract, OWNER_SCOPE, date(2027, 2, 27), date(2027, 3, 3), now)
    one = geodesic_area_m2(sq(0, 0))
    assert [d.day.day for d in days] == [27, 28, 1, 2, 3]
    assert [round(d.total_m2 / one, 6) for d in days] == [1, 1, 0, 1, 1]
    assert [round(d.added_m2 / one, 6) for d in days] == [0, 0, 0, 1, 0]
    assert all(d.final for d in days)


async def test_plan_projects_a_steady_pace_to_the_term_end(feed: Feed) -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    for i in range(40):  # one new square a day for 40 days
        await feed.event(OWNER, "u1", sq(0.002 * i, 0), ts=start + timedelta(days=i))
    one = geodesic_area_m2(sq(0, 0))
    quota = 200 * one
    await feed.set_quota(FILE, quota, datetime.now(UTC))
    contract = feed.meter.contracts[FILE]
    p = plan(feed.meter, contract, date(2026, 4, 9))
    assert (p.days_elapsed, p.days_remaining) == (40, 325)
    assert p.usage.used_m2 == pytest.approx(40 * one)
    assert p.daily_average_m2 == pytest.approx(one)
    assert p.projection.active_days == 30 and p.confidence is Confidence.HIGH
    assert p.projected_m2 == pytest.approx((40 + 325) * one)
    assert p.will_exceed and p.exceed_on == date(2026, 4, 9) + timedelta(days=160)
    late = plan(feed.meter, contract, date(2030, 1, 1))  # a later term: nothing used
    assert late.usage.term.index == 3 and late.usage.used_m2 == 0 and not late.will_exceed
    assert late.confidence is Confidence.LOW


async def test_plan_does_not_project_one_bursty_day_to_a_year(feed: Feed) -> None:
    """Issue 8 item 10: a 270 ha import on a contract's first day projected 98,741 ha."""
    await feed.event(OWNER, "u1", box(0, 0, 0.05, 0.05), ts=datetime(2026, 3, 1, 12, tzinfo=UTC))
    contract = feed.meter.contracts[FILE]
    p = plan(feed.meter, contract, date(2026, 3, 1))
    used = p.usage.used_m2
    assert used == pytest.approx(geodesic_area_m2(box(0, 0, 0.05, 0.05)))
    assert p.days_remaining == 364
    assert p.projected_m2 == pytest.approx(used)  # was used * 365
    assert p.confidence is Confidence.LOW and p.projection.active_days == 1
    assert p.projected_low_m2 == pytest.approx(used)
    assert p.projected_high_m2 == pytest.approx(used + used / 30 * 364)
    # Steady use after the burst sets the pace; the burst itself is trimmed away.
    for i in range(1, 30):
        await feed.event(OWNER, "u1", sq(1 + 0.002 * i, 0),
                         ts=datetime(2026, 3, 1 + i, 12, tzinfo=UTC))
    p = plan(feed.meter, contract, date(2026, 3, 30))
    assert p.daily_average_m2 == pytest.approx(geodesic_area_m2(sq(0, 0)))
    assert p.confidence is Confidence.HIGH


# ---- hour, day and month series (issue 8 item 4) -------------------------------------


def _series_agree(feed: Feed, scope: str, start: date, end: date) -> None:
    """Hours sum to their day, months to their days; running totals never fall and end
    on the scope's total."""
    contract = feed.meter.contracts[FILE]
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    hours = by_period(feed.meter, contract, scope, PeriodType.HOUR, start, end, now)
    days = by_period(feed.meter, contract, scope, PeriodType.DAY, start, end, now)
    months = by_period(feed.meter, contract, scope, PeriodType.MONTH, start, end, now)
    assert len(hours) == 24 * len(days)
    for i, day in enumerate(days):
        mine = hours[24 * i:24 * (i + 1)]
        assert all(h.start.date() == day.start.date() for h in mine)
        assert sum(h.added_m2 for h in mine) == pytest.approx(day.added_m2, abs=1e-6)
        assert mine[-1].total_m2 == pytest.approx(day.total_m2, abs=1e-6)
        assert all(h.added_m2 >= 0 for h in mine)
    running = [h.total_m2 for h in hours]
    assert all(b >= a for a, b in zip(running, running[1:], strict=False)), running
    total = feed.meter.total_m2(FILE, 0, scope)
    assert running[-1] == pytest.approx(total) and days[-1].total_m2 == pytest.approx(total)
    assert months[-1].total_m2 == pytest.approx(total)
    assert sum(m.added_m2 for m in months) == pytest.approx(sum(h.added_m2 for h in hours))


async def test_hours_agree_with_days_after_a_late_event_moves_area(feed: Feed) -> None:
    """A late event claims area a later day had added: records no longer sum per day."""
    d1 = datetime(2026, 3, 1, tzinfo=UTC)
    await feed.event(OWNER, "u1", sq(0, 0), ts=d1 + timedelta(hours=12))
    await feed.event(OWNER, "u1", sq(0.002, 0), ts=d1 + timedelta(days=1, hours=9))
    await feed.event(OWNER, "u1", sq(0.004, 0), ts=d1 + timedelta(days=1, hours=15))
    await feed.event(OWNER, "u2", sq(0.004, 0), ts=d1 + timedelta(days=2, hours=8))
    # Late: dated day 1, it covers what day 2 added at 09:00, the gap after it and half of
    # what day 2 added at 15:00.
    await feed.event(OWNER, "u1", box(0.002, 0, 0.0045, 0.001), ts=d1 + timedelta(hours=10))
    one = geodesic_area_m2(sq(0, 0))
    for scope in (OWNER_SCOPE, user_scope("u1"), user_scope("u2")):
        _series_agree(feed, scope, date(2026, 3, 1), date(2026, 3, 4))
    contract = feed.meter.contracts[FILE]
    hours = by_period(feed.meter, contract, OWNER_SCOPE, PeriodType.HOUR, date(2026, 3, 1),
                      date(2026, 3, 1), datetime(2026, 3, 10, tzinfo=UTC))
    # Day 1 now holds 3.5 squares. Its records added 1 at 12:00 and 1 at 10:00 (the gap
    # between day 2's squares; the 1.5 squares it took from day 2 moved, they were not
    # added): the remainder of 1.5 goes to the day's last active hour, 12:00.
    assert hours[10].added_m2 == pytest.approx(one, rel=1e-6)
    assert hours[12].added_m2 == pytest.approx(2.5 * one, rel=1e-6)
    assert sum(h.added_m2 for h in hours) == pytest.approx(3.5 * one, rel=1e-6)


async def test_hours_put_what_records_added_in_their_hour(feed: Feed) -> None:
    d1 = datetime(2026, 3, 1, tzinfo=UTC)
    await feed.event(OWNER, "u1", sq(0, 0), ts=d1 + timedelta(hours=3, minutes=59))
    await feed.event(OWNER, "u1", sq(0.002, 0), ts=d1 + timedelta(hours=17))
    contract = feed.meter.contracts[FILE]
    hours = by_period(feed.meter, contract, OWNER_SCOPE, PeriodType.HOUR, date(2026, 3, 1),
                      date(2026, 3, 1), datetime(2026, 3, 10, tzinfo=UTC))
    one = geodesic_area_m2(sq(0, 0))
    assert [round(h.added_m2 / one, 9) for h in hours] == [
        1 if h in (3, 17) else 0 for h in range(24)
    ]
    assert [round(h.total_m2 / one, 9) for h in hours] == [
        0 if h < 3 else 1 if h < 17 else 2 for h in range(24)
    ]
