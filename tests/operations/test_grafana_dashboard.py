"""The Grafana dashboard loads, queries through its data-source variable and lays out."""

from __future__ import annotations

from itertools import combinations

from tests.operations.monitoring import dashboard, referenced_metrics, targets

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def test_the_data_source_is_a_variable() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["instance"]["datasource"] == DATASOURCE


def test_every_panel_queries_prometheus_through_the_variable() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    for panel, target in targets():
        assert target["datasource"] == DATASOURCE, panel["title"]
        assert referenced_metrics(target["expr"]), f"{panel['title']}: {target['expr']}"


def test_panels_fit_the_grid_without_overlapping() -> None:
    boxes = [(p["title"], p["gridPos"]) for p in dashboard()["panels"]]
    for title, box in boxes:
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24 and box["h"] > 0, title
    for (a, p), (b, q) in combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{a!r} overlaps {b!r}"
