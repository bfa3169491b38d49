"""The deploy/ files Prometheus and Grafana load, read the way the tests need them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "acreage.json"

METRIC_NAME = re.compile(r"\bacreage_[a-z0-9_]+")
# Grafana's variables, replaced by what Grafana would put there, so Prometheus can parse.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "6h", "$instance": ".*"}


def promtool(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs promtool; fails (never skips) when it is missing, since `make test` installs it."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: run `make promtool`")
    return subprocess.run(
        [binary, *map(str, arguments)], capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def targets() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of the dashboard."""
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def referenced_metrics(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


def exported_metrics() -> set[str]:
    """Every series name a worker's /metrics can carry, read from the exposition of the
    registry streams.metrics builds. Labelled metrics no one has touched yet show only
    their `# TYPE` line; a histogram's series carry the suffixes of the text format."""
    names = set()
    for line in Metrics().exposition().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
