"""Owner API keys in the state table: changed in-stream, read by the owner's worker.

A key record (aggregates/api_keys.py) lives in the owner's partition of the state table,
so it is replicated by the changelog and survives restarts like every metering record.
Every request with an owner key is verified on the owner's worker (streams/api/routing.py),
the one whose metering agent writes that partition: a revocation holds on every worker
as soon as that agent has written it.

Last use is not written per request. Each worker remembers when it last reported a key's
use and reports it again, as a command on the metering topic, only once USE_REPORT
has passed: at most one table write per key per minute per worker, and a `lastUsedAt`
at most a minute older than the key's true last use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from aggregates.api_keys import (
    KeyAction,
    KeyRecord,
    changed,
    decode,
    encode,
    owner_range,
    record_key,
)
from aggregates.meter import Outcome
from aggregates.state import split_key
from schemas.api import ApiKeyInfo
from schemas.internal import ApiKeyMessage
from streams.topics import partition_of

USE_REPORT = timedelta(minutes=1)

Read = Callable[[str], bytes | None]
Scan = Callable[[int, str, str], Iterator[str]]  # a partition's keys in [lo, hi)


def key_outcome(message: ApiKeyMessage, read: Read) -> Outcome:
    """The metering agent's whole job for a key command: at most one table write."""
    where = record_key(message.api_owner, message.key_sha256)
    raw = read(where)
    current = None if raw is None else decode(message.key_sha256, raw)
    after = changed(message.action, message.key_sha256, message.now, current)
    return Outcome(writes=[] if after is None else [(where, encode(after))])


def command(api_owner: str, sha256: str, now: datetime,
            action: KeyAction = KeyAction.CREATE) -> ApiKeyMessage:
    return ApiKeyMessage(api_owner=api_owner, key_sha256=sha256, action=action, now=now)


class TableKeys:
    """Reads keys from the worker's own partitions of the state table."""

    def __init__(self, read: Read, scan: Scan, partitions: int) -> None:
        self._read = read
        self._scan = scan
        self._partitions = partitions

    def record(self, api_owner: str, sha256: str) -> KeyRecord | None:
        raw = self._read(record_key(api_owner, sha256))
        return None if raw is None else decode(sha256, raw)

    def exists(self, api_owner: str, sha256: str) -> bool:
        """Only an active key: a revoked one keeps its record, to be listed."""
        found = self.record(api_owner, sha256)
        return found is not None and found.active

    def of(self, api_owner: str) -> list[KeyRecord]:
        """The owner's keys, oldest first (then by id, for keys of the same instant)."""
        lo, hi = owner_range(api_owner)
        partition = partition_of(api_owner, self._partitions)
        shas = [split_key(k)[2][0] for k in self._scan(partition, lo, hi)]
        found = [r for sha in shas if (r := self.record(api_owner, sha)) is not None]
        return sorted(found, key=lambda r: (r.created_at, r.key_id))

    def find(self, api_owner: str, key_id: str) -> KeyRecord | None:
        return next((r for r in self.of(api_owner) if r.key_id == key_id), None)


class UseReports:
    """When this worker last reported each key's use; memory only, one entry per key
    it has verified. A restarted worker reports each key's next use at once."""

    def __init__(self, every: timedelta = USE_REPORT) -> None:
        self._every = every
        self._reported: dict[tuple[str, str], datetime] = {}

    def due(self, api_owner: str, sha256: str, now: datetime) -> bool:
        """True when this use is to be reported, and notes it as reported."""
        last = self._reported.get((api_owner, sha256))
        if last is not None and now - last < self._every:
            return False
        self._reported[(api_owner, sha256)] = now
        return True


def info(api_owner: str, record: KeyRecord) -> ApiKeyInfo:
    return ApiKeyInfo(key_id=record.key_id, api_owner=api_owner, created_at=record.created_at,
                      last_used_at=record.last_used_at, revoked_at=record.revoked_at)
