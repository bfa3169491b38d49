"""Every endpoint over HTTP: values, auth, isolation, limits, bad input, docs."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession
from shapely.geometry import box as shapely_box
from shapely.geometry import mapping

from aggregates import geodesic_area_m2
from aggregates.contracts import OWNER_SCOPE, contract_id_for, user_scope
from aggregates.meter import Meter
from aggregates.products import Product
from schemas.units import M2_PER_UNIT, Unit
from tests.api.conftest import ADMIN, OTHER, OWNER, T0, Feed, sq

Client = ClientSession
FILE = contract_id_for(OWNER, Product.OPERATIONS_FILE)
OTHER_FILE = contract_id_for(OTHER, Product.OPERATIONS_FILE)
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [0.001, 0], [0.001, 0.001], [0, 0.001],
                                              [0, 0]]]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get(client: Client, path: str, token: str, **params: Any) -> Any:
    resp = await client.get(path, headers=bearer(token), params=params)
    assert resp.content_type == "application/json"
    return resp.status, await resp.json(), resp.headers


# ---- values -------------------------------------------------------------------------


async def test_contracts_list_pages_and_counts(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    status, body, headers = await get(client, "/billing/contracts", key, size=2)
    assert status == 200 and headers["X-Total-Count"] == "4", body
    assert [c["product"] for c in body] == ["FIELDS_BOUNDARY", "AUDIT_FIELDS_BOUNDARY"]
    status, body, _ = await get(client, "/billing/contracts", key, page=2, size=2)
    assert [c["product"] for c in body] == ["OPERATIONS_FILE", "UNIFIED_AREA"]
    assert all(c["apiOwner"] == OWNER and c["unit"] == "acres" for c in body)


async def test_contract_used_is_billable_in_every_unit(client: Client, world: Feed) -> None:
    """Issue 8 item 8: `used` is the billable area (sum of Leaf-user totals), the owner's
    unique area is the footprint beside it."""
    key = await world.key_for(OWNER)
    footprint = world.meter.total_m2(FILE, 0, OWNER_SCOPE)
    one = geodesic_area_m2(sq(0, 0))
    assert footprint == pytest.approx(one + geodesic_area_m2(sq(0.002, 0)))
    billable = sum(world.meter.total_m2(FILE, 0, user_scope(u)) for u in ("u1", "u2"))
    assert billable == pytest.approx(footprint + one)  # u1 and u2 share one square
    for unit in Unit:
        _, body, _ = await get(client, f"/billing/contracts/{FILE}", key, unit=unit.value)
        assert body["used"] == pytest.approx(billable / M2_PER_UNIT[unit])
        assert body["footprint"] == pytest.approx(footprint / M2_PER_UNIT[unit])
        assert body["unit"] == unit.value and body["quota"] is None
        assert body["currentTerm"] == {"index": 0, "startDate": "2026-03-01",
                                       "endDate": "2027-03-01"}
    _, body, _ = await get(client, f"/billing/contracts/{FILE}", key)
    assert body["used"] == pytest.approx(billable / 4046.8564224)
    await world.set_quota(FILE, 2 * billable)
    _, body, _ = await get(client, f"/billing/contracts/{FILE}", key, unit="m2")
    assert body["percentUsed"] == pytest.approx(50.0)
    assert body["remaining"] == pytest.approx(billable)
    _, summary, _ = await get(client, "/usage/summary", key, unit="m2", start_date="2026-03-01",
                              end_date="2026-03-10")
    files = next(p for p in summary["products"] if p["product"] == "OPERATIONS_FILE")
    assert files["percent_used"] == pytest.approx(50.0)
    assert files["used"] == pytest.approx(billable)


async def test_consumption_day_owner_and_users(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    day = (T0 + timedelta(days=1)).date().isoformat()
    status, body, headers = await get(client, f"/billing/contracts/{FILE}/consumption", key,
                                      timestamp=day, unit="m2")
    assert status == 200 and headers["X-Total-Count"] == "2"
    one = geodesic_area_m2(sq(0, 0))
    assert body["owner"]["totalArea"] == pytest.approx(one)
    assert body["owner"]["areaAdded"] == pytest.approx(0.0, abs=1e-6)
    users = {u["leafUserId"]: u for u in body["leafUsers"]}
    assert users["u1"]["totalArea"] == pytest.approx(one)
    assert users["u2"]["areaAdded"] == pytest.approx(one)
    assert body["overlapArea"] == pytest.approx(one)


async def test_daily_breakdown_is_zero_filled_and_matches_snapshots(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    start, end = T0.date(), (T0 + timedelta(days=9)).date()
    status, body, headers = await get(
        client, f"/billing/contracts/{FILE}/consumption/api-owner", key,
        startTime=start.isoformat(), endTime=end.isoformat(), unit="m2")
    assert status == 200 and headers["X-Total-Count"] == "10" and len(body) == 10
    by_day = world.meter.by_day(FILE, 0, OWNER_SCOPE)
    running = 0.0
    for row in body:
        added = by_day.get(datetime_ordinal(row["date"]), 0.0)
        running += added
        assert row["areaAdded"] == pytest.approx(added)
        assert row["totalArea"] == pytest.approx(running)
    _, user_rows, _ = await get(
        client, f"/billing/contracts/{FILE}/consumption/leaf-user/u2", key,
        startTime=start.isoformat(), endTime=end.isoformat(), unit="m2")
    assert user_rows[-1]["totalArea"] == pytest.approx(
        world.meter.total_m2(FILE, 0, user_scope("u2")))


async def post_check(client: Client, token: str, **body: Any) -> Any:
    resp = await client.post("/usage/check?unit=m2", headers=bearer(token), json=body)
    out = await resp.json()
    assert resp.status == 200, out
    return out


def datetime_ordinal(iso: str) -> int:
    return date.fromisoformat(iso).toordinal()


async def test_usage_summary_details_by_period_top_users(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    status, body, _ = await get(client, "/usage/summary", key, unit="m2",
                                start_date="2026-03-01", end_date="2026-03-10")
    files = next(p for p in body["products"] if p["product"] == "OPERATIONS_FILE")
    assert status == 200 and files["area_added"] == pytest.approx(
        world.meter.total_m2(FILE, 0, OWNER_SCOPE))
    assert files["overlap"] == pytest.approx(geodesic_area_m2(sq(0, 0)))

    status, body, headers = await get(client, "/usage/details", key, page_size=2)
    assert headers["X-Total-Count"] == "5" and body["total"] == 5 and len(body["records"]) == 2
    assert body["records"][0]["timestamp"] >= body["records"][1]["timestamp"]
    _, body, _ = await get(client, "/usage/details", key, type="satelliteImageProcessingFinished")
    assert [r["status"] for r in body["records"]] == ["FAILED"]
    _, body, _ = await get(client, "/usage/details", key, leafUserId="u2")
    assert {r["leaf_user_id"] for r in body["records"]} == {"u2"} and body["total"] == 2

    _, body, headers = await get(client, "/usage/by-period", key, period_type="month",
                                 product="OPERATIONS_FILE", start_date="2026-03-01",
                                 end_date="2026-04-30", unit="m2")
    assert headers["X-Total-Count"] == "2"
    assert body["periods"][0]["total_area"] == pytest.approx(world.meter.total_m2(FILE, 0,
                                                                                  OWNER_SCOPE))
    _, hours, _ = await get(client, "/usage/by-period", key, period_type="hour",
                            product="OPERATIONS_FILE", start_date="2026-03-01",
                            end_date="2026-03-01", unit="m2", page_size=100)
    assert hours["total"] == 24
    assert hours["periods"][12]["area_added"] == pytest.approx(geodesic_area_m2(sq(0, 0)))

    _, body, _ = await get(client, "/usage/top-users", key, product="OPERATIONS_FILE",
                           date="2026-03-05")
    assert [u["leaf_user_id"] for u in body["users"]] == ["u2", "u1"]
    assert body["users"][0]["rank"] == 1


async def test_check_previews_without_changing_anything(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    await get(client, "/usage/plan", key)  # the key's first use is reported; then a minute's peace
    before = world.meter.total_m2(FILE, 0, OWNER_SCOPE)
    sent = world.sent_to_metering()
    resp = await client.post("/usage/check?unit=m2", headers=bearer(key), json={
        "geometry": SQUARE, "product": "OPERATIONS_FILE", "leaf_user_id": "u3"})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["area_added_owner"] == pytest.approx(0.0, abs=1e-3)
    assert body["area_added_user"] == pytest.approx(geodesic_area_m2(sq(0, 0)), rel=1e-6)
    assert body["can_proceed"] is True and body["available"] is None
    assert world.meter.total_m2(FILE, 0, OWNER_SCOPE) == before
    assert world.sent_to_metering() == sent


async def test_quota_put_then_check_and_plan(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    resp = await client.put(f"/billing/contracts/{FILE}/quota?unit=m2", headers=bearer(ADMIN),
                            json={"quota": 1.0, "unit": "hectares"})
    body = await resp.json()
    assert resp.status == 202 and body["quota"] == pytest.approx(10_000.0)
    await world.pipeline.settled()  # 202: applied once the metering agent has read it
    assert world.meter.contracts[FILE].quota_m2 == pytest.approx(10_000.0)
    far = {"type": "Polygon", "coordinates": [[[5, 5], [5.01, 5], [5.01, 5.01], [5, 5.01],
                                               [5, 5]]]}
    resp = await client.post("/usage/check", headers=bearer(key), json={
        "geometry": far, "product": "OPERATIONS_FILE", "leaf_user_id": "u1"})
    body = await resp.json()
    assert body["can_proceed"] is False and body["required"] > body["available"]
    assert "quota" in body["message"]
    _, plan, _ = await get(client, "/usage/plan", key, product="OPERATIONS_FILE")
    assert plan["quota"] == pytest.approx(10_000 / 4046.8564224)
    assert plan["days_elapsed"] == 10 and plan["term_end"] == "2027-03-01"
    assert plan["will_exceed_limit"] is True
    assert any("same area is connected under several Leaf users" in r
               for r in plan["recommendations"])


async def test_check_charges_the_billable_area(client: Client, world: Feed) -> None:
    """Issue 8 item 8: an area already in the owner's union still bills a new Leaf user."""
    key = await world.key_for(OWNER)
    one = geodesic_area_m2(sq(0, 0))
    billable = world.meter.billable_m2(FILE, 0)
    await world.set_quota(FILE, billable + 0.5 * one)
    body = await post_check(client, key, geometry=SQUARE, product="OPERATIONS_FILE",
                            leaf_user_id="u3")
    assert body["area_added_owner"] == pytest.approx(0.0, abs=1e-3)
    assert body["required"] == pytest.approx(one, rel=1e-6)  # was 0: the owner-scope area
    assert body["used"] == pytest.approx(billable)
    assert body["footprint"] == pytest.approx(world.meter.total_m2(FILE, 0, OWNER_SCOPE))
    assert body["available"] == pytest.approx(0.5 * one)
    assert body["can_proceed"] is False and body["blocked_by"] == ["OPERATIONS_FILE"]
    # u1 already holds the square: nothing billable would be added.
    body = await post_check(client, key, geometry=SQUARE, product="OPERATIONS_FILE",
                            leaf_user_id="u1")
    assert body["required"] == pytest.approx(0.0, abs=1e-3) and body["can_proceed"] is True


