"""The intake door: rejection reasons, the repair rule and the precision grid."""

from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates import GRID_DEG, GeometryError, clip_to, geodesic_area_m2, normalize_geometry
from aggregates.geometry import AreaTooLarge, _Budget, _parse_ring
from aggregates.overlay import MAX_SEGMENT_DEG
from tests.aggregates.conftest import load_features

SQUARE = [[10.0, 50.0], [10.001, 50.0], [10.001, 50.001], [10.0, 50.001], [10.0, 50.0]]


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def box(lon: float, lat: float, width: float, height: float) -> dict[str, Any]:
    return polygon([[lon, lat], [lon + width, lat], [lon + width, lat + height],
                    [lon, lat + height], [lon, lat]])


@pytest.mark.parametrize(
    ("geojson", "reason"),
    [
        ({"type": "Point", "coordinates": [10, 50]}, "bad_type"),
        ("POLYGON ((0 0, 1 0, 1 1, 0 0))", "bad_type"),
        ({"type": "LineString", "coordinates": SQUARE}, "bad_type"),
        ({"type": "Polygon"}, "malformed"),
        (polygon(), "malformed"),
        ({"type": "Polygon", "coordinates": [["a", "b", "c", "d"]]}, "malformed"),
        (polygon([[10, 50], [10.001, 50], [10.001]]), "malformed"),
        (polygon([[10, 50], [10.001, 50], [10, 50]]), "malformed"),
        (polygon([[10, 50, 1, 2]] * 4), "malformed"),
        (polygon([["10", "50"], ["11", "50"], ["11", "51"], ["10", "50"]]), "malformed"),
        ({"type": "MultiPolygon", "coordinates": []}, "malformed"),
        (polygon([[181, 50], [182, 50], [182, 51], [181, 50]]), "out_of_range"),
        (polygon([[10, -91], [11, -91], [11, -90.5], [10, -91]]), "out_of_range"),
        (polygon([[10, 50], [float("nan"), 50], [11, 51], [10, 50]]), "not_finite"),
        (polygon([[10, 50], [float("inf"), 50], [11, 51], [10, 50]]), "not_finite"),
        (polygon([[10, 50], [10.5, 50.5], [11, 51], [10, 50]]), "no_area"),
        (polygon([[10, 50], [10 + 1e-12, 50], [10, 50 + 1e-12], [10, 50]]), "no_area"),
    ],
)
def test_rejections_carry_a_reason(geojson: Any, reason: str) -> None:
    with pytest.raises(GeometryError) as caught:
        normalize_geometry(geojson)
    assert caught.value.reason == reason
    assert str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_vertex_limit_counts_all_rings() -> None:
    hole = [[10.0002, 50.0002], [10.0004, 50.0002], [10.0004, 50.0004], [10.0002, 50.0002]]
    normalize_geometry(polygon(SQUARE, hole), max_vertices=9)
    with pytest.raises(GeometryError) as caught:
        normalize_geometry(polygon(SQUARE, hole), max_vertices=8)
    assert caught.value.reason == "too_many_vertices"


def test_bowtie_keeps_both_lobes() -> None:
    bowtie = polygon([[0, 0], [0.001, 0.001], [0.001, 0], [0, 0.001], [0, 0]])
    repaired = normalize_geometry(bowtie)
    lobes = (
        shapely.Polygon([(0, 0), (0.0005, 0.0005), (0, 0.001)]),
        shapely.Polygon([(0.001, 0), (0.0005, 0.0005), (0.001, 0.001)]),
    )
    assert repaired.is_valid
    assert geodesic_area_m2(repaired) == pytest.approx(sum(map(geodesic_area_m2, lobes)), rel=1e-9)


def test_wrong_ring_order_is_oriented_and_keeps_area() -> None:
    clockwise = polygon(SQUARE[::-1])
    geom = normalize_geometry(clockwise)
    assert geom.exterior.is_ccw
    assert geodesic_area_m2(geom) == pytest.approx(
        geodesic_area_m2(shapely.Polygon(SQUARE)), rel=1e-12
    )


