"""Calendar periods: ISO weeks from Monday, months, quarters and years of UTC days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.periods import Calendar, period_last_day, period_start

days = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))


@given(days, st.sampled_from(list(Calendar)))
def test_a_period_holds_its_day_and_the_next_day_starts_the_next_period(
    day: date, period: Calendar
) -> None:
    first, last = period_start(day, period), period_last_day(day, period)
    assert first <= day <= last
    assert period_start(last, period) == first and period_last_day(first, period) == last
    after = last + timedelta(days=1)
    assert period_start(after, period) == after
    before = first - timedelta(days=1)
    assert period_last_day(before, period) == before


@given(days)
def test_weeks_are_iso_weeks_from_monday(day: date) -> None:
    first = period_start(day, Calendar.WEEK)
    assert first.weekday() == 0 and first.isocalendar()[:2] == day.isocalendar()[:2]
    assert (period_last_day(day, Calendar.WEEK) - first).days == 6


@pytest.mark.parametrize(
    ("day", "period", "first", "last"),
    [
        (date(2026, 3, 31), Calendar.QUARTER, date(2026, 1, 1), date(2026, 3, 31)),
        (date(2026, 11, 5), Calendar.QUARTER, date(2026, 10, 1), date(2026, 12, 31)),
        (date(2024, 2, 10), Calendar.MONTH, date(2024, 2, 1), date(2024, 2, 29)),
        (date(2026, 12, 31), Calendar.MONTH, date(2026, 12, 1), date(2026, 12, 31)),
        (date(2026, 6, 15), Calendar.YEAR, date(2026, 1, 1), date(2026, 12, 31)),
        # 1 January 2027 is a Friday of ISO week 2026-W53
        (date(2027, 1, 1), Calendar.WEEK, date(2026, 12, 28), date(2027, 1, 3)),
        (date(2026, 3, 31), Calendar.DAY, date(2026, 3, 31), date(2026, 3, 31)),
    ],
)
def test_period_bounds(day: date, period: Calendar, first: date, last: date) -> None:
    assert (period_start(day, period), period_last_day(day, period)) == (first, last)
