"""Unique area of the boundaries that exist now (the live AUDIT product)."""

from collections.abc import ItemsView, Iterable

import shapely
from rtree.index import Index
from shapely.geometry.base import BaseGeometry

from aggregates.area import geodesic_area_m2
from aggregates.overlay import GRID_DEG, intersecting, object_array, subtract_all

# Below this many stale entries a rebuild is not worth its fixed cost.
_MIN_STALE = 1024


class LiveUnion:
    """Live boundaries keyed by field id, with the area of their union kept current.

    Boundaries may overlap each other, so the union cannot be a sum; instead every change
    is priced by the part of the boundary no other live boundary covers, found through
    an rtree, so an update costs in proportion to its neighbours.

    rtree deletes are slow (~1 ms here), so a removed boundary only loses its slot and its
    index entry goes stale; lookups skip stale slots, and the index is rebuilt in bulk
    once stale entries outnumber live ones, which keeps the cost amortised O(1).
    """

    def __init__(self) -> None:
        self._geoms: dict[str, BaseGeometry] = {}
        self._slots: dict[str, int] = {}
        self._fields: dict[int, str] = {}
        self._index = Index()
        self._next_slot = 0
        self._stale = 0
        self._total = 0.0

    @classmethod
    def from_items(
        cls, items: Iterable[tuple[str, BaseGeometry]], total_m2: float | None = None
    ) -> "LiveUnion":
        """Rebuild with the total stored beside the boundaries.

        A union of every live boundary costs seconds per thousand fields, and a worker
        taking over a partition cannot meter until it is done, so the total is stored as
        the deltas left it. Only state written before totals were stored pays the union.
        """
        live = cls()
        for field_id, geom in items:
            if not geom.is_empty:
                live._geoms[field_id] = geom
        live._reindex()
        if total_m2 is None:
            geoms = object_array(list(live._geoms.values()))
            total_m2 = geodesic_area_m2(shapely.union_all(geoms, grid_size=GRID_DEG))
        live._total = total_m2
        return live

    @property
    def total_m2(self) -> float:
        return self._total

    def get(self, field_id: str) -> BaseGeometry | None:
        return self._geoms.get(field_id)

    def __contains__(self, field_id: object) -> bool:
        return field_id in self._geoms

    def __len__(self) -> int:
        return len(self._geoms)

    def items(self) -> ItemsView[str, BaseGeometry]:
        return self._geoms.items()

    def put(self, field_id: str, geom: BaseGeometry) -> float:
        """Create or replace; returns the signed change of the total.

        An empty geometry has nothing to be live with, so putting one removes the field.
        """
        delta = self.remove(field_id)
        if geom.is_empty:
            return delta
        gained = geodesic_area_m2(self._uncovered(geom))
        self._geoms[field_id] = geom
        self._assign_slot(field_id)
        self._index.insert(self._slots[field_id], geom.bounds)
        self._total += gained
        return delta + gained

    def remove(self, field_id: str) -> float:
        """Delete; the total drops only by what no other live boundary still covers."""
        geom = self._geoms.pop(field_id, None)
        if geom is None:
            return 0.0
        del self._fields[self._slots.pop(field_id)]
        self._stale += 1
        if self._stale > max(_MIN_STALE, len(self._geoms)):
            self._reindex()
        lost = geodesic_area_m2(self._uncovered(geom))
        self._total -= lost
        if not self._geoms:
            # Nothing is live: drop the float residue the signed deltas left behind.
            lost += self._total
            self._total = 0.0
        return -lost

    def _uncovered(self, geom: BaseGeometry) -> BaseGeometry:
        """Part of geom outside every live boundary currently indexed; the boundaries go to
        the overlay in field order, whatever order the (maybe rebuilt) index returns."""
        fields = sorted(self._fields[s] for s in self._index.intersection(geom.bounds)
                        if s in self._fields)
        others = object_array([self._geoms[f] for f in fields])
        return subtract_all(geom, others[intersecting(geom, others)])

    def _reindex(self) -> None:
        """Bulk-load a fresh index (no stale entries) with fresh slots."""
        self._slots.clear()
        self._fields.clear()
        self._stale = 0
        for field_id in self._geoms:
            self._assign_slot(field_id)
        entries = [(self._slots[f], g.bounds, None) for f, g in self._geoms.items()]
        self._index = Index(iter(entries)) if entries else Index()

    def _assign_slot(self, field_id: str) -> None:
        """rtree ids must be integers, so each field id gets a fresh one."""
        self._slots[field_id] = self._next_slot
        self._fields[self._next_slot] = field_id
        self._next_slot += 1