def test_structure_rule_neither_invents_nor_cancels_area() -> None:
    shell = [[0, 0], [0.002, 0], [0.002, 0.002], [0, 0.002], [0, 0]]
    crossing_hole = [[0.001, 0.0005], [0.003, 0.0005], [0.003, 0.0015], [0.001, 0.0015]]
    geom = normalize_geometry(polygon(shell, crossing_hole))
    expected = shapely.Polygon(shell).difference(shapely.Polygon(crossing_hole))
    assert geodesic_area_m2(geom) == pytest.approx(geodesic_area_m2(expected), rel=1e-9)
    # The ring wraps a second time around [0.5, 1.5]²; "linework" would cancel that.
    looping = [[0, 0], [2, 0], [2, 2], [0, 2], [0, 0.5], [1.5, 0.5], [1.5, 1.5], [0.5, 1.5]]
    looping_geom = normalize_geometry(polygon([[x / 1000, y / 1000] for x, y in looping]))
    covered = shapely.Polygon([[x / 1000, y / 1000] for x, y in looping]).buffer(0)
    assert geodesic_area_m2(looping_geom) >= geodesic_area_m2(covered) * (1 - 1e-6)


def test_unclosed_ring_and_third_dimension_are_accepted() -> None:
    unclosed = polygon([[x, y, 12.5] for x, y in SQUARE[:-1]])
    assert geodesic_area_m2(normalize_geometry(unclosed)) == pytest.approx(
        geodesic_area_m2(shapely.Polygon(SQUARE)), rel=1e-12
    )


def test_output_sits_on_the_grid() -> None:
    geom = normalize_geometry(polygon([[x + 3.3e-11, y] for x, y in SQUARE]))
    coords = shapely.get_coordinates(geom)
    np.testing.assert_allclose(coords / GRID_DEG, np.round(coords / GRID_DEG), atol=1e-3)


def test_invalid_fiboa_parcels_are_repaired_not_dropped() -> None:
    features = load_features("fiboa_parcels")
    invalid = [f for f in features if not shapely.geometry.shape(f["geometry"]).is_valid]
    assert len(invalid) == 5
    for feature in invalid:
        raw = shapely.geometry.shape(feature["geometry"])
        repaired = normalize_geometry(feature["geometry"])
        assert repaired.is_valid
        assert geodesic_area_m2(repaired) > 0.5 * geodesic_area_m2(shapely.make_valid(raw))


def test_grid_changes_real_areas_by_less_than_a_millionth(data_name: str) -> None:
    raw = [shapely.geometry.shape(f["geometry"]) for f in load_features(data_name)]
    before = np.array(
        [geodesic_area_m2(shapely.segmentize(shapely.make_valid(g), MAX_SEGMENT_DEG)) for g in raw]
    )
    after = np.array(
        [geodesic_area_m2(normalize_geometry(f["geometry"])) for f in load_features(data_name)]
    )
    big = before > 100.0
    assert np.max(np.abs(after - before)[big] / before[big]) < 1e-6
    assert abs(after.sum() - before.sum()) / before.sum() < 1e-6


def test_densify_bounds_edges_and_leaves_field_edges_alone() -> None:
    # A triangle with a 1.4 km east-west edge at 50°: the geodesic edge bulges
    # poleward, the lon/lat edge RFC 7946 means does not (~46 m², 3e-5 relative);
    # densified, the area is that of the latter.
    box = shapely.Polygon([(10.0, 50.0), (10.02, 50.0), (10.0, 50.02)])
    geom = normalize_geometry(shapely.geometry.mapping(box))
    coords = shapely.get_coordinates(geom)
    assert np.hypot(*np.diff(coords, axis=0).T).max() <= MAX_SEGMENT_DEG * (1 + 1e-9)
    fine = geodesic_area_m2(shapely.segmentize(box, MAX_SEGMENT_DEG / 100))
    assert geodesic_area_m2(geom) == pytest.approx(fine, rel=3e-7)  # measured 1.3e-7
    assert geodesic_area_m2(box) != pytest.approx(fine, rel=1e-5)
    for feature in load_features("chofu_fude_2019"):
        raw = shapely.geometry.shape(feature["geometry"])
        dense = normalize_geometry(feature["geometry"])
        assert shapely.get_num_coordinates(dense) <= shapely.get_num_coordinates(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5)), min_size=3, max_size=12),
       st.floats(0.1, 1.2))
