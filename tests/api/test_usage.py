"""aggregates.usage on a pure Meter: units, term-split series, projections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from aggregates import geodesic_area_m2
from aggregates.contracts import OWNER_SCOPE, contract_id_for
from aggregates.products import Product
from aggregates.usage import (
    Unit,
    convert,
    daily_series,
    plan,
    to_m2,
)
from tests.api.conftest import OWNER, World, sq

FILE = contract_id_for(OWNER, Product.OPERATIONS_FILE)


def test_units() -> None:
    assert convert(4046.8564224, Unit.ACRES) == 1.0
    assert convert(25_000, Unit.HECTARES) == 2.5
    for unit in Unit:
        assert to_m2(convert(1234.5, unit), unit) == pytest.approx(1234.5)


def test_series_is_zero_filled_and_restarts_with_each_term() -> None:
    w = World()
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    w.event(OWNER, "u1", sq(0, 0), ts=t0)
    w.event(OWNER, "u1", sq(0, 0), ts=datetime(2027, 3, 2, 12, tzinfo=UTC))  # term 1
    contract = w.meter.contracts[FILE]
    now = datetime(2027, 3, 10, tzinfo=UTC)
    days = daily_series(w.meter, contract, OWNER_SCOPE, date(2027, 2, 27), date(2027, 3, 3), now)
    one = geodesic_area_m2(sq(0, 0))
    assert [d.day.day for d in days] == [27, 28, 1, 2, 3]
    assert [round(d.total_m2 / one, 6) for d in days] == [1, 1, 0, 1, 1]
    assert [round(d.added_m2 / one, 6) for d in days] == [0, 0, 0, 1, 0]
    assert all(d.final for d in days)


def test_plan_projects_the_daily_average_to_the_term_end() -> None:
    w = World()
    w.event(OWNER, "u1", sq(0, 0), ts=datetime(2026, 3, 1, 12, tzinfo=UTC))
    quota = 30 * geodesic_area_m2(sq(0, 0))
    w.persist(w.meter.set_quota(FILE, quota, datetime.now(UTC), w.next_seq()))
    contract = w.meter.contracts[FILE]
    p = plan(w.meter, contract, date(2026, 3, 10), Unit.M2)
    assert (p.days_elapsed, p.days_remaining) == (10, 355)
    assert p.daily_average_m2 == pytest.approx(p.usage.used_m2 / 10)
    assert p.will_exceed and p.exceed_on == date(2026, 3, 1) + timedelta(days=299)
    late = plan(w.meter, contract, date(2030, 1, 1), Unit.M2)  # a later term: nothing used
    assert late.usage.term.index == 3 and late.usage.used_m2 == 0 and not late.will_exceed
