"""The stall detector as a pure function of readings over time, and the heal it calls."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from streams import watchdog
from streams.lag import Offsets, Partition
from streams.metrics import Metrics
from streams.settings import Settings
from streams.shutdown import DEADLINE, EXIT_STALL
from streams.watchdog import PartitionWatch, Stall, StallDetector

P0, P1, OTHER = ("events.a", 0), ("events.a", 1), ("events.a", 2)
N = 60.0


def offsets(end: dict[Partition, int], committed: dict[Partition, int | None]) -> Offsets:
    return Offsets(beginning={}, end=end, committed=committed)


def run(
    readings: list[tuple[float, dict[Partition, int], dict[Partition, int | None]]],
    assigned: set[Partition] = frozenset({P0, P1}),  # type: ignore[assignment]
    rebalancing_at: set[float] = frozenset(),  # type: ignore[assignment]
) -> list[list[Partition | None]]:
    """Which partitions each reading found stalled."""
    detector = StallDetector(N)
    return [
        [
            s.partition
            for s in detector.observe(
                t, assigned=assigned, offsets=offsets(e, c), rebalancing=t in rebalancing_at
            )
        ]
        for t, e, c in readings
    ]


def test_lag_with_an_unmoving_commit_for_n_seconds_is_a_stall() -> None:
    end, committed = {P0: 100, P1: 50}, {P0: 40, P1: 50}
    result = run(
        [(0, end, committed), (30, end, committed), (59, end, committed), (60, end, committed)]
    )
    assert result == [[], [], [], [P0]]


def test_a_moving_commit_restarts_the_clock() -> None:
    result = run(
        [
            (0, {P0: 100}, {P0: 10}),
            (50, {P0: 200}, {P0: 11}),  # slow but moving
            (100, {P0: 300}, {P0: 11}),
            (110, {P0: 300}, {P0: 11}),
        ]
    )
    assert result == [[], [], [], [P0]]


def test_no_lag_is_no_stall_however_long_nothing_moves() -> None:
    idle = {P0: 100}, {P0: 100}
    assert run([(t, *idle) for t in (0, 60, 600)]) == [[], [], []]


def test_lag_that_just_appeared_gets_its_full_n_seconds() -> None:
    """The clock runs from the last reading without lag, not from the last commit."""
    result = run(
        [
            (0, {P0: 100}, {P0: 100}),
            (100, {P0: 101}, {P0: 100}),
            (150, {P0: 150}, {P0: 100}),
            (160, {P0: 150}, {P0: 100}),
        ]
    )
    assert result == [[], [], [], [P0]]


def test_partitions_owned_by_others_or_no_one_are_not_this_workers_stall() -> None:
    stuck = {OTHER: 100}, {OTHER: None}
    assert run([(0, *stuck), (600, *stuck)]) == [[], []]


def test_a_rebalance_pauses_the_clocks_but_a_long_one_with_lag_is_a_stall() -> None:
    end, committed = {P0: 100}, {P0: 40}
    result = run(
        [
            (0, end, committed),
            (50, end, committed),
            (70, end, committed),
            (109, end, committed),
            (119, end, committed),
            (130, end, committed),
        ],
        rebalancing_at={50, 70, 109},
    )
    # the rebalance (50..109) lasts 59 s: no stall; after it P0 gets N s afresh
    assert result == [[], [], [], [], [], []]
    result = run(
        [(0, end, committed), (10, end, committed), (70, end, committed)], rebalancing_at={10, 70}
    )
    assert result == [[], [], [None]]


def test_a_long_table_recovery_that_progresses_is_no_stall() -> None:
    """After an unclean exit the tables restore from their changelogs: minutes, maybe."""
    detector = StallDetector(N)
    seen = offsets({P0: 100}, {P0: 40})

    def at(t: float, recovered: int) -> list[Stall]:
        return detector.observe(
            t, assigned={P0}, offsets=seen, rebalancing=True, recovered=recovered
        )

    assert [at(t, recovered=t * 1000) for t in range(0, 600, 50)] == [[]] * 12
    assert at(600, recovered=550_000) == []  # no record restored since 550 s
    assert at(610, recovered=550_000) == [Stall(None, 60, 60.0)]


def test_a_long_rebalance_without_lag_is_no_stall() -> None:
    idle = {P0: 5}, {P0: 5}
    assert run([(0, *idle), (600, *idle)], rebalancing_at={0, 600}) == [[], []]


def test_a_partition_reassigned_gets_its_clock_restarted() -> None:
    end, committed = {P0: 100}, {P0: 40}
    detector = StallDetector(N)
    seen = offsets(end, committed)
    assert detector.observe(0, assigned={P0}, offsets=seen, rebalancing=False) == []
    assert detector.observe(30, assigned=set(), offsets=seen, rebalancing=False) == []
    assert detector.observe(70, assigned={P0}, offsets=seen, rebalancing=False) == []
    assert detector.observe(130, assigned={P0}, offsets=seen, rebalancing=False) == [
        Stall(P0, 60, 60.0)
    ]


def test_after_a_failed_reading_every_clock_starts_afresh() -> None:
    """A broker outage stops commits everywhere; it is not a stall."""
    end, committed = {P0: 100}, {P0: 40}
    detector = StallDetector(N)
    detector.observe(0, assigned={P0}, offsets=offsets(end, committed), rebalancing=False)
    detector.forget()
    assert (
        detector.observe(61, assigned={P0}, offsets=offsets(end, committed), rebalancing=False)
        == []
    )


class FakeReader:
    def __init__(self, *readings: Offsets | Exception) -> None:
        self.readings = list(readings)

    async def read(self) -> Offsets:
        reading = self.readings.pop(0)
        if isinstance(reading, Exception):
            raise reading
        return reading

    async def close(self) -> None: ...


class FakeConsumer:
    def __init__(self, assigned: set[Partition] | None) -> None:
        self.assigned = assigned

    def assignment(self) -> set[TP]:
        if self.assigned is None:
            raise ConsumerNotStarted("not yet")
        return {TP(t, p) for t, p in self.assigned}


def watch_of(reader: FakeReader, assigned: set[Partition] | None, clock: list[float]) -> Any:
    app = SimpleNamespace(
        rebalancing=False,
        in_recovery=False,
        should_stop=False,
        consumer=FakeConsumer(assigned),
        tables=SimpleNamespace(recovery=SimpleNamespace(active_offsets={})),
    )
    rt: Any = SimpleNamespace(settings=Settings(stall_seconds=N), metrics=Metrics(), app=app)
    return PartitionWatch(rt, reader, frozenset({"events.a"}), clock=lambda: clock[0])


def sample(rt: Any, name: str, **labels: str) -> float | None:
    return rt.metrics.registry.get_sample_value(name, labels or None)


async def test_a_failed_reading_keeps_the_last_lag_and_says_so() -> None:
    reading = offsets({P0: 100, P1: 7}, {P0: 40, P1: None})
    watch = watch_of(FakeReader(reading, OSError("broker down")), None, [0.0])
    await watch.check()
    rt = watch.rt
    assert sample(rt, "acreage_consumer_lag", topic="events.a", partition="0") == 60
    assert sample(rt, "acreage_consumer_lag", topic="events.a", partition="1") == 7
    assert sample(rt, "acreage_partition_assigned", topic="events.a", partition="1") == 0
    assert sample(rt, "acreage_lag_scrape_ok") == 1
    await watch.check()  # must not raise
    assert sample(rt, "acreage_lag_scrape_ok") == 0
    assert sample(rt, "acreage_consumer_lag", topic="events.a", partition="0") == 60
    assert watch.offsets is reading and not watch.read_ok


async def test_a_stall_exits_the_worker_non_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """The heal: a counter, the failure exit code (no clean-shutdown marker) and a
    SIGTERM to itself, which starts the graceful stop under its deadline."""
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(watchdog.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    monkeypatch.setattr(DEADLINE, "failure", None)
    stuck = offsets({P0: 100}, {P0: 40})
    clock = [0.0]
    watch = watch_of(FakeReader(stuck, stuck, stuck), {P0}, clock)
    await watch.check()
    clock[0] = N - 1
    await watch.check()
    assert killed == [] and DEADLINE.failure is None
    clock[0] = N
    await watch.check()
    assert [sig for _, sig in killed] == [watchdog.signal.SIGTERM]
    assert DEADLINE.failure == EXIT_STALL
    assert sample(watch.rt, "acreage_stall_heals_total") == 1
    assert sample(watch.rt, "acreage_partition_assigned", topic="events.a", partition="0") == 1


def test_recovery_progress_counts_changelogs_not_read_yet_as_zero() -> None:
    """Faust holds None for a changelog partition it has not read; that crashed the
    watchdog, and with it the worker, in the middle of a recovery."""
    watch = watch_of(FakeReader(), {P0}, [0.0])
    watch.rt.app.tables.recovery.active_offsets = {TP("c", 0): 120, TP("c", 1): None}
    assert watch.recovered() == 120


async def test_no_coordinator_yet_is_info_before_the_first_reading_and_a_warning_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fresh broker elects the group coordinator as the worker joins: expected at start."""
    reading = offsets({P0: 100}, {P0: 40})
    starting = GroupCoordinatorNotAvailableError("no coordinator yet")
    watch = watch_of(FakeReader(starting, OSError("down"), reading, starting), None, [0.0])
    caplog.set_level(logging.INFO, logger=watchdog.__name__)
    for _ in range(4):
        await watch.check()
    levels = [r.levelname for r in caplog.records if r.name == watchdog.__name__]
    assert levels == ["INFO", "WARNING", "WARNING"]
