"""Daily consumption snapshots derived from area attributed per day (SPEC §5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from aggregates.periods import day_end

# Re-emitting a snapshot for a change below a micro-square-metre would only be float noise.
CHANGE_EPSILON_M2 = 1e-6


@dataclass(frozen=True, slots=True)
class DayFigures:
    """What a daily snapshot reports for one scope and day."""

    added_m2: float
    total_m2: float


@dataclass(frozen=True, slots=True)
class Emitted:
    """The last snapshot sent for a key: needed to number revisions and skip no-ops.

    It holds the whole snapshot as sent, and `seq`, the input that produced it, so a
    rebuild can send it again unchanged when it may not have reached the broker.
    """

    revision: int
    added_m2: float
    total_m2: float
    final: bool
    seq: int
    quota_m2: float | None
    emitted_at: datetime


def figures_for(by_day: Mapping[int, float], days: Iterable[int]) -> dict[int, DayFigures]:
    """Added and running total for each requested ordinal day, from per-day attribution."""
    wanted = sorted(set(days))
    if not wanted:
        return {}
    ordered = sorted(by_day.items())
    result: dict[int, DayFigures] = {}
    running = 0.0
    i = 0
    for day in wanted:
        while i < len(ordered) and ordered[i][0] <= day:
            running += ordered[i][1]
            i += 1
        result[day] = DayFigures(by_day.get(day, 0.0), running)
    return result


def is_closed(day: int, now: datetime, grace: timedelta) -> bool:
    """A day is final once it ended and the grace for late events has passed too."""
    return day_end(date.fromordinal(day)) + grace <= now


def needs_emit(last: Emitted | None, figures: DayFigures, final: bool) -> bool:
    """Emit when the figures moved, or when a provisional snapshot becomes final."""
    if last is None:
        return True
    moved = (
        abs(last.added_m2 - figures.added_m2) > CHANGE_EPSILON_M2
        or abs(last.total_m2 - figures.total_m2) > CHANGE_EPSILON_M2
    )
    return moved or (final and not last.final)
