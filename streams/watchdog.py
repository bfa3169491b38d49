"""The stall watchdog: publishes every partition's lag and restarts a stuck worker.

Faust can leave an assigned partition unfetched after a rebalance (faust-streaming
issues 629, 166, 175, 523: no fetch request for some partitions since start, lag
growing while the rest flows). Upstream has no fix, and a seek to the committed offset
does not heal it: in issue 523 Faust itself had seeked every partition to its committed
offset and kept "adding fetch requests" while nothing was consumed. What does heal it
is a fresh consumer: a new group member, a new assignment, a seek to the committed
offsets. So the heal is to exit non-zero and let the supervisor restart the worker;
at-least-once delivery plus event-id dedup makes reprocessing the uncommitted suffix
harmless, and the unclean exit makes the next start restore tables from changelogs.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any, cast

from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError
from faust.exceptions import ConsumerNotStarted
from faust.tables.manager import TableManager
from faust.types import TP
from mode import Service

from streams.lag import LagReader, Offsets, Partition
from streams.runtime import Runtime
from streams.shutdown import DEADLINE, EXIT_STALL
from streams.topics import consumed_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stall:
    """`partition` None: the stall is a rebalance that does not end."""

    partition: Partition | None
    lag: int
    seconds: float

    def describe(self) -> str:
        if self.partition is None:
            return f"rebalance without progress for {self.seconds:.0f}s with lag {self.lag}"
        topic, number = self.partition
        return (
            f"{topic}[{number}]: lag {self.lag}, committed offset unchanged for {self.seconds:.0f}s"
        )


class StallDetector:
    """Which owned partitions are stalled, from successive readings.

    A partition stalls when it has had lag, with its committed offset unchanged, for
    `stall_seconds`. Only the committed offset counts as progress, not the consumed
    position: ticks reach every metering partition every few seconds, so the consumed
    position of a partition whose commits are stuck behind a never-acknowledged
    message keeps moving. Clocks restart while a rebalance runs (offsets may move
    between owners), but a rebalance with lag that makes no progress for
    `stall_seconds` is a stall. Table recovery is part of Faust's rebalance, and
    restoring a large changelog after an unclean exit can take minutes: records
    restored (`recovered`) count as progress, so a long restore is not a crash loop.
    """

    def __init__(self, stall_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self._progress: dict[Partition, tuple[int | None, float]] = {}
        self._rebalance: tuple[int, float] | None = None  # (recovered, since)

    def observe(
        self,
        now: float,
        *,
        assigned: Set[Partition],
        offsets: Offsets,
        rebalancing: bool,
        recovered: int = 0,
    ) -> list[Stall]:
        lag = offsets.lag()
        if rebalancing:
            self._progress.clear()
            if self._rebalance is None or self._rebalance[0] != recovered:
                self._rebalance = (recovered, now)
            seconds, total = now - self._rebalance[1], sum(lag.values())
            if seconds >= self.stall_seconds and total > 0:
                return [Stall(None, total, seconds)]
            return []
        self._rebalance = None
        for tp in set(self._progress) - assigned:
            del self._progress[tp]
        stalls = []
        for tp in sorted(assigned):
            committed = offsets.committed.get(tp)
            seen = self._progress.get(tp)
            if lag.get(tp, 0) == 0:
                self._progress.pop(tp, None)  # the clock starts when lag is first seen
            elif seen is None or seen[0] != committed:
                self._progress[tp] = (committed, now)
            elif now - seen[1] >= self.stall_seconds:
                stalls.append(Stall(tp, lag[tp], now - seen[1]))
        return stalls

    def forget(self) -> None:
        """No reading, no evidence: after a broker outage every clock starts afresh, so
        an outage is never taken for a stall."""
        self._progress.clear()
        self._rebalance = None


class PartitionWatch(Service):
    """Every `lag_seconds`: read the group's offsets, publish lag and assignment, and
    heal a stall. A mode service started with the app, before table recovery, so it
    also watches a first rebalance or recovery that never ends (Faust's own timers
    start only after recovery)."""

    def __init__(
        self,
        rt: Runtime,
        reader: LagReader,
        topics: Set[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.rt = rt
        self.reader = reader
        self.topics = topics
        self.detector = StallDetector(rt.settings.stall_seconds)
        self.offsets: Offsets | None = None  # the last good reading
        self.read_ok = False
        self._clock = clock
        self._healing = False

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            await self.check()
            await self.sleep(self.rt.settings.lag_seconds)

    async def on_stop(self) -> None:
        await self.reader.close()

    @property
    def rebalancing(self) -> bool:
        return bool(self.rt.app.rebalancing or self.rt.app.in_recovery)

    def assigned(self) -> set[Partition]:
        """This worker's partitions of the watched topics (changelogs are not ours)."""
        try:
            tps = self.rt.app.consumer.assignment()
        except ConsumerNotStarted:
            return set()
        return {(tp.topic, tp.partition) for tp in tps if tp.topic in self.topics}

    def recovered(self) -> int:
        """Changelog records restored so far: a recovery's progress. (Faust holds None
        for a changelog partition it has not read yet.)"""
        tables = cast(TableManager, self.rt.app.tables)  # TableManagerT omits .recovery
        return sum(offset or 0 for offset in tables.recovery.active_offsets.values())

    async def check(self) -> None:
        metrics = self.rt.metrics
        try:
            offsets = await self.reader.read()
        except Exception as exc:  # noqa: BLE001 - a broker outage must not end the watch
            log.log(_level_of(exc, first=self.offsets is None),
                    "lag reading failed, keeping the last values: %r", exc)
            self.read_ok = False
            metrics.lag_read_ok.set(0)
            self.detector.forget()
            return
        self.offsets, self.read_ok = offsets, True
        metrics.lag_read_ok.set(1)
        assigned = self.assigned()
        for (topic, number), lag in offsets.lag().items():
            metrics.lag.labels(topic, number).set(lag)
            metrics.assigned.labels(topic, number).set(int((topic, number) in assigned))
        stalls = self.detector.observe(
            self._clock(),
            assigned=assigned,
            offsets=offsets,
            rebalancing=self.rebalancing,
            recovered=self.recovered(),
        )
        if stalls and not self._healing and not self.rt.app.should_stop:
            self.heal(stalls)

    def _commit_state(self, partition: Partition | None) -> str:
        """What Faust's commit bookkeeping holds for the partition (private, so read
        defensively): which message the commits wait for."""
        if partition is None:
            return ""
        consumer: Any = self.rt.app.consumer
        tp = TP(*partition)
        try:
            acked = sorted(consumer._acked.get(tp) or [])
            start = getattr(consumer, "_acreage_starts", {}).get(tp)
            return (
                f" (committed {consumer._committed_offset.get(tp)}, start {start}, "
                f"{len(acked)} acked from {acked[:1]} to {acked[-1:]}, "
                f"{len(consumer._unacked_messages)} messages unacked)"
            )
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f" (commit state unreadable: {exc!r})"

    def heal(self, stalls: list[Stall]) -> None:
        """Exit non-zero through the graceful stop (it commits what was processed);
        the SIGTERM deadline ends the process if the stuck consumer hangs the stop."""
        self._healing = True
        for stall in stalls:
            log.error("stall: %s%s", stall.describe(), self._commit_state(stall.partition))
        log.error("stall watchdog: restarting the worker (exit %d)", EXIT_STALL)
        self.rt.metrics.stall_heals.inc()
        DEADLINE.fail(EXIT_STALL)
        os.kill(os.getpid(), signal.SIGTERM)


def _level_of(exc: Exception, *, first: bool) -> int:
    """A fresh broker elects the group's coordinator only as the first worker joins, so
    the first readings of a clean start fail with these: expected, not a fault. Once a
    reading succeeded, or with any other error, the failure is a warning."""
    starting = isinstance(exc, GroupCoordinatorNotAvailableError | CoordinatorLoadInProgressError)
    return logging.INFO if first and starting else logging.WARNING


def register(rt: Runtime) -> PartitionWatch:
    """Watch the input topics and the internal metering topic, starting with the app."""
    topics = consumed_topics(rt.settings.app_id)
    reader = LagReader(
        rt.settings.bootstrap_servers(),
        rt.settings.app_id,
        topics,
        timeout=max(2.0, 2 * rt.settings.lag_seconds),
    )
    watch = PartitionWatch(rt, reader, topics)
    rt.app.add_dependency(watch)
    return watch
