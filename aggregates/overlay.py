"""Robust overlay helpers shared by the ledgers: everything runs on one precision grid."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

# Overlay grid in degrees (~11 µm at the equator). Every stored coordinate sits on it, and
# snap-rounding on it is what makes GEOS overlay robust (no TopologyException). Real inputs
# (at most 9 decimals) already sit on it, so snapping them moves nothing; what remains is
# the rounding of new intersection nodes, which moves area by about edge length x grid:
# 1e-9 measured up to 4e-6 relative on 60 m² fields, 1e-10 keeps it well under the SPEC's
# 1e-6 (see tests).
GRID_DEG = 1e-10
# GEOS's fixed precision model rounds a coordinate as floor(v * scale + 0.5) / scale.
_SCALE = 1.0 / GRID_DEG

# Longest edge any stored geometry may have, in degrees (~111 m of latitude). Overlay is
# planar in lon/lat but area is geodesic per edge, so where an overlay puts a node on an
# edge the geodesic area moves by at most about L³·tan(lat)/(12·R) for an edge of length
# L: 0.013 m² at 45° for L = 111 m, against ~300 m² for a 2.7 km edge. Bounding L at the
# intake door (and on every cut line the engine makes) bounds that error for every piece,
# so a sum of piece areas equals the area of their union to well under 1e-6.
MAX_SEGMENT_DEG = 1e-3

# Most vertices a stored piece may have (like PostGIS ST_Subdivide's default of 256), and
# most stored pieces one part of an incoming geometry is overlaid against. Bounding both
# keeps the cost of an event independent of how large earlier geometries were.
MAX_PIECE_VERTICES = 256
MAX_HITS = 128
# Subdivision stops here even if a part is still "too complex": a cell this small
# (~1 cm) cannot usefully be cut again, and a fixed depth bounds the recursion.
_MIN_CELL_DEG = 1e-7

_WKB_VERTEX_BYTES = 16
_POLYGON = 3
_POLYGONAL = (3, 6)
_EMPTY = shapely.Polygon()


class Overlay(Protocol):
    """shapely.difference, shapely.intersection: two shapes and an optional grid."""

    def __call__(
        self, a: BaseGeometry, b: BaseGeometry, grid_size: float | None = None
    ) -> BaseGeometry: ...


def polygonal_part(geom: BaseGeometry) -> BaseGeometry:
    """Keep only areal parts, since overlays may also yield touching lines and points."""
    if shapely.get_type_id(geom) in _POLYGONAL:
        return geom
    # Two levels flatten a collection holding MultiPolygons, as make_valid may return.
    parts = shapely.get_parts(shapely.get_parts(geom))
    polygons = parts[shapely.get_type_id(parts) == _POLYGON]
    if polygons.size == 0:
        return _EMPTY
    if polygons.size == 1:
        only: BaseGeometry = polygons[0]
        return only
    # Parts of one valid overlay result are already disjoint: no union needed.
    merged: BaseGeometry = shapely.multipolygons(polygons)
    return merged


def densify(geom: BaseGeometry) -> BaseGeometry:
    """Edges of at most MAX_SEGMENT_DEG, back on the grid; a no-op for short edges.

    Inserted vertices lie on the straight lon/lat line of their edge (RFC 7946's edge),
    so the planar shape is unchanged up to the grid; snapping them keeps later overlays on
    exactly representable coordinates.
    """
    dense = shapely.segmentize(geom, MAX_SEGMENT_DEG)
    if shapely.get_num_coordinates(dense) == shapely.get_num_coordinates(geom):
        return geom
    return on_grid(dense)


def on_grid(geom: BaseGeometry) -> BaseGeometry:
    """geom's polygonal part with every coordinate on GRID_DEG, in a floating precision model.

    Rounding each coordinate is what snap-rounding does to a vertex; snap-rounding also
    nodes every edge that passes within half a cell of a vertex, and only that keeps the
    result valid in every case, but it costs ~100 µs on a 64-gon where rounding and a
    validity check cost ~20. So the rounded geometry is kept when it is valid (the
    overwhelming case, and then the two agree: nothing needed noding), and snap-rounding
    runs only when it is not.

    geom must be valid (a repaired input, an overlay's result), so when rounding moves
    nothing there is nothing to check. The result carries no fixed precision model on
    purpose: GEOS overlays any geometry that carries one with snap-rounding, even when no
    grid is asked for.
    """
    part = polygonal_part(geom)
    xy = shapely.get_coordinates(part)
    snapped_xy = _round(xy)
    unmoved = np.array_equal(xy, snapped_xy)
    if unmoved and shapely.get_precision(part) == 0:
        # Already on the grid (an input that came on it, an overlay that added no
        # vertex): no copy to build.
        return part
    rounded = shapely.transform(part, lambda _: snapped_xy)
    if unmoved or shapely.is_valid(rounded):
        return rounded
    snapped = polygonal_part(shapely.set_precision(part, GRID_DEG))
    return shapely.transform(snapped, _round)


def _on_grid_value(value: float) -> float:
    """A cut line on the grid: an off-grid line a hair from an on-grid edge is the
    near-coincidence a floating overlay can mislabel (see subtract_all)."""
    return float(_round(np.array(value)))


def _round(xy: np.ndarray) -> np.ndarray:
    rounded: np.ndarray = np.floor(xy * _SCALE + 0.5) / _SCALE
    return rounded


def _overlay(op: Overlay, a: BaseGeometry, b: BaseGeometry) -> BaseGeometry:
    """a op b on the grid: the floating overlay (~25 µs on two 64-gons, against ~100 µs
    snap-rounded) brought onto the grid by on_grid, which snap-rounds only a result that
    rounding left invalid. The floating overlay falls back to snap-rounding itself where
    its noding fails (GEOS's OverlayNGRobust); only if that fails too is the overlay
    redone on the grid from the start."""
    try:
        result = op(a, b)
    except shapely.errors.GEOSException:
        result = op(a, b, grid_size=GRID_DEG)
    return on_grid(result)


def cut_in_parts(wkb_bytes: int) -> bool:
    """Whether a shape of this many WKB bytes may hold more vertices than a piece, so
    that adding it cuts it in parts: a satellite scene's add costs 0.2-1.5 s a ledger
    (`make bench-check`), a field's well under a millisecond. Judged from the size alone
    (16 bytes an x, y pair), so asking costs no parse."""
    return wkb_bytes > _WKB_VERTEX_BYTES * MAX_PIECE_VERTICES


def vertex_count(geom: BaseGeometry) -> int:
    count: int = shapely.get_num_coordinates(geom)
    return count


def bisect(geom: BaseGeometry) -> list[BaseGeometry] | None:
    """geom cut in two across the middle of the longer side of its box, or None if tiny.

    Cut edges are densified like intake edges, so the area bound of MAX_SEGMENT_DEG
    also holds on every line the engine itself draws.
    """
    x0, y0, x1, y1 = geom.bounds
    if max(x1 - x0, y1 - y0) <= _MIN_CELL_DEG:
        return None
    if x1 - x0 >= y1 - y0:
        mid = _on_grid_value((x0 + x1) / 2)
        boxes = [shapely.box(x0 - 1, y0 - 1, mid, y1 + 1), shapely.box(mid, y0 - 1, x1 + 1, y1 + 1)]
    else:
        mid = _on_grid_value((y0 + y1) / 2)
        boxes = [shapely.box(x0 - 1, y0 - 1, x1 + 1, mid), shapely.box(x0 - 1, mid, x1 + 1, y1 + 1)]
    parts = [densify(_overlay(shapely.intersection, geom, cut)) for cut in boxes]
    return [part for part in parts if not part.is_empty]


def subdivide(geom: BaseGeometry, max_vertices: int = MAX_PIECE_VERTICES) -> list[BaseGeometry]:
    """geom as disjoint parts of at most max_vertices each (like PostGIS ST_Subdivide).

    Recursive bisection of the bounding box; returns [geom] itself when it is small
    enough, so the common case costs one vertex count.
    """
    if vertex_count(geom) <= max_vertices:
        return [geom]
    halves = bisect(geom)
    if halves is None:
        return [geom]
    return [part for half in halves for part in subdivide(half, max_vertices)]


def subtract_all(geom: BaseGeometry, others: np.ndarray) -> BaseGeometry:
    """geom minus the union of others, with one difference rather than a chain of them.

    A chain of differences re-nodes geom once per neighbour; a single difference against
    the neighbours' union nodes it once.

    The union is taken with buffer(0) of the collection, which nodes every edge once and
    keeps the area of positive depth (for valid polygons, their union): shapely.union_all
    (cascaded pairwise overlay, each level re-noding with snap-rounding) measured 3-5x
    slower on the ~20 adjacent pieces a part typically meets, and 1.8x slower on the 2-7
    of the engine benchmark. A few of its nodes are off the grid, so it is brought onto
    it: a floating difference against off-grid nodes a hair from a shape's on-grid edges
    can mislabel the whole shape as outside (seen on the billing scenario: a boundary
    sent again, exactly covered by seven pieces, came back whole: 1,685 m² counted twice).
    On degenerate input the difference can still fail; then it is redone against the
    snap-rounded union_all, which is the robust path (the fuzz test exercises it).
    """
    if others.size == 0:
        return geom
    if others.size == 1:
        return _difference(geom, others[0])
    try:
        cutter = shapely.buffer(shapely.GeometryCollection(list(others)), 0)
        return _difference(geom, on_grid(cutter))
    except shapely.errors.GEOSException:
        return _difference(geom, shapely.union_all(others, grid_size=GRID_DEG))


def _difference(geom: BaseGeometry, cutter: BaseGeometry) -> BaseGeometry:
    return _overlay(shapely.difference, geom, cutter)


def clip(geom: BaseGeometry, boundary: BaseGeometry) -> BaseGeometry:
    """geom inside boundary, on the grid."""
    return _overlay(shapely.intersection, geom, boundary)


def intersecting(geom: BaseGeometry, candidates: np.ndarray) -> np.ndarray:
    """Mask of candidates whose interiors meet geom's; rtree only compares boxes.

    Neighbours that merely touch (adjacent parcels, pieces across a cut line) cannot
    change an area, and leaving them out keeps them out of the union of cutters.

    The preparation is undone afterwards: it stays attached to the geometry object,
    and that object is often the one then kept as a piece, a live boundary or a field
    version, so stored shapes carried spatial indexes nobody used again (`make
    bench-state` counts them in its memory per event).
    """
    if candidates.size == 0:
        return np.zeros(0, dtype=bool)
    with _prepared(geom):
        mask: np.ndarray = shapely.intersects(geom, candidates)
        if mask.any():
            mask[mask] = ~shapely.touches(geom, candidates[mask])
    return mask


def covered(geom: BaseGeometry, candidates: np.ndarray) -> np.ndarray:
    """Mask of candidates lying wholly in geom, edges included."""
    if candidates.size == 0:
        return np.zeros(0, dtype=bool)
    with _prepared(geom):
        mask: np.ndarray = shapely.covers(geom, candidates)
    return mask


@contextmanager
def _prepared(geom: BaseGeometry) -> Iterator[None]:
    """geom prepared for a batch of predicates, and unprepared after unless it was
    before: see `intersecting`."""
    was_prepared = shapely.is_prepared(geom)
    shapely.prepare(geom)
    try:
        yield
    finally:
        if not was_prepared:
            shapely.destroy_prepared(geom)


def object_array(items: list[BaseGeometry]) -> np.ndarray:
    """Geometries as a 1-d object array, the shape shapely's vectorised calls expect."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array
