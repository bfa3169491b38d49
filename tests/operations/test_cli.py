"""The CLI fails in one line on stderr, never a traceback, and reads the worker's broker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka.protocol.group import MemberAssignment

from streams import cli, replay, status
from streams.lag import Group, Member, Offsets, caught_up, group_of
from tests.support.kafka import free_port

DOWN = f"127.0.0.1:{free_port()}"  # nothing listens there


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, expected: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("acreage: ") and expected in err, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    contents = {
        "bad.jsonl": '{"type": "fieldBoundaryCreated"}\n{not json\n',
        "array.jsonl": "[1, 2]\n",
        "list.geojson": "[]",
        "nogeom.geojson": '{"features": [{"type": "Feature"}]}',
        "binary.jsonl": b"\xff\xfe".decode("latin-1"),
        "ok.jsonl": '{"type": "fieldBoundaryCreated", "apiOwner": "o"}\n',
    }
    paths = {}
    for name, text in contents.items():
        paths[name] = tmp_path / name
        paths[name].write_text(text, encoding="latin-1")
    return paths


CASES = [
    (["keys", "create"], "required: --owner"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["status", "--timeout", "soon"], "invalid float value: 'soon'"),
    (["replay", "{tmp}/missing.jsonl"], "missing.jsonl: No such file or directory"),
    (["replay", "{tmp}/bad.jsonl"], "bad.jsonl line 2: not JSON"),
    (["replay", "{tmp}/array.jsonl"], "array.jsonl line 1: not a JSON object"),
    (["replay", "{tmp}/list.geojson"], "not a GeoJSON FeatureCollection"),
    (["replay", "{tmp}/nogeom.geojson"], "feature 0 has no geometry"),
    (["replay", "{tmp}/binary.jsonl"], "not UTF-8 text"),
    (["keys", "create", "--owner", ""], "--owner '': String should have at least 1"),
    (["keys", "create", "--owner", "x" * 321], "at most 320 characters"),
    (["keys", "create", "--owner", "o", "--broker", DOWN], f"broker {DOWN} did not answer"),
    (["keys", "list", "--owner", "o", "--broker", DOWN], f"broker {DOWN} did not answer"),
    (["keys", "revoke", "--owner", "o", "--key-id", "ab", "--broker", DOWN],
     f"broker {DOWN} did not answer"),
    (["keys", "revoke", "--owner", "o"], "keys revoke needs --key-id"),
    (["keys", "list", "--owner", ""], "--owner '': String should have at least 1"),
    (["replay", "{tmp}/ok.jsonl", "--broker", DOWN], f"broker {DOWN} did not answer"),
    (["status", "--broker", DOWN], f"broker {DOWN} did not answer"),
]


@pytest.mark.parametrize(("argv", "expected"), CASES)
def test_every_expected_failure_is_one_line(
    argv: list[str],
    expected: str,
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run([a.format(tmp=tmp_path) for a in argv], capsys)
    assert_one_line(code, err, expected)


def test_a_bad_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACREAGE_READY_MAX_LAG", "lots")
    code, err = run(["status"], capsys)
    assert_one_line(code, err, "invalid setting ACREAGE_READY_MAX_LAG")


def boom(*_: Any) -> int:
    raise ZeroDivisionError("a bug\nover two lines")


def test_a_programming_error_is_one_line_naming_its_type(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(status, "run_status", boom)
    code, err = run(["status"], capsys)
    assert code == 1
    assert_one_line(code, err, "unexpected ZeroDivisionError: a bug over two lines")
    assert "ACREAGE_DEBUG=1" in err


def test_acreage_debug_re_raises_for_developers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "run_status", boom)
    monkeypatch.setenv("ACREAGE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["status"])


def test_help_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["status", "--help"])
    assert exit_.value.code == 0 and "--json" in capsys.readouterr().out


@pytest.mark.parametrize("command", [
    ["keys", "create", "--owner", "o"], ["keys", "list", "--owner", "o"],
    ["keys", "revoke", "--owner", "o", "--key-id", "ab"], ["replay", "x.jsonl"],
])
def test_keys_and_replay_read_the_workers_broker_setting(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's Faust reads this list as two brokers; so must every command."""
    monkeypatch.setenv("ACREAGE_BROKER", "kafka://a:9093;kafka://b:9094")
    args = cli._parser().parse_args(command)
    assert cli._settings(args).bootstrap_servers() == ["a:9093", "b:9094"]
    args = cli._parser().parse_args([*command, "--broker", "c:1"])
    assert cli._settings(args).bootstrap_servers() == ["c:1"]