async def test_check_honours_the_unified_quota(client: Client, world: Feed) -> None:
    """Issue 8 item 9: a satellite check said it could proceed with UNIFIED at 417 %."""
    key = await world.key_for(OWNER)
    unified = contract_id_for(OWNER, Product.UNIFIED_AREA)
    await world.set_quota(unified, world.meter.billable_m2(unified, 0) / 4.17)
    far = {"type": "Polygon", "coordinates": [[[5, 5], [5.001, 5], [5.001, 5.001], [5, 5.001],
                                               [5, 5]]]}
    body = await post_check(client, key, geometry=far, product="SATELLITE_PROCESS_PLANET",
                            leaf_user_id="u1")
    assert body["contract_id"] is None and body["quota"] is None  # no PLANET contract yet
    assert body["can_proceed"] is False and body["blocked_by"] == ["UNIFIED_AREA"]
    assert [q["product"] for q in body["quotas"]] == ["SATELLITE_PROCESS_PLANET", "UNIFIED_AREA"]
    planet, uni = body["quotas"]
    assert planet["can_proceed"] is True and uni["can_proceed"] is False
    assert uni["contract_id"] == unified and uni["available"] == 0.0
    assert uni["required"] == pytest.approx(geodesic_area_m2(sq(5, 5)), rel=1e-6)
    assert "UNIFIED_AREA quota" in body["message"]
    await world.set_quota(unified, 10 * world.meter.billable_m2(unified, 0))
    body = await post_check(client, key, geometry=far, product="SATELLITE_PROCESS_PLANET",
                            leaf_user_id="u1")
    assert body["can_proceed"] is True and body["blocked_by"] == []


