"""Unique area of one scope and term, kept as disjoint day-stamped pieces."""

import math
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
from shapely.geometry.base import BaseGeometry

from aggregates.area import EPSILON_M2, geodesic_area_m2
from aggregates.boxes import bulk_index, empty_index
from aggregates.codec import (
    HEADERS,
    Bounds,
    decode_piece,
    encode_piece,
    header_bytes,
    piece_origin,
)
from aggregates.overlay import (
    MAX_HITS,
    MAX_PIECE_VERTICES,
    bisect,
    clip,
    covered,
    intersecting,
    object_array,
    subdivide,
    subtract_all,
    vertex_count,
)

_EVERYWHERE = (-math.inf, -math.inf, math.inf, math.inf)
SEQ_BITS = 20  # pieces one input may create in one ledger: 2**20
Read = Callable[[int], bytes | None]  # a stored piece by id, None if there is none


class _Piece(NamedTuple):
    day: int
    geom: BaseGeometry
    area: float
    box: Bounds  # its index entry's
    origin: bytes  # the encoded Origin of its ground, b"" if stored before origins


class _New(NamedTuple):
    """A piece to create."""

    day: int
    geom: BaseGeometry
    area: float
    origin: bytes


class Held(NamedTuple):
    """A stored piece holding a point: what explaining that point reads of it."""

    piece_id: int
    day: int
    area_m2: float
    origin: bytes
    geom: BaseGeometry


@dataclass(frozen=True)
class _Plan:
    """What one add changes; computed once so preview and add cannot disagree."""

    shrinks: list[tuple[int, _Piece, BaseGeometry | None, float]]  # piece, remainder or None
    inserts: list[_New]
    added: float


@dataclass
class _Hits:
    """Stored pieces that really intersect a new geometry."""

    ids: list[int]
    days: np.ndarray
    geoms: np.ndarray


