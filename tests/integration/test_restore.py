"""The bulk changelog restore (streams/restore.py) against a real broker and real
RocksDB: what it writes must be exactly what replaying the changelog in order gives,
and Faust's persisted offset must say how far it got, or Faust's recovery would read
records again or skip them."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rocksdict import Options, Rdict

from streams.restore import Source, restore
from streams.settings import Settings
from tests.support.kafka import Broker, free_port

TOPIC = "restore-test-changelog"
OFFSET_KEY = b"__faust\0offset__"
Records = list[tuple[bytes, bytes | None]]


def _source(bootstrap: str) -> Source:
    """Fetches of 4 KB, so a partition is restored in many batches."""
    return Source([bootstrap], TOPIC, fetch_bytes=4096,
                  worker_options=Settings().rocksdb_options())


def _db(path: Path) -> Rdict:
    return Rdict(str(path), options=Options(raw_mode=True))


def _records(partition: int, count: int, seed: int) -> Records:
    """Keys written several times, some deleted (tombstones) and some written again."""
    rng = random.Random(seed)
    keys = [f"{partition}:k{i:04d}".encode() for i in range(count // 3)]
    records: Records = []
    for n in range(count):
        key = rng.choice(keys)
        body = rng.randbytes(rng.randint(0, 300)) + bytes([n % 251])
        records.append((key, None if rng.random() < 0.2 else body))
    return records


def _replayed(records: Records) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for key, value in records:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


async def _produce(bootstrap: str, by_partition: dict[int, Records]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, records in by_partition.items():
            for key, value in records:
                await producer.send(TOPIC, value=value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


def _contents(db: Rdict) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in db.items() if k != OFFSET_KEY}


def test_restore_writes_what_a_replay_in_order_gives(broker: Broker, tmp_path: Path) -> None:
    """Partition 0 from nothing, in many small fetches; partition 1 from an offset Faust
    had persisted (the records before it already in the database); partition 2 already
    complete, so nothing is read for it."""
    by_partition = {0: _records(0, 3000, seed=1), 1: _records(1, 600, seed=2),
                    2: _records(2, 50, seed=3)}
    asyncio.run(_produce(broker.bootstrap, by_partition))
    dbs = {p: _db(tmp_path / f"p{p}") for p in by_partition}
    try:
        done = 200
        for key, value in _replayed(by_partition[1][:done]).items():
            dbs[1][key] = value
        dbs[1][OFFSET_KEY] = str(done - 1).encode()
        for key, value in _replayed(by_partition[2]).items():
            dbs[2][key] = value
        dbs[2][OFFSET_KEY] = str(len(by_partition[2]) - 1).encode()

        written = asyncio.run(restore(_source(broker.bootstrap), dbs, OFFSET_KEY))

        assert written == len(by_partition[0]) + len(by_partition[1]) - done
        for partition, records in by_partition.items():
            assert _contents(dbs[partition]) == _replayed(records), partition
            assert dbs[partition][OFFSET_KEY] == str(len(records) - 1).encode()
    finally:
        for db in dbs.values():
            db.close()


def test_restore_without_a_broker_leaves_the_database_to_fausts_recovery(tmp_path: Path) -> None:
    """The bulk restore is a shortcut: when it cannot read, the database keeps what it
    had and its offset, and the worker goes on to Faust's recovery instead of crashing."""
    port = free_port()  # nothing listens there
    db = _db(tmp_path / "p0")
    try:
        db[b"kept"] = b"value"
        db[OFFSET_KEY] = b"7"
        written = asyncio.run(restore(_source(f"127.0.0.1:{port}"), {0: db}, OFFSET_KEY))
        assert written == 0
        assert _contents(db) == {b"kept": b"value"}
        assert db[OFFSET_KEY] == b"7"
    finally:
        db.close()


def test_a_restore_stopped_half_way_leaves_records_and_offset_in_step(
    broker: Broker, tmp_path: Path
) -> None:
    """A worker stopping during a restore keeps what it wrote: Faust's recovery, or the
    next restore, reads on from the persisted offset, so the database must hold exactly
    the records up to it."""
    records = _records(0, 3000, seed=4)
    asyncio.run(_produce(broker.bootstrap, {0: records}))
    checks = iter(range(1_000_000))
    db = _db(tmp_path / "p0")
    try:
        written = asyncio.run(restore(_source(broker.bootstrap), {0: db}, OFFSET_KEY,
                                      stopping=lambda: next(checks) >= 3))
        reached = int(db[OFFSET_KEY])
        assert 0 < written == reached + 1 < len(records)
        assert _contents(db) == _replayed(records[:written])
    finally:
        db.close()
