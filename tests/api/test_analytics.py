"""Issue 10's analytics parity through the app: /usage/breakdown, week/quarter/year
periods, date-time end dates and projections, against the real agents' state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregates import geodesic_area_m2
from aggregates.products import Product
from tests.api.conftest import ADMIN, OTHER, OWNER, Feed, serve, sq
from tests.api.test_views import FILE, Client, get

RANGE = {"start_date": "2026-03-01", "end_date": "2026-03-10", "unit": "m2"}


async def test_breakdown_agrees_with_summary_details_and_itself(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    status, body, headers = await get(client, "/usage/breakdown", key, recent=2, **RANGE)
    assert status == 200, body
    _, summary, _ = await get(client, "/usage/summary", key, **RANGE)
    assert body["products"] == summary["products"]
    assert headers["X-Total-Count"] == "2" and body["total"] == 2
    users = {u["leaf_user_id"]: u for u in body["users"]}
    for p in body["products"]:
        by_users = sum(u["area_added"].get(p["product"], 0.0) for u in body["users"])
        assert by_users == pytest.approx(p["leaf_users_area_added"])
    one = geodesic_area_m2(sq(0, 0))
    assert users["u2"]["area_added"]["OPERATIONS_FILE"] == pytest.approx(2 * one, rel=1e-6)
    assert users["u1"]["area_added"]["FIELDS_BOUNDARY"] == pytest.approx(one, rel=1e-6)
    assert (users["u1"]["events"], users["u2"]["events"]) == (3, 2)
    # two squares each; u1's second lies further from the equator, so it is smaller
    assert [u["leaf_user_id"] for u in body["users"]] == ["u2", "u1"]
    _, details, _ = await get(client, "/usage/details", key, page_size=2, **RANGE)
    assert body["events"] == details["total"] == 5
    assert body["recent"] == details["records"]
    assert {t["type"]: t["events"] for t in body["event_types"]} == {
        "providerFileProcessingFinished": 3, "fieldBoundaryCreated": 1,
        "satelliteImageProcessingFinished": 1,
    }
    _, page2, _ = await get(client, "/usage/breakdown", key, page=2, page_size=1, **RANGE)
    assert page2["users"] == [users["u1"]]
    _, later, _ = await get(client, "/usage/breakdown", key, start_date="2026-03-04",
                            end_date="2026-03-10", unit="m2")
    assert [(u["leaf_user_id"], u["events"]) for u in later["users"]] == [("u1", 2)]


async def test_breakdown_keeps_the_owner_rules(client: Client, world: Feed) -> None:
    status, body, _ = await get(client, "/usage/breakdown", ADMIN, apiOwner=OTHER, **RANGE)
    assert status == 200 and [u["leaf_user_id"] for u in body["users"]] == ["x1"]
    other = await world.key_for(OTHER)
    _, mine, _ = await get(client, "/usage/breakdown", other, **RANGE)
    assert mine == body
    status, _, _ = await get(client, "/usage/breakdown", other, apiOwner=OWNER, **RANGE)
    assert status == 404
    status, body, _ = await get(client, "/usage/breakdown", ADMIN, **RANGE)
    assert status == 400 and body["parameter"] == "apiOwner"
    status, _, _ = await get(client, "/usage/breakdown", "wrong", **RANGE)
    assert status == 401


async def test_weeks_quarters_and_years(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    for period, start in [("week", "2026-03-02"), ("month", "2026-03-01"),
                          ("quarter", "2026-01-01"), ("year", "2026-01-01"),
                          ("day", "2026-03-04")]:
        _, body, _ = await get(client, "/usage/summary", key, period=period,
                               end_date="2026-03-04")  # a Wednesday
        assert (body["start_date"], body["end_date"], body["period"]) == (
            start, "2026-03-04", period)
    product = {"product": "OPERATIONS_FILE", "unit": "m2", "start_date": "2026-03-01",
               "end_date": "2026-03-10"}
    _, days, _ = await get(client, "/usage/by-period", key, period_type="day", **product)
    added = sum(p["area_added"] for p in days["periods"])
    for period, starts in [("week", ["2026-02-23", "2026-03-02", "2026-03-09"]),
                           ("quarter", ["2026-01-01"]), ("year", ["2026-01-01"])]:
        _, body, _ = await get(client, "/usage/by-period", key, period_type=period, **product)
        assert [p["period_start"][:10] for p in body["periods"]] == starts
        assert sum(p["area_added"] for p in body["periods"]) == pytest.approx(added)
        assert body["periods"][-1]["total_area"] == days["periods"][-1]["total_area"]


async def test_a_datetime_end_date_includes_the_utc_day_it_falls_in(feed: Feed) -> None:
    await feed.event(OWNER, "u1", sq(0, 0), ts=datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC))
    await feed.event(OWNER, "u1", sq(0.002, 0), ts=datetime(2026, 4, 1, tzinfo=UTC))
    key = await feed.key_for(OWNER)
    async with serve(feed) as client:
        await _boundary(client, key)


async def _boundary(client: Client, key: str) -> None:
    one = geodesic_area_m2(sq(0, 0))
    for end, day, events in [
        ("2026-03-31T23:59:59Z", "2026-03-31", 1), ("2026-03-31T00:00:00", "2026-03-31", 1),
        ("2026-03-31", "2026-03-31", 1), ("2026-03-30T23:59:59.999Z", "2026-03-30", 0),
        ("2026-03-31T23:00:00-05:00", "2026-04-01", 2), ("2026-04-01T00:00:00Z", "2026-04-01", 2),
    ]:
        q = {"start_date": "2026-03-01T08:00:00Z", "end_date": end, "unit": "m2"}
        status, details, _ = await get(client, "/usage/details", key, **q)
        assert status == 200 and details["total"] == events, end
        _, summary, _ = await get(client, "/usage/summary", key, **q)
        assert summary["start_date"] == "2026-03-01"
        assert summary["end_date"] == day
        files = [p for p in summary["products"] if p["product"] == "OPERATIONS_FILE"]
        assert sum(p["area_added"] for p in files) == pytest.approx(events * one, rel=1e-6)
        _, series, _ = await get(client, "/usage/by-period", key, product="OPERATIONS_FILE",
                                 **q)
        assert series["end_date"] == summary["end_date"]


async def test_projections_are_the_plans(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    _, plain, _ = await get(client, "/usage/summary", key, unit="m2")
    assert all(p["projection"] is None for p in plain["products"])
    _, body, _ = await get(client, "/usage/summary", key, unit="m2", include_projections="true")
    _, plan, _ = await get(client, "/usage/plan", key, unit="m2", product="OPERATIONS_FILE")
    files = next(p for p in body["products"] if p["product"] == "OPERATIONS_FILE")
    projection = files["projection"]
    assert projection["period_end"] == "2027-02-28"
    for field in ("projected_term_total", "daily_average", "will_exceed_limit",
                  "projected_exceed_date", "confidence"):
        assert projection[field] == plan[field], field
    assert projection["days_remaining"] == plan["days_remaining"]
    # over the term, what the range will have added is the term's billable total
    assert projection["projected_area_added"] == pytest.approx(plan["projected_term_total"])
    assert projection["projected_area_added_high"] == pytest.approx(
        plan["projected_term_total_high"])
    _, month, _ = await get(client, "/usage/breakdown", key, unit="m2", period="month",
                            include_projections="1")
    files = next(p for p in month["products"] if p["product"] == "OPERATIONS_FILE")
    rate, left = files["projection"]["daily_average"], files["projection"]["days_remaining"]
    assert (files["projection"]["period_end"], left) == ("2026-03-31", 21)
    assert files["projection"]["projected_area_added"] == pytest.approx(
        files["leaf_users_area_added"] + rate * left)
    assert {p["product"] for p in month["products"]} >= {Product.UNIFIED_AREA.value}


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/usage/breakdown", {"recent": "101"}, "recent"),
    ("/usage/breakdown", {"page": "0"}, "page"),
    ("/usage/breakdown", {"period": "fortnight"}, "period"),
    ("/usage/breakdown", {"end_date": "2026-03-31T25:00:00"}, "end_date"),
    ("/usage/summary", {"include_projections": "maybe"}, "include_projections"),
    ("/usage/summary", {"end_date": "31/03/2026"}, "end_date"),
    ("/usage/by-period", {"period_type": "week", "end_date": "9999-12-31T00:00:00"},
     "end_date"),
    # no UTC day: the instant lies before 0001-01-01 or after 9999-12-31 in UTC
    ("/usage/summary", {"end_date": "0001-01-01T00:00:00+01:00"}, "end_date"),
    ("/usage/details", {"start_date": "9999-12-31T23:00:00-05:00"}, "start_date"),
    (f"/billing/contracts/{FILE}/consumption/api-owner",
     {"startTime": "0001-01-01T00:00:00+01:00"}, "startTime"),
])
async def test_bad_analytics_parameters_are_400_naming_them(
    client: Client, world: Feed, path: str, params: dict[str, str], parameter: str
) -> None:
    status, body, _ = await get(client, path, await world.key_for(OWNER), **params)
    assert status == 400, body
    assert body["error"] == "invalid_parameter" and body["parameter"] == parameter, body
