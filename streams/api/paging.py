"""One page-numbering rule for every list: pages count from 1 (`page=0` is a 400, as the
schema states), at most 100 items a page, and X-Total-Count on every list (SPEC §6).

Series over a date range compute only the page asked for, so a range of any length costs
what one page does and needs no cap on its span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Response

T = TypeVar("T")
TOTAL = "X-Total-Count"
TOTAL_HEADER: dict[int | str, dict[str, Any]] = {
    200: {"headers": {TOTAL: {"description": "Items on all pages.", "required": True,
                              "schema": {"type": "integer", "minimum": 0}}}},
}


@dataclass(frozen=True)
class PageSpan:
    """Items [first, stop) of a list of `total`: the page `page` of `size` (1-based)."""

    first: int
    stop: int

    @classmethod
    def of(cls, page: int, size: int, total: int) -> PageSpan:
        first = min((page - 1) * size, total)
        return cls(first, min(first + size, total))

    @property
    def empty(self) -> bool:
        return self.stop <= self.first


def page_of(items: Sequence[T], page: int, size: int) -> list[T]:
    window = PageSpan.of(page, size, len(items))
    return list(items[window.first:window.stop])


def set_total(response: Response, total: int) -> None:
    response.headers[TOTAL] = str(total)
