"""A clean start and a replay burst leave no warning or error in the worker's log: each
one there is either a bug or a level that cries wolf, and both hide the real ones."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

from streams import cli
from tests.aggregates.conftest import shared_dir
from tests.support.kafka import Broker, Worker, wait_until

FEATURES = 400
LOUD = re.compile(r"level=(warning|error|critical)|Traceback")


def ready(worker: Worker) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/ready", timeout=3) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_a_clean_start_and_a_replay_log_no_warning_or_error(
    broker: Broker, tmp_path: Path
) -> None:
    worker = Worker(broker, "quiet-start", tmp_path / "w",
                    extra_env={"ACREAGE_LAG_SECONDS": "0.5", "ACREAGE_READY_MAX_LAG": "10"})
    worker.start()
    try:
        data = shared_dir() / "data" / "chofu_fude_2019.geojson"
        replayed = cli.main(["replay", str(data), "--owner", "quiet@example.com",
                             "--limit", str(FEATURES), "--broker", broker.bootstrap])
        assert replayed == 0
        assert wait_until(lambda: ready(worker), 120), "metering never caught up"
    finally:
        assert worker.stop(timeout=30) == 0
    log = (tmp_path / "w.log").read_text()
    loud = [line for line in log.splitlines() if LOUD.search(line)]
    assert loud == [], "\n".join(loud)
