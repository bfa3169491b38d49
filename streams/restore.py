"""A newly assigned partition's changelog, restored in bulk before Faust's recovery.

Faust's recovery hands each changelog record through its consumer, conductor and
recovery loops: ~100 µs of worker CPU a record, so a takeover of 200,000 events of state
(1.59M records) spent 205-217 s there (bench.takeover). Here a plain consumer reads the
partition from the table's persisted offset to its end and writes each fetch to RocksDB
as one write batch, the persisted offset in the same batch. It runs in the table's
rebalance callback, after Faust opened the partition's database and before Faust's
recovery reads the persisted offset, so that recovery finds only what was written since.

The consumer runs in a thread with a loop of its own, so the worker's loop keeps
answering the API meanwhile (503 for the partition's owners until its Meter is built),
and sends the group heartbeats that aiokafka does not send during the callback.
A restore stopped half-way leaves records and offset in step (each batch is atomic);
one that fails leaves the rest to Faust's recovery, which reads on from that offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import faust
import rocksdict
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 10.0
STALL_SECONDS = 30.0  # no record for this long: Faust's recovery takes over

# While a partition is restored, RocksDB only takes writes: no write-ahead log (a crash
# discards the data dir anyway, streams/state_guard.py), no compaction, which runs once
# afterwards while the Meter is rebuilt, and nothing slowed for the level-0 files that
# piles up. At 200,000 events of state (1.79M records) the restore took 29-30 s with
# the worker's options, 13 s without compactions and 10.5 s without the log as well.
_BULK_LOAD = {
    "disable_auto_compactions": "true",
    "write_buffer_size": str(32 * 2**20),
    "max_write_buffer_number": "3",
    "level0_slowdown_writes_trigger": "1000",
    "level0_stop_writes_trigger": "1000",
}
_MEMTABLES = ("write_buffer_size", "max_write_buffer_number")  # the worker sets these
_AFTER_BULK_LOAD = {  # RocksDB's defaults, which Faust keeps, for the rest
    "disable_auto_compactions": "false",
    "level0_slowdown_writes_trigger": "20",
    "level0_stop_writes_trigger": "36",
}
_UNLOGGED = rocksdict.WriteOptions()
_UNLOGGED.disable_wal = True  # type: ignore[assignment]  # a property; the stub says method


@dataclass(frozen=True)
class Source:
    """Where a table's changelog is read from."""

    bootstrap: list[str]
    topic: str
    fetch_bytes: int
    worker_options: Mapping[str, int]  # the table's RocksDB options, back after a restore


