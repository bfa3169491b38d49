"""A worker's state put into Kafka as the worker itself would have left it there.

A takeover with recovery is measured on a changelog as large as the state: producing it
through a worker would take as long as building the state (~20 min at 200,000 events),
so a store built once by bench.state is copied into the state table's changelog topic,
each key to the partition of its owner, as Faust writes it (raw key and value bytes). The
metering partition is filled to the offset the state has reached, and the group's offset
committed there, so the worker's first message is a new input, as after a real rebalance.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import OffsetAndMetadata

from aggregates.state import Kind, split_key
from aggregates.union import SEQ_BITS
from streams.topics import partition_of

_BATCH_BYTES = 1 << 20


class _Batches:
    """One open batch per partition of a topic: per-message sends cost ~50 µs each in
    aiokafka, which would make copying 1.6M records a phase of its own."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer, self._topic = producer, topic
        self._open: dict[int, BatchBuilder] = {}
        self.sent = 0

    async def add(self, partition: int, key: bytes, value: bytes) -> None:
        batch = self._open.get(partition)
        if batch is None:
            batch = self._open[partition] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            await self._send(partition)
            await self.add(partition, key, value)
            return
        self.sent += 1

    async def flush(self) -> None:
        for partition in list(self._open):
            await self._send(partition)
        await self._producer.flush()

    async def _send(self, partition: int) -> None:
        batch = self._open.pop(partition)
        await self._producer.send_batch(batch, self._topic, partition=partition)


async def fill_changelog(
    bootstrap: str, topic: str, items: Iterable[tuple[bytes, bytes]], partitions: int,
    total: int,
) -> dict[int, int]:
    """Every item to the changelog partition of its owner; returns, per partition, the
    first metering offset after every input the state holds."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1,
                                max_batch_size=_BATCH_BYTES, max_request_size=4 * _BATCH_BYTES)
    await producer.start()
    reached: dict[int, int] = {}
    batches = _Batches(producer, topic)
    started = time.perf_counter()
    try:
        for raw, value in _progress(items, total, started, "changelog"):
            owner, seq = _owner_and_seq(raw)
            partition = partition_of(owner, partitions)
            if seq is not None and seq >= reached.get(partition, 0):
                reached[partition] = seq + 1
            reached.setdefault(partition, 0)
            await batches.add(partition, raw, value)
        await batches.flush()
    finally:
        await producer.stop()
    print(f"  changelog: {batches.sent:,} records in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return reached


async def advance_metering(
    bootstrap: str, topic: str, group: str, reached: dict[int, int]
) -> None:
    """Fill each metering partition up to the offset its state reached and commit the
    group there: the state's piece ids and resend bookkeeping are metering offsets, so a
    worker reading offset 0 again would take every stored record for unsent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1,
                                max_batch_size=_BATCH_BYTES, max_request_size=4 * _BATCH_BYTES)
    await producer.start()
    try:
        batches = _Batches(producer, topic)
        for partition, offset in reached.items():
            for _ in range(offset):
                await batches.add(partition, b"filler", b"")
        await batches.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in reached]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: OffsetAndMetadata(ends[tp], "") for tp in tps})
    finally:
        await consumer.stop()


def _owner_and_seq(raw: bytes) -> tuple[str, int | None]:
    """A record's owner and the metering offset it names, if any: a usage record's
    input, a piece's creator."""
    kind, owner, parts = split_key(raw.decode())
    if kind is Kind.RECORD:
        return owner, int(parts[2])
    if kind is Kind.PIECE:
        return owner, int(parts[3]) >> SEQ_BITS
    return owner, None


def _progress(
    items: Iterable[tuple[bytes, bytes]], total: int, started: float, label: str
) -> Iterator[tuple[bytes, bytes]]:
    step = max(total // 10, 1)
    for i, item in enumerate(items, 1):
        yield item
        if i % step == 0:
            print(f"  {label}: {i:,}/{total:,} records, {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)

