"""Contract terms and days in UTC event time (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum


def day_of(ts: datetime) -> date:
    """Event time decides the day; a naive time is taken as UTC so no host zone leaks in."""
    if ts.tzinfo is None:
        return ts.date()
    return ts.astimezone(UTC).date()


def add_years(start: date, years: int) -> date:
    """Anniversary of `start`; a 29 February start rolls to 28 February in common years."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)


@dataclass(frozen=True, slots=True)
class Term:
    """One annual period of a contract: [start, end) in whole UTC days."""

    index: int
    start: date
    end: date

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end


def term_for(contract_start: date, day: date) -> Term:
    """The term holding `day`; days before the first term fall into the first term.

    A late event may carry a timestamp before the contract's first counted event; the
    contract began with the earliest event it saw, so such area is billed in term 0.
    """
    index = max(0, day.year - contract_start.year)
    while index > 0 and add_years(contract_start, index) > day:
        index -= 1
    while add_years(contract_start, index + 1) <= day:
        index += 1
    return Term(index, add_years(contract_start, index), add_years(contract_start, index + 1))


def day_end(day: date) -> datetime:
    """The instant a day closes, from which the finalisation grace period runs."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


class Calendar(StrEnum):
    """Calendar periods of whole UTC days. A week is an ISO week: Monday to Sunday."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


def period_start(day: date, period: Calendar) -> date:
    """First day of the calendar period holding `day`."""
    if period is Calendar.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Calendar.MONTH:
        return day.replace(day=1)
    if period is Calendar.QUARTER:
        return day.replace(month=day.month - (day.month - 1) % 3, day=1)
    if period is Calendar.YEAR:
        return day.replace(month=1, day=1)
    return day


def period_last_day(day: date, period: Calendar) -> date:
    """Last day of the calendar period holding `day` (periods are whole days, inclusive)."""
    start = period_start(day, period)
    if period is Calendar.WEEK:
        return start + timedelta(days=6)
    if period is Calendar.MONTH:
        return _add_months(start, 1) - timedelta(days=1)
    if period is Calendar.QUARTER:
        return _add_months(start, 3) - timedelta(days=1)
    if period is Calendar.YEAR:
        return start.replace(month=12, day=31)
    return day


def _add_months(first: date, months: int) -> date:
    """The first of the month `months` after `first`, itself a first of a month."""
    index = first.month - 1 + months
    return first.replace(year=first.year + index // 12, month=index % 12 + 1)
