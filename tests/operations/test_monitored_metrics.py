"""The alerts and the dashboard name only metrics a worker exports: a renamed metric
fails here rather than leaving a silent alert or an empty panel."""

from __future__ import annotations

import json

from tests.operations.monitoring import (
    dashboard,
    exported_metrics,
    referenced_metrics,
    rules,
)

# What issue 10 asks the dashboard to show, metric by metric.
SHOWN = {
    "acreage_area_added_m2_total",
    "acreage_events_total",
    "acreage_consumer_lag",
    "acreage_dead_letters_total",
    "acreage_processing_seconds_bucket",
    "acreage_webhook_backlog",
}
# And the alerts to watch.
WATCHED = {
    "acreage_consumer_lag",
    "acreage_stall_heals_total",
    "acreage_dead_letters_total",
    "acreage_metering_errors_total",
    "acreage_webhook_failures_total",
}


def test_the_exposition_is_read_with_its_suffixes() -> None:
    exported = exported_metrics()
    assert {"acreage_events_total", "acreage_processing_seconds_bucket"} <= exported
    assert "acreage_events" not in exported


def test_alert_rules_name_only_exported_metrics() -> None:
    named = referenced_metrics(json.dumps(rules()))
    assert named >= WATCHED
    assert named <= exported_metrics(), named - exported_metrics()


def test_the_dashboard_names_only_exported_metrics() -> None:
    named = referenced_metrics(json.dumps(dashboard()))
    assert named >= SHOWN
    assert named <= exported_metrics(), named - exported_metrics()
