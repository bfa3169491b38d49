"""The grid every stored coordinate sits on, and the floating overlays rounded onto it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates.area import EPSILON_M2, geodesic_area_m2
from aggregates.overlay import (
    GRID_DEG,
    MAX_PIECE_VERTICES,
    cut_in_parts,
    object_array,
    on_grid,
    subtract_all,
    vertex_count,
)

DATA = Path(__file__).parent / "data"


@settings(max_examples=200, deadline=None)
@given(
    lon=st.floats(-179.0, 179.0),
    lat=st.floats(-85.0, 85.0),
    radius=st.floats(1e-6, 1e-2),
    sides=st.integers(3, 64),
)
def test_on_grid_rounds_as_geos_fixed_precision_does(
    lon: float, lat: float, radius: float, sides: int
) -> None:
    """Pieces stored before and after the floating overlay must sit on the same grid."""
    polygon = shapely.Point(lon, lat).buffer(radius, quad_segs=sides)
    snapped = shapely.set_precision(polygon, GRID_DEG)
    rounded = on_grid(polygon)
    assert shapely.is_valid(rounded)
    assert set(map(tuple, shapely.get_coordinates(rounded))) == set(
        map(tuple, shapely.get_coordinates(snapped))
    )


def test_on_grid_leaves_no_fixed_precision_model() -> None:
    """GEOS snap-rounds every overlay on a shape that carries one: 4x slower."""
    snapped = shapely.set_precision(shapely.box(10, 50, 10.001, 50.001), GRID_DEG)
    assert shapely.get_precision(snapped) == GRID_DEG
    assert shapely.get_precision(on_grid(snapped)) == 0.0


def test_on_grid_snap_rounds_what_rounding_would_break() -> None:
    """A hole 0.4 cells from its shell's edge: rounded alone it would touch the shell
    along a line (invalid); snap-rounding opens it into a notch instead."""
    near = 0.4 * GRID_DEG
    shell = [(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]
    hole = [(near, 0.2), (near, 0.8), (0.5, 0.8), (0.5, 0.2), (near, 0.2)]
    polygon = shapely.Polygon(shell, [hole])
    assert shapely.is_valid(polygon)
    assert not shapely.is_valid(shapely.set_precision(polygon, GRID_DEG, mode="pointwise"))
    result = on_grid(polygon)
    assert shapely.is_valid(result)
    xy = shapely.get_coordinates(result)
    np.testing.assert_array_equal(xy, np.floor(xy * (1 / GRID_DEG) + 0.5) / (1 / GRID_DEG))
    assert shapely.get_num_interior_rings(result) == 0
    assert shapely.area(result) == pytest.approx(1 - 0.5 * 0.6, abs=1e-9)


def test_a_field_covered_by_pieces_adds_nothing() -> None:
    """A boundary sent again, covered by four stored pieces (the billing scenario): a
    floating difference against their union with a few nodes off the grid returned the
    whole field, so it was counted twice (1,685 m²)."""
    geom, *pieces = [
        shapely.from_wkt(line) for line in (DATA / "covered_field.wkt").read_text().splitlines()
    ]
    assert geodesic_area_m2(geom) > 1_000
    left = subtract_all(geom, object_array(pieces))
    assert geodesic_area_m2(left) < EPSILON_M2


@given(st.integers(3, 2 * MAX_PIECE_VERTICES), st.integers(1, 3))
def test_a_shape_cut_in_parts_is_known_from_its_wkb_size(vertices: int, polygons: int) -> None:
    """The metering agent sends an event to a thread by its WKB's size alone: every shape
    whose add cuts it (over MAX_PIECE_VERTICES vertices) must go, and a field well under
    the limit must stay on the loop."""
    each = max(3, vertices // polygons)
    shape = shapely.MultiPolygon([
        shapely.Point(3 * i, 0).buffer(1, quad_segs=max(1, each // 4)) for i in range(polygons)
    ])
    size = len(shapely.to_wkb(shape))
    if vertex_count(shape) > MAX_PIECE_VERTICES:
        assert cut_in_parts(size)
    if vertex_count(shape) < MAX_PIECE_VERTICES * 0.9:
        assert not cut_in_parts(size)