def test_charging_a_ring_skips_measuring_edges_only_when_none_would_split(
    offsets: list[tuple[float, float]], scale: float
) -> None:
    """Edges around MAX_SEGMENT_DEG long: the count must be segmentize's own whether the
    shortcut for field-size edges is taken or not."""
    xy = np.array([(10 + dx * MAX_SEGMENT_DEG * scale, 50 + dy * MAX_SEGMENT_DEG * scale)
                   for dx, dy in [(0.0, 0.0), *offsets, (0.0, 0.0)]])
    budget = _Budget(10**6)
    _parse_ring(xy.tolist(), budget)
    steps = np.diff(xy, axis=0)
    expected = int(np.floor(np.hypot(steps[:, 0], steps[:, 1]) / MAX_SEGMENT_DEG).sum())
    assert budget.splits == expected
    assert budget.dense == len(xy) + expected


def test_densifying_an_absurd_perimeter_is_rejected() -> None:
    zigzag = [[-179.0, -80.0], [0.0, -80.0], [179.0, -80.0], [179.0, 80.0], [0.0, 80.0],
              [-179.0, 80.0], [-179.0, -80.0]]
    with pytest.raises(GeometryError) as caught:
        normalize_geometry(polygon(zigzag))
    assert caught.value.reason == "too_many_vertices"


def test_clip_to_keeps_only_the_inside() -> None:
    field = normalize_geometry(polygon(SQUARE))
    half = shapely.box(10.0005, 49.0, 11.0, 51.0)
    clipped = clip_to(half, field)
    assert clipped is not None
    assert geodesic_area_m2(clipped) == pytest.approx(geodesic_area_m2(field) / 2, rel=1e-3)
    assert clip_to(shapely.box(12, 50, 12.001, 50.001), field) is None


@pytest.mark.parametrize(
    ("ring", "reason"),
    [
        ([[179.5, 10], [-179.5, 10], [-179.5, 11], [179.5, 11]], "crosses_antimeridian"),
        ([[0, 80], [90, 80], [180, 80], [-90, 80]], "encircles_pole"),
        ([[-120, -70], [0, -70], [120, -70]], "encircles_pole"),
    ],
)
def test_rings_around_the_globe_get_their_own_reason(ring: list[list[float]], reason: str) -> None:
    """Read as straight lon/lat lines these are bands around the earth; they once came
    out as too_many_vertices, which told the producer nothing."""
    with pytest.raises(GeometryError) as err:
        normalize_geometry({"type": "Polygon", "coordinates": [ring]})
    assert err.value.reason == reason


def test_a_ring_near_the_antimeridian_that_does_not_cross_it_is_fine() -> None:
    ring = [[179.0, 10], [179.9, 10], [179.9, 11], [179.0, 11]]
    assert normalize_geometry({"type": "Polygon", "coordinates": [ring]}).area > 0


def test_an_event_larger_than_allowed_is_area_too_large() -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}
    assert normalize_geometry(square, max_area_m2=20_000e6).area > 0  # ~12,300 km²
    with pytest.raises(AreaTooLarge) as err:
        normalize_geometry(square, max_area_m2=10_000e6)
    assert err.value.reason == "area_too_large"


def test_a_shape_spread_over_many_square_degrees_is_too_many_pieces() -> None:
    """20°×1° at 84° N is ~23,700 km², under the 50,000 km² event limit, but the engine
    would cut it into ~10,000 pieces (512 a square degree): it kept a worker busy."""
    polar = box(10, 84, 20, 1)
    assert geodesic_area_m2(shapely.geometry.shape(polar)) < 50_000e6
    with pytest.raises(GeometryError) as caught:
        normalize_geometry(polar, max_area_m2=50_000e6)
    assert caught.value.reason == "too_many_pieces"
    assert normalize_geometry(box(10, 40, 2, 2)).area == pytest.approx(4.0)  # at the limit
    assert normalize_geometry(polar, max_square_degrees=25).area == pytest.approx(20.0)