async def test_check_previews_audit_against_the_live_union(client: Client, world: Feed) -> None:
    """Issue 8 item 9: AUDIT previews what the boundary adds to the live union."""
    key = await world.key_for(OWNER)
    f1 = sq(0, 0.002)  # u1's live field f1
    field = {"type": "Polygon", "coordinates": [[[0, 0.002], [0.001, 0.002], [0.001, 0.003],
                                                 [0, 0.003], [0, 0.002]]]}
    body = await post_check(client, key, geometry=field, product="AUDIT_FIELDS_BOUNDARY",
                            leaf_user_id="u1")
    assert body["required"] == pytest.approx(0.0, abs=1e-3)  # was the whole field
    assert body["area_added_owner"] == pytest.approx(0.0, abs=1e-3)
    assert [q["product"] for q in body["quotas"]] == ["AUDIT_FIELDS_BOUNDARY"]
    body = await post_check(client, key, geometry=field, product="AUDIT_FIELDS_BOUNDARY",
                            leaf_user_id="u2")
    assert body["required"] == pytest.approx(geodesic_area_m2(f1), rel=1e-6)
    assert body["area_added_owner"] == pytest.approx(0.0, abs=1e-3)
    # Replacing f1 by a boundary twice as tall adds one field; replacing it elsewhere adds 0.
    taller = {"type": "Polygon", "coordinates": [[[0, 0.002], [0.001, 0.002], [0.001, 0.004],
                                                  [0, 0.004], [0, 0.002]]]}
    body = await post_check(client, key, geometry=taller, product="AUDIT_FIELDS_BOUNDARY",
                            leaf_user_id="u1", field_id="f1")
    assert body["required"] == pytest.approx(geodesic_area_m2(sq(0, 0.003)), rel=1e-6)
    body = await post_check(client, key, geometry=SQUARE, product="AUDIT_FIELDS_BOUNDARY",
                            leaf_user_id="u1", field_id="f1")
    assert body["required"] == pytest.approx(0.0, abs=1e-3)
    assert world.meter.audit.live[(OWNER, user_scope("u1"))].get("f1") is not None  # unchanged


