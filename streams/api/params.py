"""Path parameters, and turning parsed query values into the dates and ranges the
read-side functions take."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import Path

from aggregates.periods import day_of
from streams.api.errors import bad_parameter

MAX_RANGE_DAYS = 3660
MAX_HOUR_RANGE_DAYS = 31


def day(value: datetime | date | None, default: date) -> date:
    """A timestamp means its UTC day; a bare date is taken as is."""
    if value is None:
        return default
    if isinstance(value, datetime):
        return day_of(value)
    return value


def date_range(
    start: date, end: date, start_name: str, end_name: str, max_days: int = MAX_RANGE_DAYS
) -> tuple[date, date]:
    """Ordered and bounded, so a series never grows without limit."""
    if start > end:
        raise bad_parameter(start_name, f"{start_name} is after {end_name}")
    if end - start > timedelta(days=max_days):
        raise bad_parameter(end_name, f"the range may span at most {max_days} days")
    if start.year < 1900 or end.year > 2200:
        raise bad_parameter(start_name, "dates must lie between 1900 and 2200")
    return start, end


ContractId = Annotated[str, Path(alias="contractId", max_length=256)]
LeafUserId = Annotated[str, Path(alias="leafUserId", max_length=256)]
WebhookId = Annotated[str, Path(alias="webhookId", max_length=64)]
