"""Geodesic area on the WGS84 ellipsoid: the unit every bill is stated in."""

import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

# Areas below this are numerical dust from overlays (a square of 1 mm side), not land.
EPSILON_M2 = 1e-6

_GEOD = Geod(ellps="WGS84")


def geodesic_area_m2(geom: BaseGeometry) -> float:
    """Area in m² as GeographicLib computes it (the SPEC's definition of area).

    Rings go to Geod.polygon_area_perimeter as plain coordinate arrays: the generic
    Geod.geometry_area_perimeter also computes perimeters, handles lines and goes
    through more Python per ring, and is measurably slower on this per-event hot path.
    Absolute ring areas are used (shell minus holes) so orientation does not matter.
    Non-polygonal parts have no area.
    """
    kind = geom.geom_type
    if kind == "Polygon":
        return _polygon_area(geom)
    if kind in ("MultiPolygon", "GeometryCollection"):
        return sum((geodesic_area_m2(part) for part in geom.geoms), 0.0)
    return 0.0


def _polygon_area(polygon: shapely.Polygon) -> float:
    """Shell minus holes, both unsigned."""
    if polygon.is_empty:
        return 0.0
    holes = sum(_ring_area(ring) for ring in polygon.interiors)
    return _ring_area(polygon.exterior) - holes


def _ring_area(ring: shapely.LinearRing) -> float:
    """Unsigned; the closing vertex is dropped because GeographicLib closes rings itself."""
    xy = shapely.get_coordinates(ring)
    area, _ = _GEOD.polygon_area_perimeter(xy[:-1, 0], xy[:-1, 1])
    return abs(area)