class PieceLoad:
    """A ledger's stored pieces while a takeover reads them: ids and headers, each in one
    buffer, so a million pieces are neither a million tuples nor their geometries."""

    __slots__ = ("ids", "headers")

    def __init__(self) -> None:
        self.ids = array("q")
        self.headers = bytearray()


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

    Given `read`, the pieces live in the store (the worker's table): memory holds their
    index entries (id and box) and the totals by day, and an add reads the geometries of
    the pieces its box meets, so a scope's memory does not grow with its geometries.
    Without it (tests, benchmarks) the ledger keeps every piece itself.

    A piece's id is the sequence number of the input that created it (its offset on the
    metering topic) shifted left by SEQ_BITS, plus a counter. Ids therefore never collide
    with stored pieces. (A message is never added twice: its writes are all or nothing,
    and a replay of a stored one changes nothing; see aggregates/journal.py.)
    """

    def __init__(self, read: Read | None = None) -> None:
        self._read = read
        self._index = empty_index()
        # Without `read`, every piece; with it, the pieces the current input changed,
        # until the next input (None: deleted), since its writes are not stored yet.
        self._recent: dict[int, _Piece | None] = {}
        self._count = 0
        self._day_area: dict[int, float] = {}
        self._day_count: dict[int, int] = {}
        self._total = 0.0
        self._seq = -1
        self._next_seq = 0
        self._next_id = 0
        self._created: set[int] = set()
        self._dirty: set[int] = set()

    @classmethod
    def from_pieces(
        cls, pieces: Iterable[tuple[int, bytes]], read: Read | None = None
    ) -> "UniqueAreaLedger":
        """Rebuild from persisted pieces; the total is the sum of their areas. With
        `read`, no geometry is parsed: the index is rebuilt from the stored boxes.

        Pieces are trusted to be disjoint; if a damaged store held overlapping pieces the
        ledger still works (later adds subtract the union of what they meet), it merely
        reports the overlap twice until those pieces are rewritten.
        """
        ledger = cls(read)
        load = PieceLoad()
        for piece_id, data in pieces:
            ledger.restore(load, piece_id, data)
        ledger.restored(load)
        return ledger

    def restore(self, load: "PieceLoad", piece_id: int, data: bytes) -> None:
        """One persisted piece of a rebuild: its id and header go to `load`, and without
        `read` its geometry to the ledger. A takeover reads ~1M pieces one at a time:
        copying 45 bytes of each is all it does until `restored`."""
        load.ids.append(piece_id)
        load.headers += header_bytes(data)
        if self._read is None:
            self._recent[piece_id] = _decoded(data)

    def restored(self, load: "PieceLoad") -> None:
        """Every piece is restored: totals by day and the R-tree come from their headers
        at once. The areas are summed in the order the pieces were read, one after the
        other, as `_account` sums them (bincount and cumsum add sequentially), so a
        rebuilt total has the very bits the ledger's adds left."""
        headers = np.frombuffer(load.headers, dtype=HEADERS)
        ids = np.frombuffer(load.ids, dtype=np.int64)
        self._count = len(ids)
        self._index = bulk_index(ids, headers["box"].astype(np.float64))
        if not self._count:
            return
        days, of_day = np.unique(headers["day"], return_inverse=True)
        areas = headers["area"].astype(np.float64)
        by_day = zip(days.tolist(), np.bincount(of_day, weights=areas).tolist(),
                     np.bincount(of_day).tolist(), strict=True)
        for day, area, count in by_day:
            self._day_area[day] = area
            self._day_count[day] = count
        self._total = float(np.cumsum(areas)[-1])
        self._next_seq = (int(ids.max()) >> SEQ_BITS) + 1

    @property
    def total_m2(self) -> float:
        return self._total

    @property
    def piece_count(self) -> int:
        return self._count

    def area_by_day(self) -> dict[int, float]:
        """m² attributed to each day; the values sum to total_m2."""
        return dict(sorted(self._day_area.items()))

    @property
    def day_area(self) -> Mapping[int, float]:
        """`area_by_day` unsorted and uncopied: the API sums it per user and product."""
        return MappingProxyType(self._day_area)

    def preview(self, geom: BaseGeometry, day: int = 0) -> float:
        """What add(geom, day) would return, without changing anything (quota checks).

        A shape the add would cut to a storable size (over MAX_PIECE_VERTICES vertices:
        a satellite scene is ~512 pieces a square degree) is measured another way, as
        nothing is stored: pieces are disjoint, so it adds its area less what they cover
        of it, whatever their days. Cutting the scene held a check 175 ms a ledger on open
        ground and 566 ms over 2,000 fields (`make bench-check`), on the worker's loop.
        The two sums agree to rounding (~1e-12 of the shape's area); below that size the
        preview is the add's own plan, bit for bit."""
        if vertex_count(geom) > MAX_PIECE_VERTICES:
            return _uncovered_area(geom, [piece for _, piece in self._found(geom, {})])
        return self._plan(geom, day).added

    def held_in(self, where: BaseGeometry, limit: int) -> list[Held]:
        """The live pieces meeting `where`, in id order: for a point one, or several on
        their shared edges. Raises ValueError rather than read over `limit` pieces."""
        ids = sorted(self._index.intersection(where.bounds))
        if len(ids) > limit:
            raise ValueError(f"the geometry meets over {limit} counted pieces: ask about "
                             "a smaller one")
        found = []
        for piece_id in ids:
            piece = self._piece(piece_id)
            if piece is not None and piece.geom.intersects(where):
                found.append(Held(piece_id, piece.day, piece.area, piece.origin, piece.geom))
        return found

    def pieces(self, days: tuple[int, int], limit: int, after: int = -1) -> list[Held]:
        """Live pieces of days in [days] in id order after `after`, at most `limit`: a
        map of the union is read a page at a time."""
        ids = sorted(i for i in self._index.intersection(_EVERYWHERE) if i > after)
        found = []
        for piece_id in ids:
            piece = self._piece(piece_id)
            if piece is not None and days[0] <= piece.day <= days[1]:
                found.append(Held(piece_id, piece.day, piece.area, piece.origin, piece.geom))
                if len(found) == limit:
                    break
        return found

    def add(
        self, geom: BaseGeometry, day: int = 0, seq: int | None = None, origin: bytes = b""
    ) -> float:
        """Count geom on `day` for input `seq`; returns how much the union's total grew.
        Its new pieces remember `origin`, the event counting them.

        Without `seq` the add is an input of its own, numbered after every stored piece.
        Area already held by pieces of an earlier or equal day is not new. Area held by
        pieces of a later day moves to `day` (event time decides attribution, so a late
        event claims what it covered first) without changing the total.

        With `read`, the previous input's writes must be stored before the next input's
        add: the ledger then forgets them and reads them back when needed.
        """
        if seq is None:
            seq = self._next_seq
        self._next_seq = max(self._next_seq, seq + 1)
        self._start(seq)
        plan = self._plan(geom, day, origin)
        for piece_id, piece, remainder, remainder_area in plan.shrinks:
            self._shrink(piece_id, piece, remainder, remainder_area)
        for new in plan.inserts:
            self._insert(new)
        return plan.added

    def take_changes(self) -> list[tuple[int, bytes | None]]:
        """Piece writes since the last call, stored pieces first, in id order; None
        deletes a piece. A piece created and emptied since the last call is not written."""
        existing = sorted(self._dirty - self._created)
        created = sorted(i for i in self._created if self._recent.get(i) is not None)
        self._dirty = set()
        self._created = set()
        return [(i, self._encoded(i)) for i in existing + created]

    def _start(self, seq: int) -> None:
        if seq != self._seq:
            self._seq, self._next_id = seq, seq << SEQ_BITS
            if self._read is not None:
                self._recent.clear()

    def _plan(self, geom: BaseGeometry, day: int, origin: bytes = b"") -> _Plan:
        """A piece cut in parts by an earlier event keeps its origin in every part: its
        ground was still first counted by the same event."""
        if geom.is_empty:
            return _Plan([], [], 0.0)
        inserts: list[_New] = []
        later: dict[int, list[BaseGeometry]] = {}
        read: dict[int, _Piece | None] = {}
        for part, hits in self._parts(geom, read):
            if not hits.ids:  # open ground, most fields: no array work for nothing
                inserts.extend(_sized(day, part, origin))
                continue
            is_later = hits.days > day
            inserts.extend(_sized(day, subtract_all(part, hits.geoms[~is_later]), origin))
            for piece_id in np.asarray(hits.ids, dtype=np.int64)[is_later].tolist():
                later.setdefault(piece_id, []).append(part)
        shrinks: list[tuple[int, _Piece, BaseGeometry | None, float]] = []
        for piece_id, cutters in later.items():
            piece = read[piece_id]
            assert piece is not None  # it was a hit
            remainder = subtract_all(piece.geom, object_array(cutters))
            kept = _sized(piece.day, remainder, piece.origin)
            if kept:
                shrinks.append((piece_id, piece, kept[0].geom, kept[0].area))
                inserts.extend(kept[1:])
            else:
                shrinks.append((piece_id, piece, None, 0.0))
        added = sum(new.area for new in inserts)
        added -= sum(piece.area - area for _, piece, _, area in shrinks)
        return _Plan(shrinks, inserts, added)

    def _parts(
        self, geom: BaseGeometry, read: dict[int, _Piece | None]
    ) -> list[tuple[BaseGeometry, _Hits]]:
        """geom in parts of bounded size, each with the stored pieces it really meets, in
        id order: the R-tree's order differs once it is bulk-loaded, and an overlay fed
        the same pieces in another order differs in the last bits, so a replay after a
        rebuild would report a different area than the first pass did.

        A part is bisected while it has more than MAX_PIECE_VERTICES vertices or its box
        meets more than MAX_HITS pieces; a field on open ground is one part and one query.
        `read` keeps the pieces read so far, so a bisected geometry reads each once.
        """
        found = self._found(geom, read)
        if len(found) > MAX_HITS or vertex_count(geom) > MAX_PIECE_VERTICES:
            halves = bisect(geom)
            if halves is not None:
                return [each for half in halves for each in self._parts(half, read)]
        return [(geom, _hits(geom, found))]

    def _found(
        self, geom: BaseGeometry, read: dict[int, _Piece | None]
    ) -> list[tuple[int, _Piece]]:
        """The live pieces whose boxes meet geom's, in id order, each read once."""
        found = []
        for piece_id in sorted(self._index.intersection(geom.bounds)):
            if piece_id not in read:
                read[piece_id] = self._piece(piece_id)
            if (piece := read[piece_id]) is not None:
                found.append((piece_id, piece))
        return found

    def _piece(self, piece_id: int) -> _Piece | None:
        """A live piece, or None for an index entry left by a deleted one."""
        if piece_id in self._recent or self._read is None:
            return self._recent.get(piece_id)
        data = self._read(piece_id)
        return None if data is None else _decoded(data)

    def _insert(self, new: _New) -> None:
        piece_id = self._fresh_id()
        piece = _Piece(new.day, new.geom, new.area, new.geom.bounds, new.origin)
        self._recent[piece_id] = piece
        self._account(new.day, new.area)
        self._count += 1
        self._index.insert(piece_id, piece.box)
        self._dirty.add(piece_id)
        self._created.add(piece_id)

    def _fresh_id(self) -> int:
        if self._next_id >> SEQ_BITS != self._seq:
            raise OverflowError(f"input {self._seq} creates over 2**{SEQ_BITS} pieces")
        piece_id = self._next_id
        self._next_id += 1
        return piece_id

    def _shrink(
        self, piece_id: int, piece: _Piece, remainder: BaseGeometry | None, area: float
    ) -> None:
        self._account(piece.day, -piece.area, pieces=-1)
        self._dirty.add(piece_id)
        if remainder is None:
            self._count -= 1
            if self._read is None:
                del self._recent[piece_id]
            else:
                self._recent[piece_id] = None  # still in the store until written
            return
        box = piece.box
        if not _within(remainder.bounds, box):
            # Snap-rounding may nudge a new vertex half a grid cell past the old box.
            self._index.delete(piece_id, box)
            box = remainder.bounds
            self._index.insert(piece_id, box)
        self._recent[piece_id] = _Piece(piece.day, remainder, area, box, piece.origin)
        self._account(piece.day, area)

    def _account(self, day: int, area: float, pieces: int = 1) -> None:
        """Totals by day, kept in memory: the pieces themselves may not be."""
        self._total += area
        count = self._day_count.get(day, 0) + pieces
        if count == 0:
            # Dropping the key avoids a float residue like 1e-12 m² for an emptied day.
            del self._day_count[day], self._day_area[day]
            return
        self._day_count[day] = count
        self._day_area[day] = self._day_area.get(day, 0.0) + area

    def _encoded(self, piece_id: int) -> bytes | None:
        piece = self._recent.get(piece_id)
        return None if piece is None else encode_piece(*piece)


