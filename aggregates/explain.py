"""Explain my bill: which event counted a point (or an area) of ground in a union, and
which events covered it too and so were deduplicated against it (SPEC §2: repeated processing of the
same area in the same scope and term adds nothing).

The first answer is one R-tree query and one read per piece holding the point: each piece
keeps its origin (aggregates/origin.py). The second is a scan of the owner's filed
geometries over the days asked (aggregates/coverage.py), read a page at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import islice
from typing import TYPE_CHECKING

from shapely.geometry.base import BaseGeometry

from aggregates.area import geodesic_area_m2
from aggregates.contracts import OWNER_SCOPE, Contract
from aggregates.coverage import Covering, Search
from aggregates.origin import Origin, decode_origin
from aggregates.periods import add_years
from aggregates.products import Product

if TYPE_CHECKING:
    from aggregates.meter import Meter

__all__ = ["Counted", "Explanation", "Question", "counted_ground", "explain"]


MAX_PIECES = 1_000  # what one question may read of a union's pieces


@dataclass(frozen=True, slots=True)
class Question:
    """A point or an area of one scope of one contract's term; events are looked for on
    the days [start, end] of that term."""

    contract: Contract
    term: int
    scope: str
    where: BaseGeometry
    start: date
    end: date


@dataclass(frozen=True, slots=True)
class Counted:
    """A stored piece holding the point: its day, its area and the event that counted it
    (None for a piece stored before pieces kept their origin)."""

    piece_id: int
    day: date
    area_m2: float
    origin: Origin | None
    geometry: BaseGeometry
    inside_m2: float = 0.0  # of the piece within the area asked about; 0 for a point


@dataclass(frozen=True, slots=True)
class Explanation:
    counted: list[Counted]
    deduplicated: list[Covering]  # one page, newest first
    more: bool  # a next page holds more


def explain(meter: Meter, question: Question, skip: int = 0, limit: int = 50) -> Explanation:
    """Raises ValueError for AUDIT, whose live union is not kept as counted pieces, and
    for an area meeting over MAX_PIECES pieces.

    Only days from the first counted one on are searched: an event of an earlier day
    covering the point would have counted it itself, so a point nobody counted costs no
    search at all."""
    contract = question.contract
    if not contract.product.period_bounded:
        raise ValueError(f"{contract.product.value} is a live union: explain covers the "
                         "period-bounded products")
    lkey = (contract.contract_id, question.term, question.scope)
    where = question.where
    areal = where.area > 0
    counted = [
        Counted(h.piece_id, date.fromordinal(h.day), h.area_m2, decode_origin(h.origin), h.geom,
                geodesic_area_m2(h.geom.intersection(where)) if areal else 0.0)
        for h in meter.bounded.held_in(lkey, where, MAX_PIECES)
    ]
    if not counted:
        return Explanation([], [], False)
    first = {c.origin.event_id for c in counted if c.origin is not None}
    search = _search(question, min(c.day for c in counted))
    others = (
        c for c in meter.coverage.covering(search, where)
        if c.event_id not in first
    )
    page = list(islice(others, skip, skip + limit + 1))
    return Explanation(counted, page[:limit], len(page) > limit)


def counted_ground(
    meter: Meter, question: Question, after: int = -1, limit: int = 200
) -> list[Counted]:
    """The pieces of the question's union counted on its days [start, end], in id order
    after piece `after`, at most `limit`: a map reads the ground a page at a time, each
    piece at most MAX_PIECE_VERTICES vertices (aggregates/overlay.py)."""
    contract = question.contract
    if not contract.product.period_bounded:
        raise ValueError(f"{contract.product.value} is a live union: the map covers the "
                         "period-bounded products")
    lkey = (contract.contract_id, question.term, question.scope)
    days = question.start.toordinal(), question.end.toordinal()
    return [
        Counted(h.piece_id, date.fromordinal(h.day), h.area_m2, decode_origin(h.origin), h.geom)
        for h in meter.bounded.pieces(lkey, days, limit, after)
    ]


def _search(question: Question, first_day: date) -> Search:
    """Only the scope's events count against it: a user's own, or every user's for the
    owner; only the contract's product's, or every product's for UNIFIED_AREA."""
    contract = question.contract
    term = contract.term(add_years(contract.start, question.term))
    start = max(question.start, term.start, first_day)
    end = min(question.end, term.last_day)
    user = None if question.scope == OWNER_SCOPE else question.scope.removeprefix("leaf-user:")
    product = None if contract.product is Product.UNIFIED_AREA else contract.product.value
    return Search(contract.api_owner, start, end, user, product)
