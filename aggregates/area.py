"""Geodesic area on the WGS84 ellipsoid: the unit every bill is stated in."""

import math

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

# Areas below this are numerical dust from overlays (a square of 1 mm side), not land.
EPSILON_M2 = 1e-6

_GEOD = Geod(ellps="WGS84")
_A: float = _GEOD.a  # the semi-major axis, m
_E2: float = _GEOD.es  # the eccentricity squared
# Far above how much a shape's geodesic edges (at most MAX_SEGMENT_DEG long, ~111 m) can
# move its area from that of its straight lon/lat edges: ~1e-5 at 45°, growing with
# tan(latitude), so shapes reaching within 5° of a pole get no bounds.
_SLACK = 0.01
_POLAR_DEG = 85.0
# GeographicLib's own result wanders from the exact area by up to ~7e-4 m² on 512
# vertices (measured against an equal-area projection of shapes 1e-6° to 1e-2° across,
# 84° S to 84° N): far below this much a vertex.
_SLACK_M2_PER_VERTEX = 1e-4
_POLYGON = 3
_MULTIPOLYGON = 6
_COLLECTION = 7


class _LastMeasured:
    """The shape last measured, held with its area.

    An event's shape reaches up to six ledgers and live unions in a row, and on open
    ground each measures the very object it was given (a field's first piece is the field
    itself), at ~33 µs a 64-vertex ring. Shapely's geometries are immutable and the memo
    holds its object, so the same object is the same shape; the pair is swapped as one
    tuple, so a takeover's thread measuring beside the loop reads a consistent one.
    """

    __slots__ = ("pair",)

    def __init__(self) -> None:
        self.pair: tuple[BaseGeometry, float] | None = None


_LAST = _LastMeasured()


def geodesic_area_m2(geom: BaseGeometry) -> float:
    """Area in m² as GeographicLib computes it (the SPEC's definition of area); the same
    object measured twice in a row is measured once (see _LastMeasured).

    Each ring goes to GeographicLib (pyproj's Geod._polygon_area_perimeter, the kernel
    behind Geod.polygon_area_perimeter) as two contiguous float64 arrays cut from one
    shapely.get_coordinates call: the public wrappers copy every ring into a new buffer
    and, for geometries, walk rings in Python and compute perimeters of lines too, which
    is measurably slower on this per-event hot path. test_area checks the result against
    the generic Geod.geometry_area_perimeter to 1e-12.
    Absolute ring areas are used (shell minus holes) so orientation does not matter.
    Non-polygonal parts have no area.
    """
    last = _LAST.pair
    if last is not None and last[0] is geom:
        return last[1]
    area = _measured(geom)
    _LAST.pair = (geom, area)
    return area


def _measured(geom: BaseGeometry) -> float:
    kind = shapely.get_type_id(geom)
    if kind == _POLYGON:
        if shapely.get_num_interior_rings(geom) == 0:
            return _ring_area(shapely.get_coordinates(geom))
        return _rings_area(np.asarray([geom], dtype=object))
    if kind == _MULTIPOLYGON:
        return _rings_area(shapely.get_parts(geom))
    if kind == _COLLECTION:
        return sum((_measured(part) for part in shapely.get_parts(geom)), 0.0)
    return 0.0


def _rings_area(polygons: np.ndarray) -> float:
    """Σ shells − Σ holes over polygons, all unsigned."""
    rings, owner = shapely.get_rings(polygons, return_index=True)
    if rings.size == 0:
        return 0.0
    is_shell = np.ones(len(rings), dtype=bool)
    is_shell[1:] = owner[1:] != owner[:-1]
    xy = shapely.get_coordinates(rings)
    ends = np.cumsum(shapely.get_num_coordinates(rings)).tolist()
    total = 0.0
    start = 0
    for end, shell in zip(ends, is_shell.tolist(), strict=True):
        area = _ring_area(xy[start:end])
        total += area if shell else -area
        start = end
    return total


def _ring_area(xy: np.ndarray) -> float:
    """Unsigned; the closing vertex is dropped because GeographicLib closes rings itself."""
    if len(xy) < 4:
        return 0.0
    lons, lats = xy[:-1].T.copy()
    area, _ = _GEOD._polygon_area_perimeter(lons, lats, radians=False)
    return abs(area)


def area_bounds_m2(
    lonlat_area: float, box: tuple[float, float, float, float], max_vertices: int
) -> tuple[float, float]:
    """Bounds of the geodesic area of a shape of `lonlat_area` square degrees inside `box`
    and of at most `max_vertices`, as `geodesic_area_m2` measures it.

    Intake needs an event's area only to refuse shapes with none or with too much; most
    are plainly between, and the exact area is then measured by whoever keeps the shape
    (a ledger's piece), or never, when every ledger cuts it (GeographicLib costs ~0.6 µs
    an edge: ~40 µs a field, milliseconds a densified satellite scene). On the ellipsoid
    an element of area is M·N·cos φ dφ dλ, M·N growing and cos φ shrinking with |φ|, so
    the box's nearest and farthest latitudes from the equator bound the integrand.
    """
    _, south, _, north = box
    far = max(abs(south), abs(north))
    if far > _POLAR_DEG:
        return 0.0, math.inf
    near = 0.0 if south <= 0.0 <= north else min(abs(south), abs(north))
    radians2 = lonlat_area * (math.pi / 180.0) ** 2
    low = radians2 * _meridian_times_normal(near) * math.cos(math.radians(far))
    high = radians2 * _meridian_times_normal(far) * math.cos(math.radians(near))
    slack_m2 = _SLACK_M2_PER_VERTEX * max_vertices
    return low * (1.0 - _SLACK) - slack_m2, high * (1.0 + _SLACK) + slack_m2


def _meridian_times_normal(latitude: float) -> float:
    """M·N at `latitude`: the meridian's and the prime vertical's radii of curvature."""
    s = math.sin(math.radians(latitude))
    return _A * _A * (1.0 - _E2) / (1.0 - _E2 * s * s) ** 2