async def test_check_clips_an_operation_to_its_field(client: Client, world: Feed) -> None:
    """Issue 8 item 9: an operation only counts inside its field when the field is known."""
    key = await world.key_for(OWNER)
    wide = {"type": "Polygon", "coordinates": [[[0, 0.0025], [0.003, 0.0025], [0.003, 0.0035],
                                                [0, 0.0035], [0, 0.0025]]]}
    inside = geodesic_area_m2(shapely_box(0, 0.0025, 0.001, 0.003))
    body = await post_check(client, key, geometry=wide, product="OPERATIONS_OPERATION",
                            leaf_user_id="u1", fieldId="f1")
    assert body["field_clip"] == "clipped" and body["field_id"] == "f1"
    assert body["required"] == pytest.approx(inside, rel=1e-6)
    uni = body["quotas"][1]  # the field's boundary already put that part in UNIFIED
    assert uni["product"] == "UNIFIED_AREA" and uni["required"] == pytest.approx(0.0, abs=1e-3)
    body = await post_check(client, key, geometry=wide, product="OPERATIONS_OPERATION",
                            leaf_user_id="u1", field_id="nope")
    assert body["field_clip"] == "field_unknown"
    assert body["required"] == pytest.approx(geodesic_area_m2(shapely_box(0, 0.0025, 0.003,
                                                                          0.0035)), rel=1e-6)
    body = await post_check(client, key, geometry=SQUARE, product="OPERATIONS_OPERATION",
                            leaf_user_id="u1", field_id="f1")
    assert body["field_clip"] == "outside_field" and body["required"] == 0.0
    assert body["can_proceed"] is True
    body = await post_check(client, key, geometry=wide, product="OPERATIONS_OPERATION",
                            leaf_user_id="u2", field_id="f1")  # f1 is u1's field, not u2's
    assert body["field_clip"] == "field_unknown"


async def test_top_user_shares_add_up_to_100(client: Client, world: Feed) -> None:
    """Issue 8 item 10: shares were of the owner's unique area and summed to 150 % here."""
    key = await world.key_for(OWNER)
    _, body, _ = await get(client, "/usage/top-users", key, product="OPERATIONS_FILE",
                           date="2026-03-05", unit="m2")
    users = body["users"]
    assert sum(u["share_percent"] for u in users) == pytest.approx(100.0)
    billable = world.meter.billable_m2(FILE, 0)
    for u in users:
        assert u["share_percent"] == pytest.approx(100.0 * u["total_area"] / billable)


