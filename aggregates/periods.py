"""Contract terms and days in UTC event time (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


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
