"""Operations on a real broker: /health and /ready, lag read from the broker, quiet
logs and a bounded SIGTERM during a broker outage."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from shapely.geometry import box, mapping

from schemas.events import TOPIC_TYPES
from streams.lag import LagReader
from streams.metrics import Metrics
from streams.settings import Settings
from streams.shutdown import EXIT_SHUTDOWN_TIMEOUT, EXIT_STALL
from streams.state_guard import MARKER
from streams.topics import ensure_topics, partition_of
from streams.watchdog import PartitionWatch
from tests.support.kafka import Broker, Worker, produce_events, read_topic, wait_until

OWNER = "ops@example.com"
INPUT = "events.field-boundaries"


def boundary(i: int) -> dict[str, Any]:
    x = 10.0 + (i % 40) * 0.01
    y = 45.0 + (i // 40) * 0.01
    return {
        "id": f"ops-{uuid.uuid4()}",
        "type": "fieldBoundaryCreated",
        "apiOwner": OWNER,
        "leafUserId": "u1",
        "fieldId": f"f{i}",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "geometry": mapping(box(x, y, x + 0.005, y + 0.005)),
    }


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_health_and_ready_follow_assignment_and_catch_up(broker: Broker, tmp_path: Path) -> None:
    """/ready is 503 (with reasons) until the worker owns partitions, has built its
    state and caught up; then 200. A graceful stop still writes the clean marker."""
    worker = Worker(broker, "ops-ready", tmp_path / "w", extra_env={"ACREAGE_LAG_SECONDS": "1"})
    worker.start()
    api = f"http://127.0.0.1:{worker.web_port}"
    assert get(f"{api}/health") == (200, {"status": "ok"})
    status, body = get(f"{api}/ready")
    assert status == 503 and body["status"] == "not_ready" and body["not_ready"]

    events = [boundary(i) for i in range(120)]
    produce_events(broker.bootstrap, events)

    def metered() -> bool:
        got = {v["eventId"] for _, v in read_topic(broker.bootstrap, "usage.records")}
        return got >= {e["id"] for e in events}

    assert wait_until(metered, 60, interval=1.0), "events were not metered"
    assert wait_until(lambda: get(f"{api}/ready")[0] == 200, 30, interval=0.5), get(f"{api}/ready")
    status, body = get(f"{api}/ready")
    assert body["status"] == "ready" and body["assigned"] == 5 * 4 and body["not_ready"] == []

    started = time.monotonic()
    assert worker.stop(timeout=30) == 0
    assert time.monotonic() - started < 12
    assert (worker.data_dir / MARKER).exists()


def test_lag_is_read_for_partitions_no_one_consumes(broker: Broker) -> None:
    """Events produced while no worker runs: the watch publishes their lag although no
    consumer owns them (the old gauge showed nothing), and keeps it when the broker
    goes away."""
    settings = Settings(
        broker=f"kafka://{broker.bootstrap}", app_id="ops-lag", partitions=4, lag_seconds=1
    )
    ensure_topics(settings)
    produce_events(broker.bootstrap, [boundary(i) for i in range(40)])
    expected = {str(p): 40 if p == partition_of(OWNER, 4) else 0 for p in range(4)}

    topics = frozenset({*TOPIC_TYPES, "ops-lag-metering"})
    reader = LagReader(broker.bootstrap, "ops-lag", topics, timeout=2.0)
    app = SimpleNamespace(
        rebalancing=False,
        in_recovery=False,
        should_stop=False,
        consumer=SimpleNamespace(assignment=lambda: set()),
        tables=SimpleNamespace(recovery=SimpleNamespace(active_offsets={})),
    )
    rt: Any = SimpleNamespace(settings=settings, metrics=Metrics(), app=app)
    watch = PartitionWatch(rt, reader, topics)

    def value(name: str, **labels: str) -> float | None:
        return rt.metrics.registry.get_sample_value(name, labels or None)

    async def scenario() -> None:
        deadline = time.monotonic() + 30
        await watch.check()  # a fresh broker creates the offsets topic on first use
        while not watch.read_ok and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            await watch.check()
        for p, lag in expected.items():
            assert value("acreage_consumer_lag", topic=INPUT, partition=p) == lag
            assert value("acreage_partition_assigned", topic=INPUT, partition=p) == 0
        assert value("acreage_lag_scrape_ok") == 1
        broker.stop()
        started = time.monotonic()
        await watch.check()
        assert time.monotonic() - started < 5
        assert value("acreage_lag_scrape_ok") == 0
        owner_partition = str(partition_of(OWNER, 4))
        assert value("acreage_consumer_lag", topic=INPUT, partition=owner_partition) == 40
        await reader.close()

    asyncio.run(scenario())


def test_broker_outage_logs_little_and_sigterm_still_ends_the_worker(
    broker: Broker, tmp_path: Path
) -> None:
    """Stopped broker: under 200 log lines in 15 s (was ~98,000 in 20 s), and SIGTERM
    ends the worker within 15 s, non-zero and without the clean-shutdown marker."""
    worker = Worker(broker, "ops-outage", tmp_path / "w").start()
    produce_events(broker.bootstrap, [boundary(i) for i in range(10)])
    time.sleep(3)
    log = worker.data_dir.with_suffix(".log")
    before = len(log.read_bytes().splitlines())
    broker.stop()
    time.sleep(15)
    during = log.read_bytes().splitlines()[before:]
    assert len(during) < 200, b"\n".join(during[-20:]).decode(errors="replace")

    assert worker.proc is not None
    started = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    code = worker.stop(timeout=20)
    assert time.monotonic() - started < 15
    assert code == EXIT_SHUTDOWN_TIMEOUT
    assert not (worker.data_dir / MARKER).exists()


# Loaded by the worker through PYTHONPATH: the first reading with an assignment reports a
# stall, since a real Faust stall cannot be provoked on demand.
FAKE_STALL = """
from streams import watchdog

observe = watchdog.StallDetector.observe

def stalled(self, now, *, assigned, **kwargs):
    observe(self, now, assigned=assigned, **kwargs)
    return [watchdog.Stall(min(assigned), 1, 60.0)] if assigned else []

watchdog.StallDetector.observe = stalled
"""


def test_a_stall_restarts_the_worker_without_the_clean_marker(
    broker: Broker, tmp_path: Path
) -> None:
    """The heal end to end: the watchdog's SIGTERM stops the worker gracefully, and it
    exits EX_TEMPFAIL without vouching for its tables, so its supervisor restarts it."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FAKE_STALL)
    root = Path(__file__).resolve().parents[2]
    worker = Worker(
        broker,
        "ops-stall",
        tmp_path / "w",
        extra_env={"PYTHONPATH": f"{inject}:{root}", "ACREAGE_LAG_SECONDS": "1"},
    ).start()
    assert worker.proc is not None
    assert worker.proc.wait(timeout=60) == EXIT_STALL
    assert not (worker.data_dir / MARKER).exists()
    log = worker.data_dir.with_suffix(".log").read_text()
    assert "stall watchdog: restarting the worker" in log