def test_replay_publishes_to_the_settings_broker(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[list[str]] = []

    async def publish(events: list[dict[str, Any]], bootstrap: list[str]) -> None:
        sent.append(bootstrap)

    monkeypatch.setattr(replay, "publish", publish)
    monkeypatch.setenv("ACREAGE_BROKER", "kafka://a:9093,b")
    assert cli.main(["replay", str(files["ok.jsonl"])]) == 0
    assert sent == [["a:9093", "b:9092"]]
    assert capsys.readouterr() == ("published 1 events to a:9093,b:9092\n", "")


def test_caught_up_is_readys_rule() -> None:
    assert caught_up(100, 100) and not caught_up(101, 100)


A0, A1, M0 = ("events.a", 0), ("events.a", 1), ("app-metering", 0)
WORKER = Member("faust-1", "faust-0.11", "10.0.0.7")


def test_the_group_description_is_decoded_for_our_topics_only() -> None:
    raw = MemberAssignment(0, [("events.a", [1]), ("app-state-changelog", [0])], b"{}").encode()
    described = {
        "state": "Stable",
        "members": [
            {"member_id": "faust-1", "client_id": "faust-0.11", "client_host": "/10.0.0.7",
             "member_assignment": raw},
            {"member_id": "late", "client_id": "x", "client_host": "/h", "member_assignment": b""},
        ],
    }
    assert group_of(described, {"events.a"}) == Group("Stable", 2, {A1: WORKER})


def test_status_table_and_json() -> None:
    offsets = Offsets(
        beginning={A0: 0, A1: 0, M0: 0},
        end={A0: 40, A1: 7, M0: 3},
        committed={A0: None, A1: 7, M0: 1},
    )
    report = status.status_of("app", offsets, Group("Stable", 1, {A1: WORKER}), max_lag=2)
    assert status.render_table(report).splitlines() == [
        "group app: Stable, 1 member; caught up = lag <= 2 (ACREAGE_READY_MAX_LAG)",
        "TOPIC         PARTITION  MEMBER               COMMITTED  END  LAG  CAUGHT-UP",
        "app-metering  0          -                    1          3    2    yes",
        "events.a      0          -                    -          40   40   no",
        "events.a      1          faust-0.11/10.0.0.7  7          7    0    yes",
    ]
    body = json.loads(status.render_json(report))
    assert body["rows"][2] == {
        "topic": "events.a",
        "partition": 1,
        "member": {"member_id": "faust-1", "client_id": "faust-0.11", "host": "10.0.0.7"},
        "committed": 7,
        "end": 7,
        "lag": 0,
        "caught_up": True,
    }


def test_status_flags_parse() -> None:
    args = cli._parser().parse_args(["status", "--json"])
    assert args == argparse.Namespace(command="status", json=True, timeout=10.0, broker=None)


def test_replay_progress_in_a_log_is_one_line_every_ten_seconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = [0.0]
    progress = replay.Progress(1000, clock=lambda: now[0])
    for done in range(1, 1001):
        now[0] = done * 0.05  # 20 events a second: 50 s in all
        progress.show(done)
    progress.done()
    assert capsys.readouterr().err.splitlines() == [
        f"replay: {n}/1000 events sent" for n in (200, 400, 600, 800, 1000)
    ]
