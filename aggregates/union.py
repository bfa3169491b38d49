"""Unique area of one scope and term, kept as disjoint day-stamped pieces."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from rtree.index import Index
from shapely.geometry.base import BaseGeometry

from aggregates.area import EPSILON_M2, geodesic_area_m2
from aggregates.codec import decode_piece, encode_piece
from aggregates.overlay import (
    MAX_HITS,
    MAX_PIECE_VERTICES,
    bisect,
    intersecting,
    object_array,
    subdivide,
    subtract_all,
    vertex_count,
)

Bounds = tuple[float, float, float, float]
SEQ_BITS = 20  # pieces one input may create in one ledger: 2**20


@dataclass(frozen=True)
class _Plan:
    """What one add changes; computed once so preview and add cannot disagree."""

    shrinks: list[tuple[int, BaseGeometry | None, float]]  # existing piece rewritten or None
    inserts: list[tuple[int, BaseGeometry, float]]  # new pieces: day, geometry, area
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

    Every piece is kept small: at most MAX_PIECE_VERTICES vertices (larger remainders are
    subdivided by bounding-box bisection before they are stored), and an incoming
    geometry is bisected until each part meets at most MAX_HITS stored pieces, so a
    km-sized machine file or satellite footprint costs a number of small overlays, and
    never leaves a giant many-holed piece behind for later events to overlay against.

    rtree deletes are slow (libspatialindex condenses the tree; ~1 ms here), and pieces
    only ever shrink, so a shrunk piece keeps its old, still-covering index entry and a
    deleted piece leaves a stale entry that lookups skip. Ids are never reused, so a
    stale entry cannot be mistaken for a live piece; a rebuild drops them all.

    A piece's id is the sequence number of the input that created it (its offset on the
    metering topic) shifted left by SEQ_BITS, plus a counter. Ids therefore never collide
    with stored pieces. (A message is never added twice: its writes are all or nothing,
    and a replay of a stored one changes nothing; see aggregates/journal.py.)
    """

    def __init__(self) -> None:
        self._index = Index()
        self._pieces: dict[int, tuple[int, BaseGeometry]] = {}
        self._areas: dict[int, float] = {}
        self._indexed: dict[int, Bounds] = {}
        self._day_area: dict[int, float] = {}
        self._day_count: dict[int, int] = {}
        self._total = 0.0
        self._seq = -1
        self._next_seq = 0
        self._next_id = 0
        self._created: set[int] = set()
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
            ledger._remember(piece_id, *decode_piece(data))
        if ledger._pieces:
            ledger._index = Index(ledger._stream())
        ledger._next_seq = (max(ledger._pieces, default=-1) >> SEQ_BITS) + 1
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

    def add(self, geom: BaseGeometry, day: int = 0, seq: int | None = None) -> float:
        """Count geom on `day` for input `seq`; returns how much the union's total grew.

        Without `seq` the add is an input of its own, numbered after every stored piece.
        Area already held by pieces of an earlier or equal day is not new. Area held by
        pieces of a later day moves to `day` (event time decides attribution, so a late
        event claims what it covered first) without changing the total.
        """
        if seq is None:
            seq = self._next_seq
        self._next_seq = max(self._next_seq, seq + 1)
        plan = self._plan(geom, day)
        self._start(seq)
        for piece_id, remainder, remainder_area in plan.shrinks:
            self._shrink(piece_id, remainder, remainder_area)
        for piece_day, piece, area in plan.inserts:
            self._insert(piece_day, piece, area)
        return plan.added

    def take_changes(self) -> list[tuple[int, bytes | None]]:
        """Piece writes since the last call, stored pieces first, in id order; None
        deletes a piece. A piece created and emptied since the last call is not written."""
        existing = sorted(self._dirty - self._created)
        created = sorted(i for i in self._created if i in self._pieces)
        self._dirty = set()
        self._created = set()
        return [(i, self._encoded(i)) for i in existing + created]

    def _start(self, seq: int) -> None:
        if seq != self._seq:
            self._seq, self._next_id = seq, seq << SEQ_BITS

    def _plan(self, geom: BaseGeometry, day: int) -> _Plan:
        if geom.is_empty:
            return _Plan([], [], 0.0)
        inserts: list[tuple[int, BaseGeometry, float]] = []
        later: dict[int, list[BaseGeometry]] = {}
        for part, hits in self._parts(geom):
            is_later = hits.days > day
            inserts.extend(_sized(day, subtract_all(part, hits.geoms[~is_later])))
            for piece_id in np.asarray(hits.ids, dtype=np.int64)[is_later].tolist():
                later.setdefault(piece_id, []).append(part)
        shrinks: list[tuple[int, BaseGeometry | None, float]] = []
        for piece_id, cutters in later.items():
            piece_day, piece = self._pieces[piece_id]
            remainder = subtract_all(piece, object_array(cutters))
            kept = _sized(piece_day, remainder)
            if kept:
                shrinks.append((piece_id, kept[0][1], kept[0][2]))
                inserts.extend(kept[1:])
            else:
                shrinks.append((piece_id, None, 0.0))
        added = sum(area for _, _, area in inserts)
        added -= sum(self._areas[piece_id] - area for piece_id, _, area in shrinks)
        return _Plan(shrinks, inserts, added)

    def _parts(self, geom: BaseGeometry) -> list[tuple[BaseGeometry, _Hits]]:
        """geom in parts of bounded size, each with the stored pieces it really meets, in
        id order: the R-tree's order differs once it is bulk-loaded, and an overlay fed
        the same pieces in another order differs in the last bits, so a replay after a
        rebuild would report a different area than the first pass did.

        A part is bisected while it has more than MAX_PIECE_VERTICES vertices or its box
        meets more than MAX_HITS pieces; a field on open ground is one part and one query.
        """
        ids = sorted(i for i in self._index.intersection(geom.bounds) if i in self._pieces)
        if len(ids) > MAX_HITS or vertex_count(geom) > MAX_PIECE_VERTICES:
            halves = bisect(geom)
            if halves is not None:
                return [found for half in halves for found in self._parts(half)]
        return [(geom, self._hits(geom, ids))]

    def _hits(self, geom: BaseGeometry, ids: list[int]) -> _Hits:
        if not ids:
            return _NO_HITS
        geoms = object_array([self._pieces[i][1] for i in ids])
        days = np.fromiter((self._pieces[i][0] for i in ids), dtype=np.int64, count=len(ids))
        mask = intersecting(geom, geoms)
        return _Hits(np.asarray(ids, dtype=np.int64)[mask].tolist(), days[mask], geoms[mask])

    def _insert(self, day: int, geom: BaseGeometry, area: float) -> None:
        piece_id = self._fresh_id()
        self._remember(piece_id, day, geom, area)
        self._indexed[piece_id] = geom.bounds
        self._index.insert(piece_id, geom.bounds)
        self._dirty.add(piece_id)
        self._created.add(piece_id)

    def _fresh_id(self) -> int:
        if self._next_id >> SEQ_BITS != self._seq:
            raise OverflowError(f"input {self._seq} creates over 2**{SEQ_BITS} pieces")
        piece_id = self._next_id
        self._next_id += 1
        return piece_id

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
        return None if piece is None else encode_piece(*piece, self._areas[piece_id])

    def _stream(self) -> Iterator[tuple[int, Bounds, None]]:
        """Entries for rtree's bulk (STR) loader, much faster than one insert per piece."""
        for piece_id, (_, geom) in self._pieces.items():
            self._indexed[piece_id] = geom.bounds
            yield piece_id, geom.bounds, None


_NO_HITS = _Hits([], np.zeros(0, dtype=np.int64), object_array([]))


def _sized(day: int, geom: BaseGeometry) -> list[tuple[int, BaseGeometry, float]]:
    """geom as storable pieces (bounded vertices, no dust), each with its area."""
    if geom.is_empty:
        return []
    pieces = []
    for part in subdivide(geom):
        area = geodesic_area_m2(part)
        if area >= EPSILON_M2:
            pieces.append((day, part, area))
    return pieces


def _within(inner: Bounds, outer: Bounds) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )
