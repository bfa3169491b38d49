"""Pages of list endpoints, and the X-Total-Count header every list sends (SPEC §6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import Response

T = TypeVar("T")
TOTAL = "X-Total-Count"
TOTAL_HEADER: dict[int | str, dict[str, Any]] = {
    200: {"headers": {TOTAL: {"description": "Items on all pages.", "required": True,
                              "schema": {"type": "integer", "minimum": 0}}}},
}


def page_of(items: Sequence[T], page: int, size: int) -> list[T]:
    """`page` counts from zero here; /usage handlers pass page - 1."""
    return list(items[page * size:(page + 1) * size])


def set_total(response: Response, total: int) -> None:
    response.headers[TOTAL] = str(total)
