"""CSV exports through the app's own views, on state the real agents wrote: each export
holds the JSON endpoint's rows (all pages of them), errors stay JSON, ids stay intact."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientSession

from aggregates.contracts import contract_id_for, user_scope
from aggregates.products import Product
from schemas.exports import original_text
from streams.api.exports import prefers_csv
from tests.api.conftest import ADMIN, OTHER, OWNER, T0, Feed, sq
from tests.api.test_views import FILE, OTHER_FILE, bearer, get

Client = ClientSession
CSV = {"Accept": "text/csv"}
REPORT = f"/billing/contracts/{FILE}/report"
# ids as upstream may send them: control characters are refused at ingest (schemas.events)
HOSTILE_USER = '=SUM(1,2)+"a, b"'
HOSTILE_EVENT = "-1+1,'\"@x\""


async def get_csv(client: Client, path: str, token: str, headers: dict[str, str] | None = None,
                  **params: Any) -> tuple[list[dict[str, str]], Any]:
    resp = await client.get(path, headers={**bearer(token), **(headers or {})}, params=params)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8; header=present"
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
    text = (await resp.read()).decode("utf-8")
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    if "X-Total-Count" in resp.headers:
        assert int(resp.headers["X-Total-Count"]) == len(rows)
    return rows, resp.headers


async def json_pages(client: Client, path: str, token: str, size_name: str,
                     items: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every page of a JSON list endpoint, two items a page."""
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        resp = await client.get(path, headers=bearer(token),
                                params={**params, "page": page, size_name: 2})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        found = body if items is None else body[items]
        if not found:
            return out
        out += found
        page += 1


