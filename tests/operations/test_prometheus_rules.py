"""The alert rules and scrape config pass promtool's checks and the rules' unit tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.operations.monitoring import (
    ALERT_TESTS,
    ALERTS,
    SCRAPE_CONFIG,
    as_promql,
    promtool,
    rules,
    targets,
)


def assert_promtool_ok(*arguments: str | Path) -> None:
    done = promtool(*arguments)
    command = " ".join(map(str, ["promtool", *arguments]))
    assert done.returncode == 0, f"{command}:\n{done.stdout}{done.stderr}"


def test_rules_pass_promtool_check() -> None:
    assert_promtool_ok("check", "rules", ALERTS)


def test_scrape_config_passes_promtool_check() -> None:
    assert_promtool_ok("check", "config", SCRAPE_CONFIG)


def test_every_alert_fires_and_stays_silent_in_its_unit_tests() -> None:
    assert_promtool_ok("test", "rules", ALERT_TESTS)


def test_every_alert_has_a_unit_test_and_says_what_to_do() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    for rule in rules():
        assert rule["alert"] in tested, f"{rule['alert']} is never seen firing"
        assert "for" in rule and rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """Recording rules made of the dashboard's queries: promtool parses each one."""
    recorded = [
        {"record": f"panel_{panel['id']}_{target['refId']}", "expr": as_promql(target["expr"])}
        for panel, target in targets()
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    assert_promtool_ok("check", "rules", path)