class BulkRestoredTable(faust.Table):
    """The state table, whose newly assigned changelog partitions are restored in bulk
    before Faust's recovery starts."""

    def __init__(self, *args: Any, bootstrap: list[str], fetch_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bootstrap, self.fetch_bytes = bootstrap, fetch_bytes
        self._worker_options: Mapping[str, int] = kwargs["options"]

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        store: Any = self.data
        if not hasattr(store, "_db_for_partition"):
            return  # an in-memory store starts empty: Faust's recovery fills it
        topic = self.changelog_topic.get_topic_name()
        standbys = self.app.assignor.assigned_standbys()
        partitions = sorted(tp.partition for tp in newly_assigned
                            if tp.topic == topic and tp not in standbys)
        if not partitions:
            return
        dbs = {p: store._db_for_partition(p) for p in partitions}
        source = Source(self._bootstrap, topic, self.fetch_bytes, self._worker_options)
        async with _member_kept_alive(self.app):
            await restore(source, dbs, store.offset_key, lambda: self.app.should_stop)


@contextlib.asynccontextmanager
async def _member_kept_alive(app: Any) -> AsyncIterator[None]:
    """aiokafka sends no heartbeat while a rebalance callback runs (its heartbeat task
    starts once the join has completed, callback included), so a restore longer than the
    session timeout got this worker dropped from the group: at 200,000 events of state a
    second rebalance followed the 10.7 s restore, and with other workers the partition
    could have moved on to be restored again elsewhere. Heartbeats are sent from here
    meanwhile, on the consumer's own thread and loop, as its heartbeat task would; one
    that finds the group rebalancing makes the consumer rejoin after the callback."""
    thread = app.consumer._thread  # Faust runs aiokafka in a thread with its own loop
    coordinator = thread._ensure_consumer()._coordinator

    async def beat() -> None:
        while True:
            await asyncio.sleep(app.conf.broker_heartbeat_interval)
            sent = asyncio.run_coroutine_threadsafe(coordinator._do_heartbeat(),
                                                    thread.thread_loop)
            with contextlib.suppress(KafkaError):  # the next beat tries again
                await asyncio.wrap_future(sent)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


async def restore(
    source: Source,
    dbs: Mapping[int, rocksdict.Rdict],
    offset_key: bytes,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Restores each partition's database from its changelog; returns the records
    written. Once `stopping()` (the worker stops) or once cancelled, the thread stops
    after its current batch: a shutdown waits at most that long for it."""
    cancelled = threading.Event()
    try:
        return await asyncio.to_thread(_run, source, dbs, offset_key,
                                       lambda: cancelled.is_set() or stopping())
    finally:
        cancelled.set()


def _run(
    source: Source, dbs: Mapping[int, rocksdict.Rdict], offset_key: bytes, stop: Callable[[], bool]
) -> int:
    started = time.monotonic()
    try:
        written = asyncio.run(_read(source, dbs, offset_key, stop))
    except (KafkaError, OSError) as exc:
        log.warning("bulk restore of %s %s stopped (%r): Faust's recovery reads on",
                    source.topic, sorted(dbs), exc)
        return 0
    log.info("bulk restore of %s %s: %d records in %.1fs",
             source.topic, sorted(dbs), written, time.monotonic() - started)
    return written


async def _read(
    source: Source, dbs: Mapping[int, rocksdict.Rdict], offset_key: bytes, stop: Callable[[], bool]
) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=source.bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=source.fetch_bytes,
    )
    try:
        await consumer.start()
        tps = {TopicPartition(source.topic, p): p for p in dbs}
        consumer.assign(list(tps))
        ends = await consumer.end_offsets(list(tps))
        todo: dict[TopicPartition, int] = {}
        for tp, partition in tps.items():
            start = _persisted(dbs[partition], offset_key) + 1
            if ends[tp] > start:
                consumer.seek(tp, start)
                todo[tp] = ends[tp]
        loading = [dbs[tps[tp]] for tp in todo]
        for db in loading:
            db.set_options(_BULK_LOAD)
        try:
            return await _drain(consumer, todo, tps, dbs, offset_key, stop)
        finally:
            for db in loading:
                _settle(db, source.worker_options)
    finally:
        await consumer.stop()


def _settle(db: rocksdict.Rdict, worker_options: Mapping[str, int]) -> None:
    """What the restore wrote without a write-ahead log is flushed to disk before
    anything else writes (with one): otherwise a later write could survive a crash that
    loses earlier ones. Then the worker's own options come back."""
    db.flush(True)
    db.set_options({
        **_AFTER_BULK_LOAD,
        **{name: str(worker_options[name]) for name in _MEMTABLES},
    })


async def _drain(
    consumer: AIOKafkaConsumer,
    todo: dict[TopicPartition, int],
    tps: Mapping[TopicPartition, int],
    dbs: Mapping[int, rocksdict.Rdict],
    offset_key: bytes,
    stop: Callable[[], bool],
) -> int:
    """Reads until every partition's position reaches the end it had when the restore
    began; what arrives later is Faust's recovery's."""
    written, total = 0, 0
    for tp, end in todo.items():
        total += end - await consumer.position(tp)
    last_record = last_note = time.monotonic()
    while todo and not stop():
        fetched = await consumer.getmany(*todo, timeout_ms=500)
        now = time.monotonic()
        for tp, records in fetched.items():
            batch = rocksdict.WriteBatch(raw_mode=True)
            for record in records:
                if record.value is None:
                    batch.delete(record.key)
                else:
                    batch.put(record.key, record.value)
            position = await consumer.position(tp)
            batch.put(offset_key, str(position - 1).encode())
            dbs[tps[tp]].write(batch, _UNLOGGED)
            written += len(records)
            last_record = now
            if position >= todo[tp]:
                del todo[tp]
        if now - last_record > STALL_SECONDS:
            raise KafkaError(f"no record for {STALL_SECONDS:.0f} s")
        if now - last_note >= PROGRESS_SECONDS:
            last_note = now
            log.info("bulk restore: %d of %d records", written, total)
    return written


def _persisted(db: rocksdict.Rdict, offset_key: bytes) -> int:
    """Faust's record of the last changelog offset in the database, -1 if none."""
    found = db.get(offset_key)
    return -1 if found is None else int(found)
