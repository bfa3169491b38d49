"""Geodesic area against analytic values and pyproj's generic path."""

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from aggregates import geodesic_area_m2, normalize_geometry
from aggregates.area import area_bounds_m2
from tests.aggregates.conftest import load_features

A = 6_378_137.0
F = 1 / 298.257223563
E2 = F * (2 - F)


def ellipsoid_area() -> float:
    """Closed form surface area of the WGS84 ellipsoid."""
    e = math.sqrt(E2)
    return 2 * math.pi * A**2 * (1 + (1 - E2) / e * math.atanh(e))


def test_octant_is_an_eighth_of_the_ellipsoid() -> None:
    # Equator and two meridians are all geodesics, so the octant is exact.
    octant = shapely.Polygon([(0, 0), (90, 0), (0, 90)])
    assert geodesic_area_m2(octant) == pytest.approx(ellipsoid_area() / 8, rel=1e-9)


def test_orientation_does_not_matter() -> None:
    square = shapely.box(10, 50, 10.01, 50.01)
    assert geodesic_area_m2(square) == geodesic_area_m2(square.reverse())


def test_holes_are_subtracted_and_parts_added() -> None:
    outer = shapely.box(10, 50, 10.01, 50.01)
    inner = shapely.box(10.002, 50.002, 10.004, 50.004)
    holed = outer.difference(inner)
    assert geodesic_area_m2(holed) == pytest.approx(
        geodesic_area_m2(outer) - geodesic_area_m2(inner), rel=1e-12
    )
    multi = shapely.MultiPolygon([outer, shapely.box(11, 50, 11.01, 50.01)])
    assert geodesic_area_m2(multi) == pytest.approx(
        geodesic_area_m2(outer) + geodesic_area_m2(multi.geoms[1]), rel=1e-12
    )


def test_non_areal_and_empty_geometries_have_no_area() -> None:
    line = shapely.LineString([(0, 0), (1, 1)])
    collection = shapely.GeometryCollection([line, shapely.box(0, 0, 0.01, 0.01)])
    assert geodesic_area_m2(shapely.Polygon()) == 0.0
    assert geodesic_area_m2(shapely.MultiPolygon()) == 0.0
    assert geodesic_area_m2(line) == 0.0
    assert geodesic_area_m2(collection) == geodesic_area_m2(shapely.box(0, 0, 0.01, 0.01))


def test_matches_pyproj_generic_path_on_real_data(data_name: str) -> None:
    geod = Geod(ellps="WGS84")
    geoms = [shapely.geometry.shape(f["geometry"]) for f in load_features(data_name)]
    valid = [g for g in geoms if g.is_valid]
    ours = np.array([geodesic_area_m2(g) for g in valid])
    theirs = np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in valid])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_the_same_shape_is_measured_once_and_others_each_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A field on open ground reaches six ledgers and unions as one object: GeographicLib
    runs once for it; any other object, even an equal shape, is measured for itself."""
    import aggregates.area as area

    calls = []
    measure = area._GEOD._polygon_area_perimeter

    def counted(*args: object, **kwargs: object) -> tuple[float, float]:
        calls.append(1)
        return measure(*args, **kwargs)

    monkeypatch.setattr(area._GEOD, "_polygon_area_perimeter", counted)
    field = shapely.box(10.0, 50.0, 10.01, 50.01)
    twin = shapely.box(10.0, 50.0, 10.01, 50.01)
    other = shapely.box(10.0, 50.0, 10.02, 50.01)
    first = geodesic_area_m2(field)
    assert [geodesic_area_m2(field) for _ in range(5)] == [first] * 5
    assert len(calls) == 1
    assert geodesic_area_m2(other) == pytest.approx(2 * first, rel=1e-3)
    assert geodesic_area_m2(field) == first and geodesic_area_m2(twin) == first
    assert len(calls) == 4


@settings(max_examples=300, deadline=None)
@given(st.floats(-84.0, 84.0), st.floats(-179.0, 175.0), st.floats(-6.0, -0.35),
       st.floats(0.2, 5.0), st.lists(st.floats(0.3, 1.0), min_size=5, max_size=24))
def test_intakes_area_bounds_hold_the_geodesic_area(
    lat: float, lon: float, log_size: float, aspect: float, radii: list[float]
) -> None:
    """Intake decides on bounds and measures only near a limit: a shape whose bounds
    were wrong would be let in with no area, or past the event area limit. Star-shaped
    polygons from 1e-6° to ~0.9° across, anywhere from 84° S to 84° N (the equator
    crossed too), as intake leaves them (densified, on the grid)."""
    size = 10.0**log_size
    angles = np.linspace(0.0, 2 * math.pi, len(radii), endpoint=False)
    ring = [(lon + size * r * math.cos(a), max(-85.0, min(85.0, lat + size / aspect * r
             * math.sin(a)))) for r, a in zip(radii, angles, strict=True)]
    geom = normalize_geometry(shapely.geometry.mapping(shapely.Polygon(ring)))
    low, high = area_bounds_m2(geom.area, geom.bounds, shapely.get_num_coordinates(geom))
    assert low <= geodesic_area_m2(geom) <= high
    south, north = geom.bounds[1], geom.bounds[3]
    if low > 10_000.0 and north - south < 0.01 and max(abs(south), abs(north)) < 80.0:
        assert high / low < 1.03  # a field's, tight enough to spare its measurement
