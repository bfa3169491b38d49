"""/usage/explain, /usage/ground, the billable series and the page's files, through the
Faust web app on the state the real agents wrote (tests/api/conftest.py's `world`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientSession

from aggregates import geodesic_area_m2
from aggregates.contracts import contract_id_for
from aggregates.products import Product
from tests.api.conftest import OTHER, OWNER, T0, Feed, sq
from tests.api.test_views import bearer, get

Client = ClientSession
FILE = contract_id_for(OWNER, Product.OPERATIONS_FILE)
DAY = (T0 + timedelta(days=5)).date().isoformat()
SHARED = {"lon": 0.0005, "lat": 0.0005}  # the square u1 sent (e1) and u2 sent again (e2)


async def explain(client: Client, key: str, **params: Any) -> dict[str, Any]:
    status, body, _ = await get(client, "/usage/explain", key, date=DAY, unit="m2", **params)
    assert status == 200, body
    return dict(body)


async def test_explain_names_the_first_event_and_the_ones_deduplicated(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    body = await explain(client, key, product="OPERATIONS_FILE", **SHARED)
    assert body["contract_id"] == FILE and body["scope"] == "api-owner"
    [counted] = body["counted"]
    assert counted["counted_by"]["event_id"] == "e1"
    assert counted["counted_by"]["leaf_user_id"] == "u1"
    assert counted["day"] == T0.date().isoformat()
    assert counted["piece_area"] == pytest.approx(geodesic_area_m2(sq(0, 0)))
    assert [d["event_id"] for d in body["deduplicated"]] == ["e2"]
    own = await explain(client, key, product="OPERATIONS_FILE", leafUserId="u2", **SHARED)
    assert [c["counted_by"]["event_id"] for c in own["counted"]] == ["e2"]
    assert own["deduplicated"] == []


async def test_explain_in_unified_area_names_a_boundary(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    body = await explain(client, key, lon=0.0005, lat=0.0025)
    assert [c["counted_by"]["event_type"] for c in body["counted"]] == ["fieldBoundaryCreated"]


async def test_explain_sees_only_the_keys_owner(client: Client, world: Feed) -> None:
    key = await world.key_for(OTHER)
    body = await explain(client, key, product="OPERATIONS_FILE", **SHARED)
    assert body["counted"] == [] and body["deduplicated"] == []


async def test_explain_refuses_bad_points_and_the_live_union(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    for params in ({"lon": 200, "lat": 0}, {"lon": 0}, {"lon": "x", "lat": 0},
                   {"lon": 0, "lat": 0, "product": "AUDIT_FIELDS_BOUNDARY"}):
        status, body, _ = await get(client, "/usage/explain", key, date=DAY, **params)
        assert status == 400 and body["error"] == "invalid_parameter", (params, body)


async def test_explain_over_a_range_ending_before_it_starts_finds_nothing(
    client: Client, world: Feed
) -> None:
    """The API's rule for every range: one that ends before it starts holds no days, so
    no event of it is searched; who counted the ground in the term is still answered."""
    key = await world.key_for(OWNER)
    whole = await explain(client, key, **SHARED)
    reversed_range = await explain(client, key, **{**SHARED, "start_date": DAY,
                                                   "end_date": "2026-03-01"})
    assert whole["deduplicated"] and reversed_range["deduplicated"] == []
    assert reversed_range["counted"] == whole["counted"]


async def test_ground_is_geojson_a_page_at_a_time(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    params = {"product": "OPERATIONS_FILE", "date": DAY, "unit": "m2"}
    status, body, _ = await get(client, "/usage/ground", key, **params)
    assert status == 200 and body["type"] == "FeatureCollection" and body["next_after"] is None
    by_event = {f["properties"]["event_id"]: f for f in body["features"]}
    assert sorted(by_event) == ["e1", "e3"]
    assert by_event["e3"]["geometry"]["type"] == "Polygon"
    xs = [x for x, _ in by_event["e3"]["geometry"]["coordinates"][0]]
    assert (min(xs), max(xs)) == pytest.approx((0.002, 0.003))
    _, first, _ = await get(client, "/usage/ground", key, limit=1, **params)
    _, second, _ = await get(client, "/usage/ground", key, limit=1, after=first["next_after"],
                             **params)
    assert [f["properties"]["event_id"] for f in first["features"] + second["features"]] == [
        "e1", "e3"]


async def test_the_billable_series_ends_at_the_contracts_used_area(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    _, contract, _ = await get(client, f"/billing/contracts/{FILE}", key, unit="m2")
    status, days, headers = await get(
        client, f"/billing/contracts/{FILE}/consumption/leaf-users", key, unit="m2",
        startTime=T0.date().isoformat(), endTime="2026-03-10")
    assert status == 200 and headers["X-Total-Count"] == "10"
    assert days[-1]["totalArea"] == pytest.approx(contract["used"])
    assert sum(d["areaAdded"] for d in days) == pytest.approx(contract["used"])


async def test_the_page_and_its_libraries_are_served_without_a_key(
    client: Client, world: Feed
) -> None:
    for path, kind in (("/ui", "text/html"), ("/ui/app.js", "text/javascript"),
                       ("/ui/vendor/uplot.js", "text/javascript"),
                       ("/ui/vendor/leaflet.css", "text/css"),
                       ("/ui/config.json", "application/json")):
        resp = await client.get(path)
        assert resp.status == 200 and resp.content_type == kind, path
    for path in ("/ui/secret.py", "/ui/vendor/other.js", "/ui/../pyproject.toml"):
        resp = await client.get(path, headers=bearer("nothing"))
        assert resp.status == 404 and resp.content_type == "application/json", path


async def test_a_posted_area_names_every_event_that_counted_ground_inside_it(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    both = {"type": "Polygon", "coordinates": [[[0, 0], [0.003, 0], [0.003, 0.001],
                                                [0, 0.001], [0, 0]]]}
    resp = await client.post("/usage/explain", headers=bearer(key), json={"geometry": both},
                             params={"product": "OPERATIONS_FILE", "date": DAY, "unit": "m2"})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["lon"] is None and body["lat"] is None
    inside = {c["counted_by"]["event_id"]: c["inside"] for c in body["counted"]}
    one = geodesic_area_m2(sq(0, 0))
    assert inside == pytest.approx({"e1": one, "e3": geodesic_area_m2(sq(0.002, 0))})
    assert [d["event_id"] for d in body["deduplicated"]] == ["e2"]
    for bad in ({"type": "Point", "coordinates": [0, 0]}, {"type": "Polygon"}, "x"):
        resp = await client.post("/usage/explain", headers=bearer(key), json={"geometry": bad})
        body = await resp.json()
        assert resp.status == 400 and body["parameter"] == "geometry", (bad, body)
