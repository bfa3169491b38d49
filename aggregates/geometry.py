"""GeoJSON in, clean polygonal geometry out: the only door through which shapes enter."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from aggregates.area import EPSILON_M2, area_bounds_m2, geodesic_area_m2
from aggregates.overlay import MAX_SEGMENT_DEG, clip, on_grid, polygonal_part

DEFAULT_MAX_VERTICES = 10_000
# Densification multiplies vertices by perimeter / MAX_SEGMENT_DEG, so it gets its own
# bound: 200k vertices is a perimeter of ~22,000 km, far beyond any field or scene.
MAX_DENSE_VERTICES = 200_000
# The union engine keeps a shape as pieces of at most MAX_PIECE_VERTICES vertices, its
# own cut lines densified like any edge, so a piece covers ~1/512 of a square degree of
# lon/lat (a 1°×1° box becomes 512 pieces, 2°×2° 2,048): an event's overlays and stored
# pieces grow with its lon/lat area, whatever its area on the ground. 4 square degrees
# holds a Sentinel-2 tile (~1 at the equator) to ~70° of latitude and costs ~1.2 s of
# overlays per ledger; a ~20°-wide shape (under the km² limit near a pole, or in a
# check, which had none) kept a worker's loop busy for minutes.
MAX_SQUARE_DEGREES = 4.0


class GeometryError(ValueError):
    """Input that cannot be billed; `reason` is the dead-letter code, args[0] the why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AreaTooLarge(GeometryError):
    """A valid shape larger than any event may bill: a broken footprint, not a field."""

    def __init__(self, area_m2: float, max_area_m2: float) -> None:
        super().__init__(
            "area_too_large",
            f"area {area_m2 / 1e6:.1f} km² is over the {max_area_m2 / 1e6:.1f} km² allowed",
        )


def normalize_geometry(
    geojson: dict[str, Any],
    *,
    max_vertices: int = DEFAULT_MAX_VERTICES,
    max_area_m2: float = float("inf"),
    max_square_degrees: float = MAX_SQUARE_DEGREES,
) -> BaseGeometry:
    """Parse, repair, orient and grid-snap a GeoJSON Polygon/MultiPolygon.

    Repair rule: shapely.make_valid(method="structure", keep_collapsed=False), polygonal
    parts only. "structure" reads rings by role: shells are made valid and unioned, holes
    subtracted. "linework" applies an even-odd rule to all the noded lines instead, so a
    hole crossing its shell turns the part outside the shell into land (invented area)
    and a shell that loops over itself loses the doubly-wrapped area (lost area); for
    money, area should follow what the digitiser plainly meant. Both keep both lobes of
    a bowtie.

    Densify rule: every edge longer than MAX_SEGMENT_DEG (1e-3°, ~111 m) is split into
    equal parts no longer than that (shapely.segmentize, Euclidean length in degrees).
    RFC 7946 makes a GeoJSON edge a straight line in lon/lat, which is also what the
    planar overlay cuts; area, though, is geodesic per edge, and an edge of length L
    differs from its lon/lat line by ~L³·tan(lat)/(12·R) m². Short edges make the two
    agree: a triangle with a 1.4 km east-west edge at 50° has a geodesic area 2.9e-5
    above its lon/lat area undensified and 1.3e-7 densified (test_geometry), and wherever
    a later overlay puts a node on an edge the area moves by at most ~0.013 m² (L ≤ 111 m,
    45°), so the sum of a ledger's piece areas stays within 1e-6 of the area of their
    union (measured ≤ 6e-9 on the billing scenario, 1.3e-5 before) even when km-long
    machine-file hulls and satellite footprints cut through fields. Field-size edges
    (under ~111 m: all of the Chofu parcels) are left untouched. max_vertices applies to
    the input; the densified geometry is capped at MAX_DENSE_VERTICES, and its lon/lat
    area at max_square_degrees (see MAX_SQUARE_DEGREES).

    Snapping to GRID_DEG after repair and densification makes every later overlay run on
    exactly representable grid coordinates; orientation is normalised last (shells CCW)
    so equal shapes have equal encodings.
    """
    budget = _Budget(max_vertices)
    parsed = _parse(geojson, budget)
    polygons = [shapely.Polygon(rings[0], rings[1:]) for rings in parsed]
    raw = polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)
    repaired = _repaired(raw)
    if repaired.area > max_square_degrees:
        raise GeometryError(
            "too_many_pieces",
            f"geometry covers {repaired.area:.1f} square degrees of lon/lat; over "
            f"{max_square_degrees:g} it would be cut into too many pieces to meter",
        )
    # Repair only cuts edges, so input edges that need no split leave nothing to split.
    dense = shapely.segmentize(repaired, MAX_SEGMENT_DEG) if budget.splits else repaired
    oriented: BaseGeometry = shapely.orient_polygons(on_grid(dense))
    if oriented.is_empty:
        raise GeometryError("no_area", "geometry has no area after repair")
    low, high = area_bounds_m2(oriented.area, oriented.bounds, MAX_DENSE_VERTICES)
    if low < EPSILON_M2 or high > max_area_m2:
        # Only near a limit is the exact area needed to decide (see area_bounds_m2).
        area = geodesic_area_m2(oriented)
        if area < EPSILON_M2:
            raise GeometryError("no_area", "geometry has no area after repair")
        if area > max_area_m2:
            raise AreaTooLarge(area, max_area_m2)
    return oriented


def _repaired(raw: BaseGeometry) -> BaseGeometry:
    """The repair rule's result; a valid shape is its own repair, and testing that costs
    less than make_valid's rebuild of it."""
    if shapely.is_valid(raw):
        return raw
    return polygonal_part(shapely.make_valid(raw, method="structure", keep_collapsed=False))


