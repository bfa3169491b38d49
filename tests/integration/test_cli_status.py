"""`acreage status` against a real broker: lag while no worker runs, caught up and
assigned once one has consumed, unassigned again after it stops, one line once the
broker is gone."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import box, mapping

from streams import cli
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.support.kafka import Broker, Worker, produce_events, wait_until

APP = "cli-status"
INPUT = "events.field-boundaries"
EVENTS = 30
# Ticks reach the metering topic twice a second and the worker commits about once a
# second, so its lag is rarely 0 at the moment of a reading; 30 input records are not.
MAX_LAG = 10


def boundary(i: int) -> dict[str, Any]:
    x = 10.0 + i * 0.01
    return {
        "id": f"status-{uuid.uuid4()}",
        "type": "fieldBoundaryCreated",
        "apiOwner": "status@example.com",
        "leafUserId": "u1",
        "fieldId": f"f{i}",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "geometry": mapping(box(x, 45.0, x + 0.005, 45.005)),
    }


def test_status_shows_lag_then_caught_up_after_a_worker_consumes(
    broker: Broker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {
        "ACREAGE_BROKER": f"kafka://{broker.bootstrap}",
        "ACREAGE_APP_ID": APP,
        "ACREAGE_PARTITIONS": "1",
        "ACREAGE_READY_MAX_LAG": str(MAX_LAG),
    }.items():
        monkeypatch.setenv(name, value)
    ensure_topics(Settings())
    produce_events(broker.bootstrap, [boundary(i) for i in range(EVENTS)])

    def rows() -> dict[tuple[str, int], dict[str, Any]] | None:
        """The status rows, or None while the broker cannot answer yet (a fresh broker
        creates its offsets topic on the first group request)."""
        if cli.main(["status", "--json", "--timeout", "5"]) != 0:
            capsys.readouterr()
            return None
        body = json.loads(capsys.readouterr().out)
        return {(r["topic"], r["partition"]): r for r in body["rows"]}

    before = wait_until(rows, 30, interval=1.0)
    assert before, "status never answered"
    assert before[(INPUT, 0)] == {
        "topic": INPUT,
        "partition": 0,
        "member": None,
        "committed": None,
        "end": EVENTS,
        "lag": EVENTS,
        "caught_up": False,
    }
    assert before[(f"{APP}-metering", 0)]["lag"] == 0

    worker = Worker(broker, APP, tmp_path / "w", extra_env={"ACREAGE_PARTITIONS": "1"}).start()
    try:

        def consumed() -> dict[tuple[str, int], dict[str, Any]] | None:
            now = rows()
            if not now or now[(INPUT, 0)]["committed"] != EVENTS:
                return None
            metering = now[(f"{APP}-metering", 0)]
            return now if metering["committed"] is not None and metering["caught_up"] else None

        after = wait_until(consumed, 90, interval=1.0)
        assert after, rows()
        assert after[(INPUT, 0)]["lag"] == 0
        for row in after.values():
            assert row["caught_up"] is True and row["lag"] <= MAX_LAG, row
            assert row["member"] and row["member"]["host"] == "127.0.0.1", row
        assert cli.main(["status"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[1].split() == [
            "TOPIC", "PARTITION", "MEMBER", "COMMITTED", "END", "LAG", "CAUGHT-UP"
        ], lines
        input_row = next(line.split() for line in lines if line.startswith(f"{INPUT} "))
        assert input_row[1] == "0" and input_row[-2:] == ["0", "yes"], lines
    finally:
        assert worker.stop(timeout=30) == 0

    left = wait_until(lambda: (r := rows()) and r[(INPUT, 0)]["member"] is None and r, 30)
    assert left and left[(INPUT, 0)]["committed"] == EVENTS

    broker.stop()
    assert cli.main(["status", "--timeout", "3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"acreage: broker {broker.bootstrap} "), err
