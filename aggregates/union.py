"""Unique area of one scope and term, kept as disjoint day-stamped pieces."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from rtree.index import Index
from shapely.geometry.base import BaseGeometry

from aggregates.area import EPSILON_M2, geodesic_area_m2
from aggregates.codec import decode_piece, encode_piece
from aggregates.overlay import GRID_DEG, intersecting, object_array, polygonal_part, subtract_all

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class _Plan:
    """What one add changes; computed once so preview and add cannot disagree."""

    fresh: BaseGeometry | None
    fresh_area: float
    shrinks: list[tuple[int, BaseGeometry | None, float]]
    added: float


@dataclass
class _Hits:
    """Stored pieces that really intersect a new geometry."""

    ids: list[int]
    days: np.ndarray
    geoms: np.ndarray


class UniqueAreaLedger:
    """Union of everything counted in one scope and term, attributed to days.

    The union is never materialised: it is a set of pairwise-disjoint pieces, so the total
    is a sum, an add only touches the pieces its bounding box meets (cost follows the
    neighbours, not the size of the scope), and each piece can be persisted on its own.
    Pieces whose area falls below EPSILON_M2 are dropped: they are overlay dust, and
    keeping them would only grow the index.

    rtree deletes are slow (libspatialindex condenses the tree; ~1 ms here), and pieces
    only ever shrink, so a shrunk piece keeps its old, still-covering index entry and a
    deleted piece leaves a stale entry that lookups skip. Ids are never reused, so a
    stale entry cannot be mistaken for a live piece; a rebuild drops them all.
    """

    def __init__(self) -> None:
        self._index = Index()
        self._pieces: dict[int, tuple[int, BaseGeometry]] = {}
        self._areas: dict[int, float] = {}
        self._indexed: dict[int, Bounds] = {}
        self._day_area: dict[int, float] = {}
        self._day_count: dict[int, int] = {}
        self._total = 0.0
        self._next_id = 0
        self._persisted_below = 0
        self._dirty: set[int] = set()

    @classmethod
    def from_pieces(cls, pieces: Iterable[tuple[int, bytes]]) -> "UniqueAreaLedger":
        """Rebuild from persisted pieces; the total is the sum of their areas.

        Pieces are trusted to be disjoint; if a damaged store held overlapping pieces the
        ledger still works (later adds subtract the union of what they meet), it merely
        reports the overlap twice until those pieces are rewritten.
        """
        ledger = cls()
        for piece_id, data in pieces:
            day, geom = decode_piece(data)
            ledger._remember(piece_id, day, geom, geodesic_area_m2(geom))
        if ledger._pieces:
            ledger._index = Index(ledger._stream())
        ledger._next_id = max(ledger._pieces, default=-1) + 1
        ledger._persisted_below = ledger._next_id
        return ledger

    @property
    def total_m2(self) -> float:
        return self._total

    @property
    def piece_count(self) -> int:
        return len(self._pieces)

    def area_by_day(self) -> dict[int, float]:
        """m² attributed to each day; the values sum to total_m2."""
        return dict(sorted(self._day_area.items()))

    def preview(self, geom: BaseGeometry, day: int = 0) -> float:
        """What add(geom, day) would return, without changing anything (quota checks)."""
        return self._plan(geom, day).added

    def add(self, geom: BaseGeometry, day: int = 0) -> float:
        """Count geom on `day`; returns how much the union's total grew.

        Area already held by pieces of an earlier or equal day is not new. Area held by
        pieces of a later day moves to `day` (event time decides attribution, so a late
        event claims what it covered first) without changing the total.
        """
        plan = self._plan(geom, day)
        for piece_id, remainder, remainder_area in plan.shrinks:
            self._shrink(piece_id, remainder, remainder_area)
        if plan.fresh is not None:
            self._insert(day, plan.fresh, plan.fresh_area)
        return plan.added

    def take_changes(self) -> list[tuple[int, bytes | None]]:
        """Piece writes since the last call; None deletes a piece.

        Writes to pieces the store already holds (deletes and shrinks) come before new
        pieces, so a crash that loses a suffix of the writes can only undercount.
        """
        existing = sorted(i for i in self._dirty if i < self._persisted_below)
        created = sorted(i for i in self._dirty if i >= self._persisted_below and i in self._pieces)
        self._dirty = set()
        self._persisted_below = self._next_id
        return [(i, self._encoded(i)) for i in existing + created]

    def _plan(self, geom: BaseGeometry, day: int) -> _Plan:
        if geom.is_empty:
            return _Plan(None, 0.0, [], 0.0)
        hits = self._hits(geom)
        later = hits.days > day
        fresh: BaseGeometry | None = subtract_all(geom, hits.geoms[~later])
        fresh_area = geodesic_area_m2(fresh)
        if fresh_area < EPSILON_M2:
            fresh, fresh_area = None, 0.0
        shrinks = [self._shrunk(pid, geom) for pid in np.asarray(hits.ids)[later].tolist()]
        moved = sum(self._areas[pid] - area for pid, _, area in shrinks)
        return _Plan(fresh, fresh_area, shrinks, fresh_area - moved)

    def _shrunk(self, piece_id: int, geom: BaseGeometry) -> tuple[int, BaseGeometry | None, float]:
        """A later-day piece minus geom: the covered part now belongs to the earlier day."""
        piece = self._pieces[piece_id][1]
        remainder = polygonal_part(shapely.difference(piece, geom, grid_size=GRID_DEG))
        area = geodesic_area_m2(remainder)
        if area < EPSILON_M2:
            return piece_id, None, 0.0
        return piece_id, remainder, area

    def _hits(self, geom: BaseGeometry) -> _Hits:
        ids = [i for i in self._index.intersection(geom.bounds) if i in self._pieces]
        geoms = object_array([self._pieces[i][1] for i in ids])
        days = np.fromiter((self._pieces[i][0] for i in ids), dtype=np.int64, count=len(ids))
        mask = intersecting(geom, geoms)
        return _Hits(np.asarray(ids, dtype=np.int64)[mask].tolist(), days[mask], geoms[mask])

    def _insert(self, day: int, geom: BaseGeometry, area: float) -> None:
        piece_id = self._next_id
        self._next_id += 1
        self._remember(piece_id, day, geom, area)
        self._indexed[piece_id] = geom.bounds
        self._index.insert(piece_id, geom.bounds)
        self._dirty.add(piece_id)

    def _shrink(self, piece_id: int, remainder: BaseGeometry | None, area: float) -> None:
        day, _ = self._pieces[piece_id]
        self._forget(piece_id)
        self._dirty.add(piece_id)
        if remainder is None:
            del self._indexed[piece_id]
            return
        self._remember(piece_id, day, remainder, area)
        if not _within(remainder.bounds, self._indexed[piece_id]):
            # Snap-rounding may nudge a new vertex half a grid cell past the old box.
            self._index.delete(piece_id, self._indexed[piece_id])
            self._indexed[piece_id] = remainder.bounds
            self._index.insert(piece_id, remainder.bounds)

    def _remember(self, piece_id: int, day: int, geom: BaseGeometry, area: float) -> None:
        self._pieces[piece_id] = (day, geom)
        self._areas[piece_id] = area
        self._total += area
        self._day_area[day] = self._day_area.get(day, 0.0) + area
        self._day_count[day] = self._day_count.get(day, 0) + 1

    def _forget(self, piece_id: int) -> None:
        day, _ = self._pieces.pop(piece_id)
        area = self._areas.pop(piece_id)
        self._total -= area
        self._day_count[day] -= 1
        if self._day_count[day] == 0:
            # Dropping the key avoids a float residue like 1e-12 m² for an emptied day.
            del self._day_count[day], self._day_area[day]
        else:
            self._day_area[day] -= area

    def _encoded(self, piece_id: int) -> bytes | None:
        piece = self._pieces.get(piece_id)
        return None if piece is None else encode_piece(*piece)

    def _stream(self) -> Iterator[tuple[int, Bounds, None]]:
        """Entries for rtree's bulk (STR) loader, much faster than one insert per piece."""
        for piece_id, (_, geom) in self._pieces.items():
            self._indexed[piece_id] = geom.bounds
            yield piece_id, geom.bounds, None


def _within(inner: Bounds, outer: Bounds) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )
