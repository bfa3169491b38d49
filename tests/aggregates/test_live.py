"""LiveUnion: the live AUDIT total follows puts, replaces and removes."""

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry.base import BaseGeometry

from aggregates import LiveUnion, geodesic_area_m2
from tests.aggregates.conftest import union_area
from tests.aggregates.strategies import events

BOX = shapely.box(10.0, 0.5, 10.001, 0.501)
HALF = shapely.box(10.0005, 0.5, 10.0015, 0.501)


def test_delete_lowers_only_what_nobody_else_covers() -> None:
    live = LiveUnion()
    assert live.put("a", BOX) == geodesic_area_m2(BOX)
    gained = live.put("b", HALF)
    assert abs(gained - geodesic_area_m2(HALF.difference(BOX))) < 1e-6
    lost = live.remove("a")
    assert abs(lost + geodesic_area_m2(BOX.difference(HALF))) < 1e-6
    assert live.remove("a") == 0.0
    assert "b" in live and "a" not in live and len(live) == 1
    assert live.get("b") is HALF and live.get("a") is None
    assert abs(live.total_m2 - geodesic_area_m2(HALF)) < 1e-6


def test_replace_is_remove_then_put() -> None:
    live = LiveUnion()
    live.put("a", BOX)
    delta = live.put("a", HALF)
    assert abs(delta - (geodesic_area_m2(HALF) - geodesic_area_m2(BOX))) < 1e-6
    assert len(live) == 1 and live.get("a") is HALF


def test_empty_geometry_removes_the_field() -> None:
    live = LiveUnion()
    live.put("a", BOX)
    assert live.put("a", shapely.Polygon()) < 0
    assert "a" not in live and live.total_m2 == 0.0


operations = st.lists(st.tuples(st.sampled_from("abcdef"), st.booleans()), max_size=30)


@settings(max_examples=60, deadline=None)
@given(events(max_size=10), operations)
def test_total_is_the_union_of_the_live_set(
    evs: list[tuple[BaseGeometry, int]], ops: list[tuple[str, bool]]
) -> None:
    live = LiveUnion()
    state: dict[str, BaseGeometry] = {}
    geoms = [g for g, _ in evs] or [BOX]
    scale = sum(geodesic_area_m2(g) for g in geoms)  # deltas err relative to what moves
    for n, (field_id, is_put) in enumerate(ops):
        if is_put:
            state[field_id] = geoms[n % len(geoms)]
            live.put(field_id, state[field_id])
        else:
            state.pop(field_id, None)
            live.remove(field_id)
        expected = union_area(list(state.values()))
        assert abs(live.total_m2 - expected) <= 1e-6 * scale
    rebuilt = LiveUnion.from_items(state.items())
    assert abs(rebuilt.total_m2 - live.total_m2) <= 1e-6 * scale  # the same bound: the
    # incremental total carries the residue of every delta, the rebuilt one none


@pytest.mark.parametrize("stored", [False, True])
def test_many_removes_trigger_a_clean_reindex(stored: bool) -> None:
    table: dict[str, BaseGeometry] = {}
    live = LiveUnion(table.get if stored else None)
    boxes = [shapely.box(10 + i * 1e-4, 0.5, 10 + (i + 2) * 1e-4, 0.5001) for i in range(3000)]
    for i, geom in enumerate(boxes):
        live.begin()
        live.put(str(i), geom)
        table[str(i)] = geom
    for i in range(0, 3000, 2):
        live.begin()
        live.remove(str(i))
        del table[str(i)]
    expected = union_area([boxes[i] for i in range(1, 3000, 2)])
    assert abs(live.total_m2 - expected) <= 1e-6 * expected


@settings(max_examples=60, deadline=None)
@given(events(max_size=10), operations)
def test_a_union_reading_its_shapes_from_a_store_counts_as_one_holding_them(
    evs: list[tuple[BaseGeometry, int]], ops: list[tuple[str, bool]]
) -> None:
    """The worker's live unions read shapes from the table, where the agent stores each
    input's writes before the next input begins; previews change nothing and equal the
    put that follows."""
    held, table = LiveUnion(), {}
    backed = LiveUnion(table.get)
    geoms = [g for g, _ in evs] or [BOX]
    scale = sum(geodesic_area_m2(g) for g in geoms)
    for n, (field_id, is_put) in enumerate(ops):
        backed.begin()
        if is_put:
            geom = geoms[n % len(geoms)]
            before = backed.total_m2
            previewed = backed.preview(field_id, geom)
            assert backed.total_m2 == before
            delta = backed.put(field_id, geom)
            assert delta == held.put(field_id, geom)
            # equal but for the residue the total's signed deltas leave, which a put
            # emptying the union first hands back: it grows with the area moved
            assert abs(delta - previewed) <= 1e-6 * scale
            table[field_id] = geom
        else:
            assert backed.remove(field_id) == held.remove(field_id)
            table.pop(field_id, None)
        assert backed.total_m2 == held.total_m2
    rebuilt = LiveUnion.from_items(table.items(), backed.total_m2, table.get)
    for field_id in "abcdef":
        assert (rebuilt.get(field_id) is None) == (held.get(field_id) is None)


def test_a_union_reading_a_store_knows_what_the_current_input_removed_and_put() -> None:
    """With a table, which fields are live is what their stored shapes say, but the
    current input's removes and puts are not stored yet: the union answers for them."""
    table: dict[str, BaseGeometry] = {}
    live = LiveUnion(table.get)
    live.put("a", BOX)
    table["a"] = BOX
    live.begin()
    assert live.get("a") is BOX and len(live) == 1
    assert live.remove("a") < 0
    assert "a" not in live and live.get("a") is None and len(live) == 0
    assert live.remove("a") == 0.0  # not twice, though the table still holds it
    assert live.put("a", HALF) == pytest.approx(geodesic_area_m2(HALF))
    assert live.get("a") is HALF and len(live) == 1
    table["a"] = HALF
    live.begin()
    live.put("b", BOX)
    table["b"] = BOX
    live.begin()
    assert live.remove("a") == pytest.approx(-geodesic_area_m2(HALF.difference(BOX)))
    assert live.total_m2 == pytest.approx(geodesic_area_m2(BOX))
