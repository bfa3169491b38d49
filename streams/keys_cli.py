"""`acreage keys create|list|revoke`: through the broker the worker reads
(`Settings.bootstrap_servers()`), with no worker URL or admin key needed.

`create` and `revoke` send the commands the API sends to the metering topic. `list`
reads the owner's partition of the state table's changelog, the table's own replica, from
its start: it costs that partition's records (compacted: about one per table key), and it
shows what the workers have written, so a revocation is confirmed by reading its record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from aggregates.api_keys import KeyAction, KeyRecord, decode, owner_range
from aggregates.state import split_key
from schemas.api import ApiKeyIn
from schemas.codec import dumps
from schemas.internal import ApiKeyMessage
from streams.api.auth import fingerprint, new_owner_key
from streams.api.keys import command, info
from streams.cli_errors import CliError, broker_error
from streams.settings import Settings
from streams.topics import changelog_topic, metering_topic, partition_of

POLL_SECONDS = 0.5
T = TypeVar("T")


def create(settings: Settings, api_owner: str) -> int:
    """Sends what POST /admin/api-keys sends, for an owner that endpoint would accept;
    prints the key once."""
    _check_owner(api_owner)
    token = new_owner_key(api_owner)
    _run(settings, _send(settings, command(api_owner, fingerprint(token), _now())))
    print(token)
    return 0


def list_keys(settings: Settings, api_owner: str, as_json: bool) -> int:
    _check_owner(api_owner)
    records = _run(settings, _read(settings, api_owner))
    rows = [info(api_owner, r) for r in records]
    if as_json:
        print(dumps([r.model_dump(mode="json", by_alias=True) for r in rows]).decode())
        return 0
    table = [["KEY-ID", "CREATED", "LAST-USED", "REVOKED"]] + [
        [r.key_id, _when(r.created_at), _when(r.last_used_at), _when(r.revoked_at)]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def revoke(settings: Settings, api_owner: str, key_id: str, timeout: float) -> int:
    """Exits 0 once a worker has written the revocation: from then on every worker
    answers the key with 401."""
    _check_owner(api_owner)
    return _run(settings, _revoke(settings, api_owner, key_id, timeout))


async def _revoke(settings: Settings, api_owner: str, key_id: str, timeout: float) -> int:
    found = _by_id(await _read(settings, api_owner), key_id)
    if found is None:
        raise CliError(f"{api_owner} has no key {key_id} (see acreage keys list)")
    if found.revoked_at is None:
        await _send(settings, command(api_owner, found.sha256, _now(), KeyAction.REVOKE))
        found = await _until_revoked(settings, api_owner, key_id, timeout)
    print(f"{key_id} of {api_owner} revoked at {_when(found.revoked_at)}")
    return 0


async def _until_revoked(
    settings: Settings, api_owner: str, key_id: str, timeout: float
) -> KeyRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        found = _by_id(await _read(settings, api_owner), key_id)
        if found is not None and found.revoked_at is not None:
            return found
    raise CliError(f"revocation of {key_id} sent, but no worker wrote it within "
                   f"{timeout:g}s: it takes effect once a worker runs")


def _check_owner(api_owner: str) -> None:
    try:
        ApiKeyIn.model_validate({"apiOwner": api_owner})
    except ValidationError as exc:
        raise CliError(f"--owner {api_owner!r}: {exc.errors()[0]['msg']}") from exc


def _run(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    servers = settings.bootstrap_servers()
    try:
        return asyncio.run(work)
    except (KafkaError, OSError) as exc:
        raise broker_error(servers, exc) from exc


async def _partitions(settings: Settings, topic: str) -> int:
    """Of an existing topic only: a look-up by name would make the broker create a
    missing one, with the broker's partition count instead of the app's."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers())
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            raise CliError(f"topic {topic} not found: start a worker first")
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return len(described[0]["partitions"])


async def _send(settings: Settings, message: ApiKeyMessage) -> None:
    topic = metering_topic(settings.app_id)
    await _partitions(settings, topic)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, dumps(message.model_dump(mode="json")),
                                     key=message.api_owner.encode())
    finally:
        await producer.stop()


async def _read(settings: Settings, api_owner: str) -> list[KeyRecord]:
    """The owner's key records as the changelog holds them now: its last value per key."""
    topic = changelog_topic(settings.app_id)
    tp = TopicPartition(topic, partition_of(api_owner, await _partitions(settings, topic)))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers(),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        lo, hi = (bound.encode() for bound in owner_range(api_owner))
        latest: dict[bytes, bytes | None] = {}
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.key is not None and lo <= record.key < hi:
                    latest[record.key] = record.value
    finally:
        await consumer.stop()
    found = [decode(split_key(k.decode())[2][0], v) for k, v in latest.items() if v is not None]
    return sorted(found, key=lambda r: (r.created_at, r.key_id))


def _by_id(records: list[KeyRecord], key_id: str) -> KeyRecord | None:
    return next((r for r in records if r.key_id == key_id), None)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat()


def _now() -> datetime:
    return datetime.now(UTC)