async def test_plan_states_billable_footprint_and_confidence(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    _, plan, _ = await get(client, "/usage/plan", key, product="OPERATIONS_FILE", unit="m2")
    billable = world.meter.billable_m2(FILE, 0)
    footprint = world.meter.total_m2(FILE, 0, OWNER_SCOPE)
    assert plan["used"] == pytest.approx(billable)
    assert plan["footprint"] == pytest.approx(footprint)
    assert plan["overlap"] == pytest.approx(billable - footprint)
    assert plan["confidence"] == "low" and plan["active_days"] == 3
    assert plan["projected_term_total_low"] <= plan["projected_term_total"]
    assert plan["projected_term_total"] <= plan["projected_term_total_high"]
    assert plan["projected_term_total"] == pytest.approx(billable)  # 3 active days: trimmed


# ---- security -----------------------------------------------------------------------


async def test_missing_and_wrong_keys_are_401(client: Client, world: Feed) -> None:
    await world.key_for(OWNER)
    forged = (await world.key_for(OWNER))[:-3] + "xyz"
    for headers in ({}, {"Authorization": "Basic abc"}, bearer("nope"), bearer(forged),
                    bearer(ADMIN + "x")):
        resp = await client.get("/billing/contracts", headers=headers)
        assert resp.status == 401, headers
        assert (await resp.json())["error"] == "unauthorized"


async def test_no_key_reveals_another_owner(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    for path in (f"/billing/contracts/{OTHER_FILE}", f"/billing/contracts/{OTHER_FILE}/consumption",
                 f"/billing/contracts/{FILE}/consumption/leaf-user/x1"):
        status, body, _ = await get(client, path, key)
        assert status == 404 and OTHER not in str(body)
    status, _, _ = await get(client, "/billing/contracts", key, apiOwner=OTHER)
    assert status == 404
    _, body, _ = await get(client, "/usage/details", key)
    assert {r["leaf_user_id"] for r in body["records"]} == {"u1", "u2"}
    status, _, _ = await get(client, "/usage/summary", key, apiOwner=OTHER)
    assert status == 404


async def test_admin_sees_all_and_owner_cannot_admin(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    status, body, _ = await get(client, f"/billing/contracts/{OTHER_FILE}", ADMIN)
    assert status == 200 and body["apiOwner"] == OTHER
    status, body, _ = await get(client, "/usage/summary", ADMIN)
    assert status == 400 and body["parameter"] == "apiOwner"
    status, body, _ = await get(client, "/billing/contracts", ADMIN, apiOwner=OTHER)
    assert status == 200 and {c["apiOwner"] for c in body} == {OTHER}
    resp = await client.put(f"/billing/contracts/{FILE}/quota", headers=bearer(key),
                            json={"quota": 1})
    assert resp.status == 403
    resp = await client.post("/admin/api-keys", headers=bearer(key), json={"apiOwner": OTHER})
    assert resp.status == 403


async def test_admin_lists_every_owners_contracts_in_pages(client: Client, world: Feed) -> None:
    """Without apiOwner: every owner's contracts, by apiOwner then contractId."""
    mine = (await get(client, "/billing/contracts", ADMIN, apiOwner=OWNER, size=100))[1]
    theirs = (await get(client, "/billing/contracts", ADMIN, apiOwner=OTHER, size=100))[1]
    expected = sorted(mine + theirs, key=lambda c: (c["apiOwner"], c["contractId"]))
    assert {c["apiOwner"] for c in expected} == {OWNER, OTHER}
    pages = []
    for page in range(1, 4):
        status, body, headers = await get(client, "/billing/contracts", ADMIN, page=page, size=2)
        assert status == 200 and headers["X-Total-Count"] == str(len(expected))
        pages += body
    assert pages == expected[:6]
    _, body, _ = await get(client, "/billing/contracts", ADMIN, product="OPERATIONS_FILE")
    assert [c["contractId"] for c in body] == [OTHER_FILE, FILE]  # other@ before owner@
    key = await world.key_for(OWNER)
    _, body, _ = await get(client, "/billing/contracts", key, size=100)
    assert body == mine  # an owner key still lists its own, in product order


async def test_admin_creates_working_key(client: Client, world: Feed) -> None:
    resp = await client.post("/admin/api-keys", headers=bearer(ADMIN), json={"apiOwner": OTHER})
    body = await resp.json()
    assert resp.status == 201 and body["apiOwner"] == OTHER
    assert body["apiKey"] not in str(world.table())  # only its hash is kept
    status, contracts, _ = await get(client, "/billing/contracts", body["apiKey"])
    assert status == 200 and {c["apiOwner"] for c in contracts} == {OTHER}


async def test_rate_limits_per_key(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    for _ in range(30):
        assert (await client.get("/usage/plan", headers=bearer(key))).status == 200
    resp = await client.get("/usage/plan", headers=bearer(key))
    body = await resp.json()
    assert resp.status == 429 and body["error"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    other = await world.key_for(OTHER)
    assert (await client.get("/usage/plan", headers=bearer(other))).status == 200
    check = {"geometry": SQUARE, "product": "OPERATIONS_FILE", "leaf_user_id": "u1"}
    for _ in range(60):
        assert (await client.post("/usage/check", headers=bearer(key), json=check)).status == 200
    assert (await client.post("/usage/check", headers=bearer(key), json=check)).status == 429


# ---- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/billing/contracts", {"unit": "furlongs"}, "unit"),
    ("/billing/contracts", {"size": "101"}, "size"),
    ("/billing/contracts", {"page": "-1"}, "page"),
    ("/billing/contracts", {"page": "0"}, "page"),
    ("/billing/contracts", {"product": "NOPE"}, "product"),
    ("/billing/contracts", {"nope": "1"}, "nope"),
    (f"/billing/contracts/{FILE}/consumption", {"timestamp": "yesterday"}, "timestamp"),
    (f"/billing/contracts/{FILE}/consumption", {"timestamp": "0.5"}, "timestamp"),
    (f"/billing/contracts/{FILE}/consumption", {"page": "0"}, "page"),
    (f"/billing/contracts/{FILE}/consumption/api-owner",
     {"startTime": "1000-01-01", "endTime": "2026-01-01"}, "startTime"),
    (f"/billing/contracts/{FILE}/consumption/api-owner",
     {"startTime": "2026-01-01", "endTime": "2200-01-01"}, "endTime"),
    (f"/billing/contracts/{FILE}/consumption/api-owner", {"page": "0"}, "page"),
    ("/usage/details", {"page_size": "500"}, "page_size"),
    ("/usage/details", {"page": "0"}, "page"),
    ("/usage/details", {"leafUserId": "u" * 257}, "leafUserId"),
    ("/usage/by-period", {"period_type": "fortnight"}, "period_type"),
    ("/usage/by-period", {"page": "0"}, "page"),
    ("/usage/summary", {"start_date": "2026-13-01"}, "start_date"),
    ("/usage/summary", {"period": "decade"}, "period"),
    ("/usage/top-users", {"date": "x"}, "date"),
    ("/usage/top-users", {"date": "0"}, "date"),
    ("/usage/top-users", {"page": "0"}, "page"),
    (f"/billing/contracts/{FILE}/consumption/leaf-users", {"page": "0"}, "page"),
    ("/usage/breakdown", {"page": "0"}, "page"),
    ("/usage/explain", {"lon": "0", "lat": "0", "page": "0"}, "page"),
    ("/api-keys", {"page": "0"}, "page"),
    ("/webhooks", {"page": "0"}, "page"),
])
async def test_bad_parameters_are_400_naming_them(
    client: Client, world: Feed, path: str, params: dict[str, str], parameter: str
) -> None:
    status, body, _ = await get(client, path, await world.key_for(OWNER), **params)
    assert status == 400, body
    assert body["error"] == "invalid_parameter" and body["parameter"] == parameter


# ---- pages and ranges ---------------------------------------------------------------


LISTS = [("/billing/contracts", "size"), (f"/billing/contracts/{FILE}/consumption", "size"),
         (f"/billing/contracts/{FILE}/consumption/api-owner", "size"),
         (f"/billing/contracts/{FILE}/consumption/leaf-user/u1", "size"),
         ("/usage/details", "page_size"), ("/usage/by-period", "page_size"),
         ("/usage/top-users", "page_size"), ("/usage/breakdown", "page_size")]


@pytest.mark.parametrize(("path", "size"), LISTS)
async def test_every_list_pages_from_1_and_counts(
    client: Client, world: Feed, path: str, size: str
) -> None:
    """One rule: page 1 is the first page, 0 is a 400, X-Total-Count on every list."""
    key = await world.key_for(OWNER)
    status, first, headers = await get(client, path, key, **{size: 1})
    assert status == 200 and int(headers["X-Total-Count"]) >= 2, (path, first)
    _, again, _ = await get(client, path, key, page=1, **{size: 1})
    _, second, _ = await get(client, path, key, page=2, **{size: 1})
    assert again == first and second != first
    status, body, _ = await get(client, path, key, page=0)
    assert status == 400 and body["parameter"] == "page"


async def test_ranges_of_any_span_cost_one_page(client: Client, world: Feed) -> None:
    """Only the page is computed: three centuries of hours answer like one day's."""
    key = await world.key_for(OWNER)
    status, body, headers = await get(client, "/usage/by-period", key, period_type="hour",
                                      product="OPERATIONS_FILE", start_date="1900-01-01",
                                      end_date="2199-12-31", unit="m2", page_size=100)
    days = (date(2199, 12, 31) - date(1900, 1, 1)).days + 1
    assert status == 200 and int(headers["X-Total-Count"]) == 24 * days == body["total"]
    assert [p["period_start"][:10] for p in body["periods"][::24]] == [
        "1900-01-01", "1900-01-02", "1900-01-03", "1900-01-04", "1900-01-05"]
    hour = (T0.date() - date(1900, 1, 1)).days * 24 + 12  # T0's hour
    page = hour // 100 + 1
    _, body, _ = await get(client, "/usage/by-period", key, period_type="hour",
                           product="OPERATIONS_FILE", start_date="1900-01-01",
                           end_date="2199-12-31", unit="m2", page_size=100, page=page)
    assert body["periods"][hour % 100]["period_start"] == T0.isoformat().replace("+00:00", "Z")
    assert body["periods"][hour % 100]["area_added"] == pytest.approx(geodesic_area_m2(sq(0, 0)))
    _, months, headers = await get(client, "/usage/by-period", key, period_type="month",
                                   product="OPERATIONS_FILE", start_date="2026-02-15",
                                   end_date="2026-05-02", unit="m2", page_size=2, page=2)
    assert headers["X-Total-Count"] == "4"
    assert [m["period_start"][:10] for m in months["periods"]] == ["2026-04-01", "2026-05-01"]
    assert months["periods"][-1]["total_area"] == pytest.approx(
        world.meter.total_m2(FILE, 0, OWNER_SCOPE))
    _, weeks, headers = await get(client, "/usage/by-period", key, period_type="week",
                                  product="OPERATIONS_FILE", start_date="1900-01-01",
                                  end_date="2199-12-31", page_size=3, page=2)
    last_monday = date(2199, 12, 31) - timedelta(days=date(2199, 12, 31).weekday())
    assert int(headers["X-Total-Count"]) == (last_monday - date(1900, 1, 1)).days // 7 + 1
    assert [w["period_start"][:10] for w in weeks["periods"]] == [
        "1900-01-22", "1900-01-29", "1900-02-05"]  # 1 January 1900 was a Monday
    _, quarters, headers = await get(client, "/usage/by-period", key, period_type="quarter",
                                     product="OPERATIONS_FILE", start_date="2026-02-15",
                                     end_date="2027-01-02", page_size=2, page=2)
    assert headers["X-Total-Count"] == "5"
    assert [q["period_start"][:10] for q in quarters["periods"]] == ["2026-07-01", "2026-10-01"]
    _, days_, headers = await get(client, f"/billing/contracts/{FILE}/consumption/api-owner",
                                  key, startTime="1900-01-01", endTime="2199-12-31", size=100,
                                  page=(T0.date() - date(1900, 1, 1)).days // 100 + 1)
    assert int(headers["X-Total-Count"]) == days
    assert T0.date().isoformat() in {d["date"] for d in days_}


async def test_a_range_ending_before_it_starts_is_empty(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    status, body, headers = await get(
        client, f"/billing/contracts/{FILE}/consumption/api-owner", key,
        startTime="2026-03-05", endTime="2026-03-01")
    assert (status, body, headers["X-Total-Count"]) == (200, [], "0")
    status, body, headers = await get(client, "/usage/by-period", key, start_date="2026-03-05",
                                      end_date="2026-03-01", product="OPERATIONS_FILE")
    assert (status, body["periods"], headers["X-Total-Count"]) == (200, [], "0")
    status, body, _ = await get(client, "/usage/summary", key, start_date="2026-03-05",
                                end_date="2026-03-01", include_projections="true")
    assert status == 200 and all(p["area_added"] == 0 for p in body["products"])
    status, body, headers = await get(client, "/usage/breakdown", key, start_date="2026-03-05",
                                      end_date="2026-03-01")
    assert (status, body["users"], body["events"], headers["X-Total-Count"]) == (200, [], 0, "0")
    status, body, headers = await get(client, "/usage/details", key,
                                      start_date="2026-04-01T00:00:00Z",
                                      end_date="2026-03-31T23:59:59Z")
    assert (status, body["records"], headers["X-Total-Count"]) == (200, [], "0")


@pytest.mark.parametrize("geometry", [
    {"type": "Point", "coordinates": [1, 1]},
    {"type": "Polygon", "coordinates": [[[200, 1], [201, 1], [201, 2], [200, 1]]]},
    {"type": "Polygon", "coordinates": [[[1, 1], [2, 1], [3, 1], [1, 1]]]},
    {"type": "Polygon", "coordinates": "nope"},
    {},
])
async def test_bad_geojson_is_400_naming_geometry(
    client: Client, world: Feed, geometry: dict[str, Any]
) -> None:
    resp = await client.post("/usage/check", headers=bearer(await world.key_for(OWNER)), json={
        "geometry": geometry, "product": "OPERATIONS_FILE", "leaf_user_id": "u1"})
    body = await resp.json()
    assert resp.status == 400 and body["parameter"] == "geometry", body


@pytest.mark.parametrize(("corners", "said"), [
    ((0, 0, 1.5, 1.5), "km²"),  # ~27,700 km², over the tests' 20,000
    ((10, 85, 20, 85.8), "square degrees"),  # ~7,900 km² but 8 square degrees of lon/lat
])
async def test_a_check_of_a_shape_no_event_may_carry_is_400(
    client: Client, world: Feed, corners: tuple[float, float, float, float], said: str
) -> None:
    """Ingest dead-letters both shapes. A check of the second held the worker's loop for
    seconds (of a 20° x 1° one: minutes), and every request and the metering agent with it."""
    check = {"geometry": mapping(shapely_box(*corners)), "product": "OPERATIONS_FILE",
             "leaf_user_id": "u1"}
    resp = await client.post("/usage/check", headers=bearer(await world.key_for(OWNER)),
                             json=check)
    body = await resp.json()
    assert resp.status == 400 and body["parameter"] == "geometry" and said in body["message"], body


async def test_bad_bodies_and_unknown_paths(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    resp = await client.post("/usage/check", headers=bearer(key), data=b"{not json")
    assert resp.status == 400 and (await resp.json())["parameter"] == "body"
    resp = await client.post("/usage/check", headers=bearer(key), json={"geometry": SQUARE})
    assert resp.status == 400 and (await resp.json())["parameter"] == "product"
    for path in ("/table/state/", "/router/", "/nope", "/"):
        resp = await client.get(path, headers=bearer(ADMIN))
        assert resp.status == 404 and resp.content_type == "application/json", path
    resp = await client.delete("/usage/plan", headers=bearer(key))
    assert resp.status == 405 and resp.content_type == "application/json"
    assert resp.headers["Allow"] == "GET"
    resp = await client.put("/webhooks", headers=bearer(key))  # a route per method
    assert resp.status == 405 and resp.headers["Allow"] == "GET, POST"


async def test_openapi_covers_every_endpoint(client: Client) -> None:
    resp = await client.get("/openapi.json")
    doc = await resp.json()
    assert resp.status == 200 and doc["openapi"].startswith("3.1")
    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    expected = {
        ("GET", "/billing/contracts"), ("GET", "/billing/contracts/{contractId}"),
        ("GET", "/billing/contracts/{contractId}/consumption"),
        ("GET", "/billing/contracts/{contractId}/consumption/api-owner"),
        ("GET", "/billing/contracts/{contractId}/consumption/leaf-user/{leafUserId}"),
        ("GET", "/billing/contracts/{contractId}/consumption/leaf-users"),
        ("GET", "/usage/explain"), ("POST", "/usage/explain"), ("GET", "/usage/ground"),
        ("PUT", "/billing/contracts/{contractId}/quota"), ("GET", "/usage/summary"),
        ("GET", "/usage/breakdown"),
        ("GET", "/usage/details"), ("GET", "/usage/by-period"), ("GET", "/usage/top-users"),
        ("POST", "/usage/check"), ("GET", "/usage/plan"), ("GET", "/metrics"),
        ("GET", "/health"), ("GET", "/ready"), ("POST", "/admin/api-keys"),
        ("POST", "/webhooks"), ("GET", "/webhooks"), ("GET", "/webhooks/deliveries"),
        ("DELETE", "/webhooks/{webhookId}"),
        ("GET", "/billing/contracts/{contractId}/report"),
        ("GET", "/billing/contracts/{contractId}/report.csv"),
        ("GET", "/billing/contracts/{contractId}/consumption/api-owner.csv"),
        ("GET", "/billing/contracts/{contractId}/consumption/leaf-user/{leafUserId}/daily.csv"),
        ("GET", "/usage/details.csv"),
        ("GET", "/api-keys"), ("DELETE", "/api-keys/{keyId}"),
    }
    assert operations == expected
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "422" not in op["responses"], (method, path)  # invalid input is a 400


async def test_docs_work_offline(client: Client) -> None:
    """Swagger UI's page and assets come from this server, none from elsewhere."""
    resp = await client.get("/docs")
    page = await resp.text()
    assert resp.status == 200 and "/openapi.json" in page
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert assets and all(a.startswith("/docs/static/") for a in assets), assets
    for asset in assets:
        got = await client.get(asset)
        assert got.status == 200 and len(await got.read()) > 0, asset


# ---- restart ------------------------------------------------------------------------


async def test_records_survive_a_rebuild(world: Feed) -> None:
    rebuilt = Meter.from_state(world.table().items(), grace=timedelta(0))
    for owner in (OWNER, OTHER):
        live = sorted(world.meter_of(owner).records.select(owner), key=lambda r: r.event_id)
        again = sorted(rebuilt.records.select(owner), key=lambda r: r.event_id)
        assert [(r.event_id, r.type, r.counted, r.reason, r.leaf_user_id, r.timestamp)
                for r in live] == [(r.event_id, r.type, r.counted, r.reason, r.leaf_user_id,
                                    r.timestamp) for r in again]
        for a, b in zip(live, again, strict=True):
            assert a.by_product == b.by_product and a.products == b.products
            assert a.area_added_owner_m2 == b.area_added_owner_m2

