"""The page at /ui in a real headless browser (Debian's chromium, driven by playwright's
driver from PyPI, never a browser of playwright's own), served by a real worker metering
known fields from a real broker. It logs in with an owner key, then checks that the
contracts, the chart's billable total, the users' overlap and the map's polygons are the
API's figures and shapes, and that a click on the map explains the point.

A screenshot is kept in tests/artifacts/ (git-ignored); its path is printed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, sync_playwright
from shapely.geometry import box, mapping

from aggregates import geodesic_area_m2
from tests.support.kafka import ROOT, Broker, Worker, produce_events, wait_for_group, wait_until

pytestmark = pytest.mark.integration

ADMIN = "ui-admin-key"
APP_ID = "acreage-ui-it"
OWNER = "grower@example.com"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
HECTARE = 10_000.0
QUOTA_HA = 400.0
NOW = datetime.now(UTC)
F1 = box(5.0, 52.0, 5.01, 52.01)  # sent by u1 (A), again by u2 (B) and by u1 (C)
F2 = box(5.02, 52.0, 5.03, 52.01)  # u2's alone (D)
EVENTS = [("A", "u1", F1, 50), ("B", "u2", F1, 26), ("D", "u2", F2, 25), ("C", "u1", F1, 1)]


def event(event_id: str, user: str, geom: Any, hours_ago: int) -> dict[str, Any]:
    return {"id": event_id, "type": "providerFileProcessingFinished", "apiOwner": OWNER,
            "timestamp": (NOW - timedelta(hours=hours_ago)).isoformat(), "leafUserId": user,
            "fileId": f"file-{event_id}", "geometry": mapping(geom)}


class Site:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def get(self, path: str, **params: Any) -> Any:
        resp = requests.get(self.url + path, params={"unit": "hectares", **params}, timeout=30,
                            headers={"Authorization": f"Bearer {self.key}"})
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("ui")
    broker = Broker(root / "kafka").start()
    env = {"ACREAGE_ADMIN_KEY": ADMIN, "ACREAGE_RATE_LIMIT_PER_MIN": "100000"}
    worker = None
    try:
        worker = Worker(broker, APP_ID, root / "w0", extra_env=env).start()
        wait_for_group(broker, APP_ID, members=1)
        produce_events(broker.bootstrap, [event(*e) for e in EVENTS])
        url = f"http://127.0.0.1:{worker.web_port}"
        site = Site(url, wait_until(lambda: create_key(url), 60, interval=0.5))

        def metered() -> bool:
            try:
                return site.get("/usage/details")["total"] == len(EVENTS)
            except AssertionError:
                return False

        assert wait_until(metered, 120, interval=0.5)
        set_quota(site, "OPERATIONS_FILE", QUOTA_HA)
        yield site
    finally:
        if worker is not None and worker.proc is not None:
            worker.stop()
        broker.stop()


def set_quota(site: Site, product: str, hectares: float) -> None:
    """As an admin would, then until the metering agent has applied it."""
    [contract] = site.get("/billing/contracts", product=product)
    path = f"/billing/contracts/{contract['contractId']}"
    resp = requests.put(site.url + path + "/quota", params={"unit": "hectares"}, timeout=30,
                        json={"quota": hectares, "unit": "hectares"},
                        headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 202, resp.text
    assert wait_until(lambda: site.get(path)["quota"] == hectares, 30, interval=0.3)


def create_key(url: str) -> str | None:
    """None while the owner's partition is still being assigned (503)."""
    resp = requests.post(url + "/admin/api-keys", json={"apiOwner": OWNER}, timeout=30,
                         headers={"Authorization": f"Bearer {ADMIN}"})
    return str(resp.json()["apiKey"]) if resp.status_code == 201 else None


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1100})
        try:
            yield context.new_page()
        finally:
            context.close()


def value(page: Page, selector: str) -> float:
    return float(page.get_attribute(selector, "data-value") or "nan")


def test_the_page_shows_the_apis_figures_and_explains_a_clicked_point(
    site: Site, page: Page
) -> None:
    contracts = {c["product"]: c for c in site.get("/billing/contracts")}
    file = contracts["OPERATIONS_FILE"]
    page.goto(site.url + "/ui")
    page.fill("#key", site.key)
    page.click("#login button")
    page.wait_for_selector("body[data-ready]:not([data-ready=''])")
    assert page.locator("#contracts tbody tr").count() == len(contracts)
    page.click("#contracts tbody tr[data-product=OPERATIONS_FILE]")
    page.wait_for_selector("body[data-ready=OPERATIONS_FILE]")

    one = geodesic_area_m2(F1) / HECTARE
    row = "#contracts tbody tr[data-product=OPERATIONS_FILE] td:nth-child(3)"
    assert value(page, row) == file["used"] == pytest.approx(3 * one, rel=1e-6)
    assert value(page, "#billable-total") == pytest.approx(file["used"], rel=1e-9)
    assert value(page, "#quota") == file["quota"] == QUOTA_HA
    assert value(page, "#footprint-total") == pytest.approx(file["footprint"], rel=1e-9)
    assert page.locator("#chart canvas").count() >= 1
    today = site.get(f"/billing/contracts/{file['contractId']}/consumption",
                     timestamp=page.input_value("#end"))
    assert value(page, "#overlap") == pytest.approx(today["overlapArea"], rel=1e-9)
    assert value(page, "#overlap") == pytest.approx(one, rel=1e-6)
    assert page.locator("#users tbody tr").count() == 2

    ground = site.get("/usage/ground", product="OPERATIONS_FILE", date=page.input_value("#end"),
                      start_date=page.input_value("#start"), end_date=page.input_value("#end"))
    assert len(ground["features"]) == 2
    assert value(page, "#ground-count") == 2
    assert page.locator("#map path.leaflet-interactive").count() == 2
    bounds = page.get_attribute("#map", "data-bounds")
    assert bounds is not None
    assert [round(b, 9) for b in json.loads(bounds)] == [5.0, 52.0, 5.03, 52.01]

    x, y = page.evaluate("""([lat, lng]) => {
        const point = window.acreage.map.latLngToContainerPoint([lat, lng]);
        const frame = document.getElementById("map").getBoundingClientRect();
        return [frame.left + point.x, frame.top + point.y];
    }""", [52.005, 5.005])
    page.mouse.click(x, y)
    page.wait_for_selector("#counted-by")
    assert page.text_content("#counted-by") == "A"
    assert page.text_content("#counted-user") == "u1"
    deduplicated = page.locator("#deduplicated li").evaluate_all(
        "items => items.map(i => i.dataset.event)")
    assert deduplicated == ["C", "B"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "ui-page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert Path(shot).stat().st_size > 10_000
