"""A newly assigned partition's changelog, restored in bulk before Faust's recovery.

Faust's recovery hands each changelog record through its consumer, conductor and
recovery loops: ~100 µs of worker CPU a record, so a takeover of 200,000 events of state
(1.59M records) spent 205-217 s there (bench.takeover). Here a plain consumer reads the
partition from the table's persisted offset to its end and writes each fetch to RocksDB
as one write batch, the persisted offset in the same batch. It runs in the table's
rebalance callback, after Faust opened the partition's database and before Faust's
recovery reads the persisted offset, so that recovery finds only what was written since.

The consumer runs in a thread with a loop of its own: the worker's loop keeps
heartbeating and answering the API (503 while the partition recovers) meanwhile.
A restore stopped half-way leaves records and offset in step (each batch is atomic);
one that fails leaves the rest to Faust's recovery, which reads on from that offset.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
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


@dataclass(frozen=True)
class Source:
    """Where a table's changelog is read from."""

    bootstrap: list[str]
    topic: str
    fetch_bytes: int


class BulkRestoredTable(faust.Table):
    """The state table, whose newly assigned changelog partitions are restored in bulk
    before Faust's recovery starts."""

    def __init__(self, *args: Any, bootstrap: list[str], fetch_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bootstrap, self._fetch_bytes = bootstrap, fetch_bytes

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
        await restore(Source(self._bootstrap, topic, self._fetch_bytes), dbs, store.offset_key)


async def restore(source: Source, dbs: Mapping[int, rocksdict.Rdict], offset_key: bytes) -> int:
    """Restores each partition's database from its changelog; returns the records
    written. Cancelled (the worker stops), the thread stops after its current batch."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_run, source, dbs, offset_key, stop)
    finally:
        stop.set()


def _run(
    source: Source, dbs: Mapping[int, rocksdict.Rdict], offset_key: bytes, stop: threading.Event
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
    source: Source, dbs: Mapping[int, rocksdict.Rdict], offset_key: bytes, stop: threading.Event
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
        return await _drain(consumer, todo, tps, dbs, offset_key, stop)
    finally:
        await consumer.stop()


async def _drain(
    consumer: AIOKafkaConsumer,
    todo: dict[TopicPartition, int],
    tps: Mapping[TopicPartition, int],
    dbs: Mapping[int, rocksdict.Rdict],
    offset_key: bytes,
    stop: threading.Event,
) -> int:
    """Reads until every partition's position reaches the end it had when the restore
    began; what arrives later is Faust's recovery's."""
    written, total = 0, 0
    for tp, end in todo.items():
        total += end - await consumer.position(tp)
    last_record = last_note = time.monotonic()
    while todo and not stop.is_set():
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
            dbs[tps[tp]].write(batch)
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