@dataclass
class _Budget:
    """What the rings parsed so far have spent: input vertices against the configured
    limit, and vertices after densification against MAX_DENSE_VERTICES, so an absurd
    input is rejected before segmentize would allocate it."""

    vertices_left: int
    dense: int = 0
    splits: int = 0  # vertices densification adds


def _parse(geojson: Any, budget: _Budget) -> list[list[np.ndarray]]:
    """Validated rings per polygon; rejects before any GEOS work is spent on bad input."""
    if not isinstance(geojson, dict):
        raise GeometryError("bad_type", "geometry must be a GeoJSON object")
    kind = geojson.get("type")
    coordinates = geojson.get("coordinates")
    polygons: list[Any] | tuple[Any, ...]
    if kind == "Polygon":
        polygons = [coordinates]
    elif kind == "MultiPolygon":
        polygons = _nonempty_list(coordinates, "MultiPolygon coordinates")
    else:
        raise GeometryError("bad_type", f"geometry type {kind!r} is not Polygon or MultiPolygon")
    return [
        [_parse_ring(ring, budget) for ring in _nonempty_list(rings, "polygon rings")]
        for rings in polygons
    ]


def _nonempty_list(value: Any, what: str) -> list[Any] | tuple[Any, ...]:
    """Narrow an untrusted value to a non-empty array or reject it as malformed.

    Tuples pass too, so shapely.geometry.mapping() output can be fed back in.
    """
    if not isinstance(value, list | tuple) or not value:
        raise GeometryError("malformed", f"{what} must be a non-empty array")
    return value


def _parse_ring(ring: Any, budget: _Budget) -> np.ndarray:
    """One ring as an (n, 2) float array, closed, charged to `budget`."""
    try:
        array = np.asarray(ring)
    except ValueError as exc:  # ragged nesting
        raise GeometryError("malformed", "ring positions are not uniform arrays") from exc
    if array.ndim != 2 or array.shape[1] not in (2, 3) or array.dtype.kind not in "iuf":
        raise GeometryError("malformed", "a ring must be an array of [lon, lat] numbers")
    budget.vertices_left -= len(array)
    if budget.vertices_left < 0:
        raise GeometryError("too_many_vertices", "geometry has more vertices than allowed")
    xy = array[:, :2].astype(float)
    _check_range(xy)
    if xy[0].tolist() != xy[-1].tolist():
        # GeoJSON requires closed rings; closing one is an unambiguous repair.
        xy = np.vstack([xy, xy[:1]])
    if len(xy) < 4:
        raise GeometryError("malformed", "a ring needs at least 3 distinct positions")
    steps = np.diff(xy, axis=0)
    longest_lon, longest_lat = np.abs(steps).max(axis=0).tolist()
    _check_wrap(steps[:, 0], longest_lon)
    _charge_dense(steps, math.hypot(longest_lon, longest_lat), budget)
    return xy


def _charge_dense(steps: np.ndarray, longest: float, budget: _Budget) -> None:
    """Count the vertices segmentize will give the ring whose edges are `steps`.

    `longest` bounds every edge's length from above. Field-size edges stay well under
    MAX_SEGMENT_DEG and then no edge is measured; the margin sends an edge whose length
    divided by MAX_SEGMENT_DEG could round up to 1.0 down the exact path."""
    if longest < MAX_SEGMENT_DEG * 0.999:
        splits = 0
    else:
        lengths = np.hypot(steps[:, 0], steps[:, 1])
        splits = int(np.floor(lengths / MAX_SEGMENT_DEG).sum())
    budget.splits += splits
    budget.dense += len(steps) + 1 + splits
    if budget.dense > MAX_DENSE_VERTICES:
        raise GeometryError(
            "too_many_vertices", f"geometry densifies to over {MAX_DENSE_VERTICES} vertices"
        )


def _check_wrap(lon_steps: np.ndarray, longest_lon: float) -> None:
    """Rings are straight lines in lon/lat (RFC 7946). One that winds once around a pole,
    or jumps across the antimeridian, would be read as a band around the whole globe:
    reject it with its own reason (RFC 7946 §3.1.9 asks producers to cut such shapes)."""
    wrapped = (lon_steps + 180.0) % 360.0 - 180.0
    if abs(wrapped.sum()) > 180.0:
        raise GeometryError("encircles_pole", "a ring winds around a pole; cut it into parts")
    if longest_lon > 180.0:
        raise GeometryError(
            "crosses_antimeridian", "a ring crosses the antimeridian; cut it at ±180° longitude"
        )


def _check_range(xy: np.ndarray) -> None:
    """Reject coordinates that cannot be WGS84 lon/lat, so no absurd area is billed."""
    # NaN and infinity survive max(), so one reduction serves both checks.
    lon_max, lat_max = np.abs(xy).max(axis=0).tolist()
    if not (math.isfinite(lon_max) and math.isfinite(lat_max)):
        raise GeometryError("not_finite", "coordinates contain NaN or infinity")
    if lon_max > 180.0 or lat_max > 90.0:
        raise GeometryError("out_of_range", "lon must be in [-180, 180] and lat in [-90, 90]")


def clip_to(geom: BaseGeometry, boundary: BaseGeometry) -> BaseGeometry | None:
    """geom inside boundary, or None when nothing billable is left.

    None rather than an empty geometry, so callers cannot count an empty shape by mistake.
    """
    clipped = clip(geom, boundary)
    if clipped.is_empty or geodesic_area_m2(clipped) < EPSILON_M2:
        return None
    return clipped
