"""Hypothesis strategies: small overlapping fields built to stress the overlay."""

from typing import Any

from hypothesis import strategies as st
from shapely.geometry.base import BaseGeometry

from aggregates import normalize_geometry

# Near the equator on purpose. Overlay runs on lon/lat segments but area treats edges as
# geodesics, so a node inserted on an edge (a T-junction, common on this coarse lattice)
# changes the geodesic area by up to ~1e-6 of a 20 m field at 50° latitude, in the oracle
# as much as in the ledger. That ambiguity shrinks with tan(latitude); these tests are
# about set algebra, so they run where it vanishes. Real-data tests cover real latitudes.
LON, LAT = 10.0, 0.5
STEP = 1e-4  # ~7-11 m: coarse lattice, so shared edges, duplicates and nesting are common
NUDGE = 1e-7  # ~1 cm: a re-digitised boundary


def _box(x: float, y: float, w: float, h: float) -> list[list[float]]:
    x0, y0 = LON + x * STEP, LAT + y * STEP
    x1, y1 = x0 + w * STEP, y0 + h * STEP
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


cells = st.integers(0, 6)
sizes = st.integers(1, 4)


@st.composite
def box_rings(draw: st.DrawFn) -> list[list[float]]:
    return _box(draw(cells), draw(cells), draw(sizes), draw(sizes))


@st.composite
def field(draw: st.DrawFn) -> dict[str, Any]:
    """A rectangle, a MultiPolygon of two, or a (maybe self-crossing) quadrilateral."""
    kind = draw(st.sampled_from(["box", "multi", "quad"]))
    if kind == "box":
        return {"type": "Polygon", "coordinates": [draw(box_rings())]}
    if kind == "multi":
        parts = [[draw(box_rings())], [draw(box_rings())]]
        return {"type": "MultiPolygon", "coordinates": parts}
    corners = [[LON + draw(cells) * STEP, LAT + draw(cells) * STEP] for _ in range(4)]
    return {"type": "Polygon", "coordinates": [[*corners, corners[0]]]}


def nudged(geojson: dict[str, Any], dx: float, dy: float) -> dict[str, Any]:
    def move(ring: list[list[float]]) -> list[list[float]]:
        return [[x + dx, y + dy] for x, y in ring]

    if geojson["type"] == "Polygon":
        return {"type": "Polygon", "coordinates": [move(r) for r in geojson["coordinates"]]}
    polys = [[move(r) for r in poly] for poly in geojson["coordinates"]]
    return {"type": "MultiPolygon", "coordinates": polys}


@st.composite
def events(draw: st.DrawFn, max_size: int = 12) -> list[tuple[BaseGeometry, int]]:
    """Normalised geometries with days; some repeat or nudge an earlier one."""
    raw: list[dict[str, Any]] = []
    out: list[tuple[BaseGeometry, int]] = []
    for _ in range(draw(st.integers(1, max_size))):
        how = draw(st.sampled_from(["new", "new", "new", "same", "nudge"]))
        if how == "new" or not raw:
            geojson = draw(field())
        else:
            earlier = raw[draw(st.integers(0, len(raw) - 1))]
            shift = NUDGE * draw(st.sampled_from([-1, 1]))
            geojson = earlier if how == "same" else nudged(earlier, shift, shift / 2)
        raw.append(geojson)
        try:
            geom = normalize_geometry(geojson)
        except ValueError:  # a collapsed quadrilateral has no area
            continue
        out.append((geom, draw(st.integers(0, 5))))
    return out