async def test_owner_and_user_days_are_the_json_rows_every_page(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    base = f"/billing/contracts/{FILE}/consumption"
    span = {"startTime": (T0 - timedelta(days=1)).date().isoformat(),
            "endTime": (T0 + timedelta(days=5)).date().isoformat(), "unit": "hectares"}
    for json_path, csv_path, user in ((f"{base}/api-owner", f"{base}/api-owner.csv", ""),
                                      (f"{base}/leaf-user/u2", f"{base}/leaf-user/u2/daily.csv",
                                       "u2")):
        want = await json_pages(client, json_path, key, "size", **span)
        assert len(want) == 7
        by_accept, _ = await get_csv(client, json_path, key, CSV, **span)
        by_path, _ = await get_csv(client, csv_path, key, **span)
        assert by_accept == by_path
        for row, day in zip(by_path, want, strict=True):
            assert row["date"] == day["date"]
            assert float(row["areaAdded_hectares"]) == day["areaAdded"]
            assert float(row["totalArea_hectares"]) == day["totalArea"]
            assert row["final"] == str(day["final"]).lower()
            assert (row["contractId"], row["product"]) == (FILE, "OPERATIONS_FILE")
            assert (row["scope"], row["leafUserId"]) == (
                ("leaf-user", user) if user else ("api-owner", ""))
        # the day before the contract was never sent; a day with area was, at least once
        assert by_path[0]["revision"] == ""
        assert all(int(r["revision"]) >= 1 for r in by_path if float(r["areaAdded_hectares"]))


async def test_usage_records_are_every_page_of_details_with_its_filters(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    for filters in ({}, {"leafUserId": "u1"}, {"type": "providerFileProcessingFinished"},
                    {"start_date": T0.date().isoformat(),
                     "end_date": (T0 + timedelta(days=1)).date().isoformat()}):
        want = await json_pages(client, "/usage/details", key, "page_size", "records",
                                unit="m2", **filters)
        assert want, filters
        rows, _ = await get_csv(client, "/usage/details.csv", key, unit="m2", **filters)
        by_accept, _ = await get_csv(client, "/usage/details", key, CSV, unit="m2", **filters)
        assert rows == by_accept
        assert [r["event_id"] for r in rows] == [r["event_id"] for r in want]
        for row, record in zip(rows, want, strict=True):
            assert row["leaf_user_id"] == record["leaf_user_id"]
            assert row["type"] == record["type"] and row["status"] == record["status"]
            assert row["counted"] == str(record["counted"]).lower()
            assert row["reason"] == (record["reason"] or "")
            assert row["timestamp"] == record["timestamp"]
            assert row["products"] == ";".join(record["products"])
            assert float(row["area_added_user_m2"]) == record["area_added_user"]
            assert float(row["area_added_owner_m2"]) == record["area_added_owner"]
            for product in Product:
                pair = record["by_product"].get(product.value)
                cell = row[f"{product.value}_user_m2"]
                assert (cell == "") if pair is None else (float(cell) == pair["user"])


async def test_term_report_csv_is_the_json_report_and_agrees_with_the_api(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    resp = await client.get(REPORT, headers=bearer(key), params={"unit": "m2"})
    assert resp.status == 200
    report = await resp.json()
    rows, _ = await get_csv(client, REPORT + ".csv", key, unit="m2")
    assert rows == (await get_csv(client, REPORT, key, CSV, unit="m2"))[0]
    lines = report["lines"]
    assert [(r["scope"], r["leafUserId"]) for r in rows] == [
        (line["scope"], line["leafUserId"] or "") for line in lines]
    for row, line in zip(rows, lines, strict=True):
        assert float(row["uniqueArea_m2"]) == line["uniqueArea"]
        assert float(row["shareOfOwnerPercent"]) == line["shareOfOwnerPercent"]
        assert int(row["events"]) == line["events"]
        assert row["firstActivity"] == (line["firstActivity"] or "")
        assert row["lastActivity"] == (line["lastActivity"] or "")
        assert row["termStart"] == report["term"]["startDate"]
    owner, *users = lines
    contract = (await (await client.get(f"/billing/contracts/{FILE}", headers=bearer(key),
                                        params={"unit": "m2"})).json())
    assert owner["uniqueArea"] == pytest.approx(contract["footprint"], rel=1e-12)
    assert sum(u["uniqueArea"] for u in users) == pytest.approx(contract["used"], rel=1e-12)
    # three file events of OPERATIONS_FILE: u1's on day 0, u2's on days 1 and 2
    assert [(u["leafUserId"], u["events"]) for u in users] == [("u2", 2), ("u1", 1)]
    assert owner["events"] == 3
    assert owner["firstActivity"] == "2026-03-01T12:00:00Z"
    assert owner["lastActivity"] == "2026-03-03T12:00:00Z"
    one, _ = await get_csv(client, REPORT + ".csv", key, unit="m2", leafUserId="u1")
    assert one == [rows[2]]


async def test_hostile_ids_reach_the_csv_intact_and_defused(client: Client, world: Feed) -> None:
    await world.event(OWNER, HOSTILE_USER, sq(0.004, 0), id=HOSTILE_EVENT)
    key = await world.key_for(OWNER)
    [row], _ = await get_csv(client, "/usage/details.csv", key, leafUserId=HOSTILE_USER)
    assert row["event_id"] == "'" + HOSTILE_EVENT and row["leaf_user_id"] == "'" + HOSTILE_USER
    assert original_text(row["event_id"]) == HOSTILE_EVENT
    report, _ = await get_csv(client, REPORT + ".csv", key)
    assert HOSTILE_USER in [original_text(r["leafUserId"]) for r in report]
    path = f"/billing/contracts/{FILE}/consumption/leaf-user/{HOSTILE_USER}/daily.csv"
    days, _ = await get_csv(client, path, key)
    assert days and {original_text(r["leafUserId"]) for r in days} == {HOSTILE_USER}
    texts = [row["event_id"], row["leaf_user_id"], *(r["leafUserId"] for r in (*report, *days))]
    assert all(not cell or cell[0] not in "=+-@" for cell in texts)


async def test_a_leaf_user_id_holding_slashes_has_its_breakdown_in_json_and_csv(
    client: Client, world: Feed
) -> None:
    """The server decodes %2F before matching routes, so such an id is matched as a path."""
    await world.event(OWNER, "farm/7/north", sq(0.004, 0), id="slashed")
    await world.event(OWNER, "farm", sq(0.008, 0), id="prefix")
    key = await world.key_for(OWNER)
    base = f"/billing/contracts/{FILE}/consumption/leaf-user"
    for user in ("farm%2F7%2Fnorth", "farm/7/north"):
        status, rows, _ = await get(client, f"{base}/{user}", key, unit="m2")
        assert status == 200 and rows[-1]["totalArea"] == pytest.approx(
            world.meter.total_m2(FILE, 0, user_scope("farm/7/north")))
        days, _ = await get_csv(client, f"{base}/{user}/daily.csv", key)
        assert days and {r["leafUserId"] for r in days} == {"farm/7/north"}
    _, farm_rows, _ = await get(client, f"{base}/farm", key, unit="m2")
    assert farm_rows[-1]["totalArea"] == pytest.approx(
        world.meter.total_m2(FILE, 0, user_scope("farm")))
    resp = await client.delete(f"{base}/farm%2F7", headers=bearer(key))
    assert resp.status == 405 and resp.headers["Allow"] == "GET"


@pytest.mark.parametrize("path", [
    f"/billing/contracts/{FILE}/consumption/api-owner.csv",
    f"/billing/contracts/{FILE}/consumption/leaf-user/u1/daily.csv",
    f"{REPORT}.csv", "/usage/details.csv",
])
async def test_no_key_is_401_json_on_every_export(client: Client, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        resp = await client.get(path, headers={**headers, **CSV})
        assert resp.status == 401 and resp.content_type == "application/json"
        assert (await resp.json())["error"]
        json_path = path.removesuffix(".csv").removesuffix("/daily")
        resp = await client.get(json_path, headers={**headers, **CSV})
        assert resp.status == 401 and resp.content_type == "application/json"


async def test_another_owners_exports_are_404_json(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    for path in (f"/billing/contracts/{OTHER_FILE}/consumption/api-owner.csv",
                 f"/billing/contracts/{OTHER_FILE}/report", f"{REPORT}.csv",
                 f"/billing/contracts/{FILE}/consumption/leaf-user/x1/daily.csv"):
        token = key if path != f"{REPORT}.csv" else await world.key_for(OTHER)
        resp = await client.get(path, headers={**bearer(token), **CSV})
        assert resp.status == 404 and resp.content_type == "application/json", path
    resp = await client.get(f"{REPORT}.csv", headers=bearer(key), params={"leafUserId": "x1"})
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/usage/details", {"page_size": "0"}, "page_size"),
    ("/usage/details.csv", {"unit": "furlongs"}, "unit"),
    (f"{REPORT}.csv", {"timestamp": "yesterday"}, "timestamp"),
    (f"{REPORT}.csv", {"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
])
async def test_a_bad_filter_is_400_json_naming_it(
    client: Client, world: Feed, path: str, params: dict[str, str], parameter: str
) -> None:
    key = await world.key_for(OWNER)
    resp = await client.get(path, headers={**bearer(key), **CSV}, params=params)
    assert resp.status == 400 and resp.content_type == "application/json"
    assert (await resp.json())["parameter"] == parameter


async def test_json_stays_the_default_and_admin_exports_by_contract(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    path = f"/billing/contracts/{FILE}/consumption/api-owner"
    for accept in ("*/*", "application/json, text/csv", "text/csv;q=0.5, application/json"):
        resp = await client.get(path, headers={**bearer(key), "Accept": accept})
        assert resp.status == 200 and resp.content_type == "application/json", accept
    admin = await client.get(f"{REPORT}.csv", headers=bearer(ADMIN))
    assert admin.status == 200 and admin.content_type == "text/csv"
    unified = contract_id_for(OWNER, Product.UNIFIED_AREA)
    rows, _ = await get_csv(client, f"/billing/contracts/{unified}/report.csv", key)
    assert rows[0]["product"] == "UNIFIED_AREA"


@pytest.mark.parametrize(("accept", "csv_wanted"), [
    ("text/csv", True), ("TEXT/CSV; charset=utf-8", True), ("text/*", True),
    ("text/csv, application/json", True), ("application/json;q=0.1, text/csv", True),
    ("*/*;q=0.1, text/csv", True), ("", False), ("*/*", False), ("application/json", False),
    ("application/json, text/csv", False), ("text/csv;q=0.5, application/json", False),
    ("text/csv;q=0", False), ("text/csv;q=nonsense", False),
])
def test_accept_negotiation(accept: str, csv_wanted: bool) -> None:
    assert prefers_csv(accept) is csv_wanted