def _hits(geom: BaseGeometry, found: list[tuple[int, _Piece]]) -> _Hits:
    if not found:
        return _NO_HITS
    geoms = object_array([piece.geom for _, piece in found])
    days = np.fromiter((piece.day for _, piece in found), dtype=np.int64, count=len(found))
    mask = intersecting(geom, geoms)
    ids = np.fromiter((i for i, _ in found), dtype=np.int64, count=len(found))
    return _Hits(ids[mask].tolist(), days[mask], geoms[mask])


_NO_HITS = _Hits([], np.zeros(0, dtype=np.int64), object_array([]))


def _decoded(data: bytes) -> _Piece:
    header, geom = decode_piece(data)
    return _Piece(header.day, geom, header.area_m2, header.box, piece_origin(data))


def _uncovered_area(geom: BaseGeometry, pieces: list[_Piece]) -> float:
    """geom's area less what the disjoint `pieces` cover of it: a piece inside it by its
    stored area, one across its edge by the area of their intersection."""
    area = geodesic_area_m2(geom)
    if not pieces:
        return area
    geoms = object_array([piece.geom for piece in pieces])
    inside = covered(geom, geoms)
    area -= math.fsum(piece.area for piece, within in zip(pieces, inside, strict=True) if within)
    rest = geoms[~inside]
    across = rest[intersecting(geom, rest)]
    return area - math.fsum(geodesic_area_m2(clip(other, geom)) for other in across)


def _sized(day: int, geom: BaseGeometry, origin: bytes) -> list[_New]:
    """geom as storable pieces (bounded vertices, no dust), each with its area."""
    if geom.is_empty:
        return []
    pieces = []
    for part in subdivide(geom):
        area = geodesic_area_m2(part)
        if area >= EPSILON_M2:
            pieces.append(_New(day, part, area, origin))
    return pieces


def _within(inner: Bounds, outer: Bounds) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )
