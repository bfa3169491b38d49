"""Unique area of the boundaries that exist now (the live AUDIT product)."""

from collections.abc import Callable, Iterable

import shapely
from shapely.geometry.base import BaseGeometry

from aggregates.area import geodesic_area_m2
from aggregates.boxes import BoxLoad, empty_index
from aggregates.codec import Bounds
from aggregates.overlay import GRID_DEG, intersecting, object_array, subtract_all

# Below this many stale entries a rebuild is not worth its fixed cost.
_MIN_STALE = 1024


Read = Callable[[str], BaseGeometry | None]  # a live boundary's shape by field key


class LiveUnion:
    """Live boundaries keyed by field id, with the area of their union kept current.

    Boundaries may overlap each other, so the union cannot be a sum; instead every change
    is priced by the part of the boundary no other live boundary covers, found through
    an rtree, so an update costs in proportion to its neighbours.

    rtree deletes are slow (~1 ms here), so a removed boundary only loses its slot and its
    index entry goes stale; lookups skip stale slots, and the index is rebuilt in bulk
    once stale entries outnumber live ones, which keeps the cost amortised O(1).

    Given `read` (the boundaries' records in the worker's table), the union keeps only
    its index and reads a boundary's shape when a change meets it; the shapes put and the
    fields removed by the current input are kept until `begin` says the next one starts
    (its writes are stored by then). Without it (tests) the union keeps every shape itself.
    Either way the union keeps no map from field to slot: which fields are live is what
    the shapes say, and a field's slot is found by its box in the index (a dict entry and
    its int cost ~80 B a live field, in each of the two scopes a boundary is live in).
    """

    def __init__(self, read: Read | None = None) -> None:
        self._read = read
        self._recent: dict[str, BaseGeometry] = {}
        self._gone: set[str] = set()  # removed by the current input, with a table
        # By slot; None for a removed field's slot, until the next reindex.
        self._fields: list[str | None] = []
        self._live = 0
        self._index = empty_index()
        self._stale = 0
        self._total = 0.0

    @classmethod
    def from_items(
        cls,
        items: Iterable[tuple[str, BaseGeometry]],
        total_m2: float | None = None,
        read: Read | None = None,
    ) -> "LiveUnion":
        """Rebuild with the total stored beside the boundaries.

        A union of every live boundary costs seconds per thousand fields, and a worker
        taking over a partition cannot meter until it is done, so the total is stored as
        the deltas left it. Only state written before totals were stored pays the union.
        """
        shapes = {field_id: geom for field_id, geom in items if not geom.is_empty}
        if total_m2 is None:
            union = shapely.union_all(object_array(list(shapes.values())), grid_size=GRID_DEG)
            total_m2 = geodesic_area_m2(union)
        live = cls.from_boxes({f: geom.bounds for f, geom in shapes.items()}, total_m2, read)
        if read is None:
            live._recent = shapes
        return live

    @classmethod
    def from_boxes(
        cls, boxes: dict[str, Bounds], total_m2: float, read: Read | None
    ) -> "LiveUnion":
        """A takeover's union: its index from the boxes stored with the boundaries, whose
        shapes stay in the table until an event's box meets them."""
        live = cls(read)
        live._reindex(boxes)
        live._total = total_m2
        return live

    @property
    def total_m2(self) -> float:
        return self._total

    def get(self, field_id: str) -> BaseGeometry | None:
        """The field's live shape: the current input's, else the table's."""
        if field_id in self._recent:
            return self._recent[field_id]
        if self._read is None or field_id in self._gone:
            return None
        shape = self._read(field_id)
        return shape if shape is not None and not shape.is_empty else None

    def __contains__(self, field_id: object) -> bool:
        return isinstance(field_id, str) and self.get(field_id) is not None

    def __len__(self) -> int:
        return self._live

    def begin(self) -> None:
        """A new input starts: what the last one put and removed is in the table now."""
        if self._read is not None:
            self._recent.clear()
            self._gone.clear()

    def put(self, field_id: str, geom: BaseGeometry) -> float:
        """Create or replace; returns the signed change of the total.

        An empty geometry has nothing to be live with, so putting one removes the field.
        """
        delta = self.remove(field_id)
        if geom.is_empty:
            return delta
        gained = geodesic_area_m2(self._uncovered(geom))
        self._recent[field_id] = geom
        self._gone.discard(field_id)
        self._index.insert(self._assign_slot(field_id), geom.bounds)
        self._live += 1
        self._total += gained
        return delta + gained

    def preview(self, field_id: str | None, geom: BaseGeometry) -> float:
        """What `put(field_id, geom)` would return (a new field without `field_id`),
        changing nothing; a union with nothing live would gain all of geom."""
        current = self.get(field_id) if field_id is not None else None
        lost = geodesic_area_m2(self._uncovered(current, field_id)) if current else 0.0
        return geodesic_area_m2(self._uncovered(geom, field_id)) - lost

    def remove(self, field_id: str) -> float:
        """Delete; the total drops only by what no other live boundary still covers."""
        geom = self.get(field_id)
        if geom is None:
            return 0.0
        self._fields[self._slot_at(field_id, geom.bounds)] = None
        self._recent.pop(field_id, None)
        if self._read is not None:
            self._gone.add(field_id)
        self._live -= 1
        self._stale += 1
        if self._stale > max(_MIN_STALE, self._live):
            self._reindex(self._boxes())
        lost = geodesic_area_m2(self._uncovered(geom))
        self._total -= lost
        if not self._live:
            # Nothing is live: drop the float residue the signed deltas left behind.
            lost += self._total
            self._total = 0.0
        return -lost

    def _shape(self, field_id: str) -> BaseGeometry:
        shape = self._recent.get(field_id)
        if shape is None and self._read is not None:
            shape = self._read(field_id)
        if shape is None:
            raise LookupError(f"live boundary {field_id!r} has no stored shape")
        return shape

    def _uncovered(self, geom: BaseGeometry, excluded: str | None = None) -> BaseGeometry:
        """Part of geom outside every other live boundary currently indexed; the
        boundaries go to the overlay in field order, whatever order the (maybe rebuilt)
        index returns."""
        fields = sorted(
            f for s in self._index.intersection(geom.bounds)
            if (f := self._fields[s]) is not None and f != excluded
        )
        others = object_array([self._shape(f) for f in fields])
        return subtract_all(geom, others[intersecting(geom, others)])

    def _boxes(self) -> dict[str, Bounds]:
        """The live entries' boxes, from the index itself: the shapes may be elsewhere."""
        if not self._live:
            return {}
        found = self._index.intersection(self._index.bounds, objects=True)
        return {field_id: (item.bbox[0], item.bbox[1], item.bbox[2], item.bbox[3])
                for item in found if (field_id := self._fields[item.id]) is not None}

    def _reindex(self, boxes: dict[str, Bounds]) -> None:
        """Bulk-load a fresh index (no stale entries) with fresh slots, in field order."""
        self._fields.clear()
        self._stale = 0
        load = BoxLoad()
        for field_id in sorted(boxes):
            load.add(self._assign_slot(field_id), boxes[field_id])
        self._index = load.index()
        self._live = len(boxes)

    def _assign_slot(self, field_id: str) -> int:
        """rtree ids must be integers, so each field id gets a fresh one."""
        self._fields.append(field_id)
        return len(self._fields) - 1

    def _slot_at(self, field_id: str, box: Bounds) -> int:
        """A live field's slot: its entry is among those meeting its shape's box, which is
        the box it was indexed by (put, or stored beside the shape for a takeover)."""
        for slot in self._index.intersection(box):
            if self._fields[slot] == field_id:
                return slot
        raise LookupError(f"live boundary {field_id!r} is not indexed")
