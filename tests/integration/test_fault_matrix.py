"""The fault matrix of issue 7: real broker, 1–3 workers with one app id, three API owners
(each on a metering partition of its own, so they spread over workers), ≈ 1,160 events from
real fields over six days with re-deliveries and FAILED events, dashboards polling the API
of every worker — and a fault injected mid-stream. Every case ends with the same verdict
(tests/support/faults.py `verify`): metering reached the end of every input and metering
partition (or the stall is diagnosed), every owner/product/scope latest daily total equals
the union_all oracle at 1e-6, no snapshot revision was re-sent with other figures, every
event has a usage record and none has two that add area, the API's contract totals equal
the oracle on every worker, and no API answer was a 5xx other than 503 + Retry-After.

`make soak` repeats this file (tests/soak.py); ACREAGE_FAULT_SEED replays a run's timings.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.faults import (
    ApiPoller,
    Cluster,
    Publisher,
    Report,
    Stalled,
    create_input_topics,
    fault_scenarios,
    fault_seed,
    interleave,
    verify,
    wait_metered,
)
from tests.support.kafka import ROOT, Broker, Worker, read_topic, wait_for_group
from tests.support.scenario import Scenario

pytestmark = pytest.mark.integration

MAX_SIGTERM_SECONDS = 15.0  # issue 7: SIGTERM exits within 15 s, even with the broker down
MAX_OUTAGE_LOG_LINES = 1_000  # issue 7: logs are rate-limited under a broker outage
HOOKS = Path(__file__).resolve().parents[1] / "support" / "hooks"


def log_lines(w: Worker) -> int:
    path = w.data_dir.with_suffix(".log")
    return path.read_bytes().count(b"\n") if path.exists() else 0


@dataclass
class Run:
    broker: Broker
    cluster: Cluster
    scenarios: list[Scenario]
    report: Report
    rng: random.Random
    started: float

    @property
    def owners(self) -> list[str]:
        return [sc.owner for sc in self.scenarios]

    def publisher(self, chunk: int = 30, pause: float = 0.5) -> Publisher:
        return Publisher(self.broker.bootstrap, interleave(self.scenarios), chunk, pause)

    def poller(self) -> ApiPoller:
        return ApiPoller(self.cluster, self.owners)

    def finish(self, poller: ApiPoller | None) -> None:
        verify(self.report, self.cluster, self.scenarios, poller=poller)
        self.report.seconds = time.monotonic() - self.started
        self.report.assert_ok()

    def check_sigterm(
        self, rc: int, took: float, what: str, allowed: tuple[int, ...] = (0,)
    ) -> None:
        if rc not in allowed or took > MAX_SIGTERM_SECONDS:
            self.report.other.append(f"SIGTERM of {what}: exit {rc} after {took:.1f}s")


@pytest.fixture
def run(request: pytest.FixtureRequest, broker: Broker, tmp_path: Path) -> Iterator[Run]:
    seed = fault_seed()
    cluster = Cluster(broker, tmp_path)
    report = Report(case=request.node.name, seed=seed)
    quiet = logging.getLogger("aiokafka")  # this process's clients, while the broker is down
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        yield Run(broker, cluster, fault_scenarios(), report, random.Random(seed), cluster.t0)
    finally:
        quiet.setLevel(level)
        cluster.close()


def test_fault_none_control(run: Run) -> None:
    """No fault, same load and checks: if this fails, the harness or the oracle is wrong."""
    create_input_topics(run.broker)
    run.cluster.start(2)
    publisher, poller = run.publisher(), run.poller()
    publisher.start()
    poller.start()
    publisher.wait_done()
    run.finish(poller)


def test_fault_kill9_of_the_owners_worker_mid_stream_with_api_polling(run: Run) -> None:
    """The owner's worker dies mid-stream while dashboards poll every worker; it comes back
    5–20 s later on the same data dir (its tables are discarded: unclean exit)."""
    create_input_topics(run.broker)
    run.cluster.start(2)
    publisher, poller = run.publisher(), run.poller()
    publisher.start()
    poller.start()
    publisher.wait_fraction(0.35)
    victim = run.cluster.owner_worker(run.owners[0])
    run.cluster.kill9(victim)
    delay = run.rng.uniform(5, 20)
    run.cluster.log(f"restart in {delay:.1f}s")
    time.sleep(delay)
    run.cluster.restart(victim)
    publisher.wait_done()
    run.finish(poller)


def test_fault_workers_added_mid_burst_then_one_removed(run: Run) -> None:
    """1 → 3 workers (both new ones at once) while the burst is metered, then SIGTERM of
    the worker holding an owner (3 → 2)."""
    create_input_topics(run.broker)
    run.cluster.start(1)
    publisher, poller = run.publisher(), run.poller()
    publisher.start()
    poller.start()
    publisher.wait_fraction(0.2)
    run.cluster.start(2)
    publisher.wait_fraction(0.6)
    rc, took = run.cluster.sigterm(run.cluster.owner_worker(run.owners[1]))
    run.check_sigterm(rc, took, "a worker (3 → 2)")
    publisher.wait_done()
    run.finish(poller)


@pytest.mark.parametrize("sigterm_while_down", [False, True], ids=["plain", "sigterm-while-down"])
def test_fault_broker_restart_mid_stream(run: Run, sigterm_while_down: bool) -> None:
    """The broker stops mid-stream for ~10 s and comes back on the same port and data dir;
    the publisher re-sends what was not acknowledged, as an upstream producer would. No
    worker may flood its log meanwhile. In the second variant the owner's worker also gets
    SIGTERM 3 s into the outage: it must exit within 15 s with the broker still down (the
    outage lasts until it exits or 15 s passed; it is killed after 20 s), and is started
    again once the broker is back."""
    create_input_topics(run.broker)
    run.cluster.start(2)
    publisher, poller = run.publisher(), run.poller()
    publisher.start()
    poller.start()
    publisher.wait_fraction(0.4)
    victim = run.cluster.owner_worker(run.owners[0])
    lines = {w.web_port: log_lines(w) for w in run.cluster.live()}
    stopping: list[tuple[int, float]] = []
    sigterm = threading.Thread(
        target=lambda: stopping.append(
            run.cluster.sigterm(victim, timeout=MAX_SIGTERM_SECONDS + 5)
        ),
        daemon=True,
    )
    run.cluster.log("broker stop")
    run.broker.stop()
    down = time.monotonic()
    if sigterm_while_down:
        time.sleep(3)
        sigterm.start()
        sigterm.join(MAX_SIGTERM_SECONDS)  # the broker stays down meanwhile
    time.sleep(max(0.0, down + 10 - time.monotonic()))
    for w in run.cluster.workers:
        written = log_lines(w) - lines.get(w.web_port, 0)
        if written > MAX_OUTAGE_LOG_LINES:
            run.report.other.append(
                f"{run.cluster.name(w)} wrote {written} log lines during the "
                f"{time.monotonic() - down:.0f} s broker outage"
            )
    run.broker.start()
    run.cluster.log("broker started again")
    if sigterm_while_down:
        sigterm.join()
        # 70: the bounded stop gave up on the broker and exited without vouching for its
        # tables (streams/shutdown.py), which the next start then restores from changelogs.
        run.check_sigterm(
            *stopping[0], "the owner's worker while the broker was down", allowed=(0, 70)
        )
        run.cluster.restart(victim)
    publisher.wait_done()
    for w in run.cluster.workers:
        if w.proc is not None and w.proc.poll() is not None:
            run.report.other.append(f"{run.cluster.name(w)} exited {w.proc.returncode}")
    run.finish(poller)


def test_fault_sigterm_scale_in(run: Run) -> None:
    """3 → 2 → 1 workers by SIGTERM mid-stream, each time the worker holding an owner."""
    create_input_topics(run.broker)
    run.cluster.start(3)
    publisher, poller = run.publisher(), run.poller()
    publisher.start()
    poller.start()
    for fraction, owner in ((0.3, run.owners[0]), (0.6, run.owners[1])):
        publisher.wait_fraction(fraction)
        rc, took = run.cluster.sigterm(run.cluster.owner_worker(owner))
        run.check_sigterm(rc, took, f"the worker of {owner}")
    publisher.wait_done()
    run.finish(poller)


def test_fault_simultaneous_cold_start(run: Run) -> None:
    """A fresh cluster: three workers launched at the same moment and events produced at
    once — no wait for a stable group (that wait hid the missing-internal-topic stall).
    The upstream input topics exist already, as they would in production."""
    create_input_topics(run.broker)
    starting = threading.Thread(target=run.cluster.start, args=(3,), daemon=True)
    starting.start()
    publisher, poller = run.publisher(), run.poller()
    publisher.start()
    poller.start()
    starting.join(120)
    assert not starting.is_alive(), "workers did not start serving"
    publisher.wait_done()
    run.finish(poller)


def test_fault_kill9_between_event_and_tick(run: Run) -> None:
    """Events metered and committed, their days' snapshots not sent yet (ticks every 90 s),
    then every worker is killed; restarted with the normal tick, the snapshots must still
    come, with the oracle's totals."""
    create_input_topics(run.broker)
    run.cluster.start(2, ACREAGE_TICK_SECONDS="90")
    wait_for_group(run.broker, run.cluster.app_id, members=2)
    publisher = run.publisher(chunk=200, pause=0.0)
    publisher.start()
    publisher.wait_done()
    try:
        wait_metered(run.broker, run.cluster.app_id, timeout=75, settle=0, tick=False)
    except Stalled as exc:  # before any fault: the cold-start stall of issue 7
        run.report.stall = f"before the kill: {exc}"
        run.report.timeline = run.cluster.events
        run.report.seconds = time.monotonic() - run.started
        run.report.assert_ok()
    run.cluster.log("metered, no tick yet")
    owners = set(run.owners)
    early = [
        v
        for _, v in read_topic(run.broker.bootstrap, "usage.consumption-daily")
        if v is not None and v["apiOwner"] in owners
    ]
    if early:  # the case would prove nothing about unsent days: say so
        run.report.other.append(f"harness: a tick came before the kill ({len(early)} snapshots)")
    for w in run.cluster.live():
        run.cluster.kill9(w)
    for w in run.cluster.workers:
        w.extra_env["ACREAGE_TICK_SECONDS"] = "0.5"
    run.cluster.start_existing(run.cluster.workers)
    poller = run.poller()
    poller.start()
    run.finish(poller)


def test_fault_changelog_held_back_then_kill9(run: Run, tmp_path: Path) -> None:
    """The worker's producer buffer holds its table's changelog writes back for 8 s while
    events keep coming (tests/support/hooks), then the worker is killed. Faust commits
    after a buffer flush that gives up after 100 ms, so unless metering waits for its
    writes' acknowledgements, that commit covers writes that never reached Kafka and the
    restarted worker never sees those events again."""
    hold = tmp_path / "hold-changelog"
    create_input_topics(run.broker)
    run.cluster.start(
        1,
        PYTHONPATH=os.pathsep.join([str(HOOKS), str(ROOT)]),
        ACREAGE_TEST_HOLD_CHANGELOG=str(hold),
    )
    publisher = run.publisher(chunk=100, pause=0.2)
    publisher.start()
    publisher.wait_fraction(0.3)
    hold.touch()
    run.cluster.log("changelog held back")
    time.sleep(8)  # commits come every second
    (victim,) = run.cluster.live()
    run.cluster.kill9(victim)
    hold.unlink()
    run.cluster.restart(victim)
    publisher.wait_done()
    poller = run.poller()
    poller.start()
    run.finish(poller)
