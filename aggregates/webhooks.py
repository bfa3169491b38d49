"""Webhook deliveries (Standard Webhooks) as records of the state table.

An owner's endpoints, the deliveries still owed to them and the log of attempts all live
in the owner's partition of the state table, next to the metering records, and are only
changed by messages of the owner's metering partition: a delivery is written by the same
message that made its alert or final day (so it is stored exactly when they are), and an
attempt's result comes back through the metering topic before it changes anything. A
worker that crashes mid-retry therefore loses nothing: the next owner of the partition
finds every delivery still owed in the table.

Every function here is deterministic: a message's id is the hash of its content, the
jitter of a retry is the hash of the id and attempt, and every time comes from the
messages, so a replay after a crash writes exactly what the first pass wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from aggregates.state import SEP, Kind, ReadKey, Scan, Write, dump, key, load, split_key

ALERT_EVENT = "quota.alert"
FINAL_DAY_EVENT = "usage.day.final"
LOG_KEPT = 200  # attempts kept per owner in the delivery log
_MAX_DOUBLINGS = 40  # 2**40 times any base is far past any cap; keeps the float finite


class DeliveryState(StrEnum):
    """What an attempt left the delivery in."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    GAVE_UP = "gave_up"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: the n-th failure waits base·2^(n-1), jittered to 75–125 %,
    at most `cap`; a delivery still failing `give_up` after it was created is dropped
    (and logged as such)."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(hours=1)
    give_up: timedelta = timedelta(hours=72)

    def delay(self, failures: int, message_id: str) -> timedelta:
        doubled = self.base * 2 ** min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return min(self.cap, doubled * (0.75 + 0.5 * _unit(f"{message_id}:{failures}")))


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    url: str
    secret: str
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    """One message owed to one endpoint."""

    api_owner: str
    endpoint_id: str
    message_id: str
    event_type: str
    payload: bytes
    created_at: datetime
    attempts: int  # made so far
    next_at: datetime

    @property
    def key(self) -> str:
        return delivery_key(self.api_owner, self.endpoint_id, self.message_id)


@dataclass(frozen=True)
class Attempt:
    """The result of trying a delivery once: an HTTP status, or the error that stopped
    the request before one came back."""

    endpoint_id: str
    message_id: str
    number: int  # 1 for the first attempt
    status: int | None
    error: str | None
    at: datetime

    @property
    def succeeded(self) -> bool:
        return delivered(self.status)


@dataclass(frozen=True)
class LogEntry:
    message_id: str
    event_type: str
    endpoint_id: str
    attempt: int
    status: int | None
    error: str | None
    at: datetime
    outcome: DeliveryState
    next_retry_at: datetime | None


def delivered(status: int | None) -> bool:
    """Standard Webhooks: only a 2xx answer delivers; a redirect is a failure."""
    return status is not None and 200 <= status < 300


# ---- messages ---------------------------------------------------------------------------


def payload(event_type: str, data: dict[str, Any], timestamp: datetime) -> bytes:
    """The body Standard Webhooks recommends: type, timestamp and the event's own data
    (the record as it is on its Kafka topic). Canonical JSON, so the id below is stable."""
    return dump({"type": event_type, "timestamp": timestamp.isoformat(), "data": data})


def message_id(event_type: str, body: bytes) -> str:
    """The same alert or final day always has the same id, whoever sends it and however
    often: a receiver dedupes on `webhook-id`."""
    return "msg_" + hashlib.sha256(event_type.encode() + b"\n" + body).hexdigest()[:32]


# ---- endpoints --------------------------------------------------------------------------


def endpoint_key(api_owner: str, endpoint_id: str) -> str:
    return key(Kind.WEBHOOK, api_owner, endpoint_id)


def encode_endpoint(endpoint: Endpoint) -> bytes:
    return dump({"url": endpoint.url, "secret": endpoint.secret,
                 "createdAt": endpoint.created_at.isoformat()})


def decode_endpoint(endpoint_id: str, raw: bytes) -> Endpoint:
    v = load(raw)
    return Endpoint(endpoint_id, v["url"], v["secret"], datetime.fromisoformat(v["createdAt"]))


def endpoints(api_owner: str, scan: Scan, read: ReadKey) -> list[Endpoint]:
    """The owner's endpoints, oldest id first."""
    found = []
    for raw in _keys_under(scan, key(Kind.WEBHOOK, api_owner)):
        value = read(raw)
        if value is not None:
            found.append(decode_endpoint(split_key(raw)[2][0], value))
    return sorted(found, key=lambda e: e.endpoint_id)


def removal(api_owner: str, endpoint_id: str, scan: Scan) -> list[Write]:
    """An endpoint goes with every delivery still owed to it: nobody would receive them."""
    owed = _keys_under(scan, key(Kind.DELIVERY, api_owner, endpoint_id))
    return [*((k, None) for k in owed), (endpoint_key(api_owner, endpoint_id), None)]


# ---- deliveries -------------------------------------------------------------------------


def delivery_key(api_owner: str, endpoint_id: str, message_id: str) -> str:
    return key(Kind.DELIVERY, api_owner, endpoint_id, message_id)


def encode_delivery(d: Delivery) -> bytes:
    return dump({"type": d.event_type, "payload": d.payload.decode(),
                 "createdAt": d.created_at.isoformat(), "attempts": d.attempts,
                 "nextAt": d.next_at.isoformat()})


def decode_delivery(raw_key: str, raw: bytes) -> Delivery:
    _, owner, (endpoint_id, msg_id) = split_key(raw_key)
    v = load(raw)
    return Delivery(owner, endpoint_id, msg_id, v["type"], v["payload"].encode(),
                    datetime.fromisoformat(v["createdAt"]), v["attempts"],
                    datetime.fromisoformat(v["nextAt"]))


def owed(api_owner: str, to: Iterable[Endpoint], events: Iterable[tuple[str, bytes]],
         at: datetime, read: ReadKey) -> list[Write]:
    """A delivery per endpoint and event, due at once. One already stored is left as it
    is: a message read again must not reset its attempts."""
    writes: list[Write] = []
    for endpoint in to:
        for event_type, body in events:
            d = Delivery(api_owner, endpoint.endpoint_id, message_id(event_type, body),
                         event_type, body, at, 0, at)
            if read(d.key) is None:
                writes.append((d.key, encode_delivery(d)))
    return writes


def after(d: Delivery | None, attempt: Attempt, policy: RetryPolicy) -> LogEntry | None:
    """Where an attempt leaves its delivery; None when the attempt is not the one the
    delivery waits for (its result was already recorded, or the delivery is gone): a
    result read twice changes nothing."""
    if d is None or attempt.number != d.attempts + 1:
        return None
    if attempt.succeeded:
        outcome, next_at = DeliveryState.DELIVERED, None
    elif attempt.at - d.created_at >= policy.give_up:
        outcome, next_at = DeliveryState.GAVE_UP, None
    else:
        outcome = DeliveryState.RETRYING
        next_at = attempt.at + policy.delay(attempt.number, d.message_id)
    return LogEntry(d.message_id, d.event_type, d.endpoint_id, attempt.number, attempt.status,
                    attempt.error, attempt.at, outcome, next_at)


def recorded(d: Delivery, entry: LogEntry, logged: Iterable[str]) -> list[Write]:
    """The writes of an attempt: the delivery retried later or gone, the attempt logged,
    and the owner's oldest log entries beyond LOG_KEPT dropped (`logged`: the owner's log
    keys, newest first)."""
    if entry.next_retry_at is None:
        change: Write = (d.key, None)
    else:
        later = Delivery(d.api_owner, d.endpoint_id, d.message_id, d.event_type, d.payload,
                         d.created_at, entry.attempt, entry.next_retry_at)
        change = (d.key, encode_delivery(later))
    stale = [(k, None) for i, k in enumerate(logged) if i >= LOG_KEPT - 1]
    return [change, (log_key(d.api_owner, entry), encode_log(entry)), *stale]


# ---- the delivery log -------------------------------------------------------------------


def log_key(api_owner: str, entry: LogEntry) -> str:
    """Filed by time, so the newest come first in a backward scan."""
    micros = int(entry.at.timestamp() * 1_000_000)
    return key(Kind.DELIVERY_LOG, api_owner, f"{micros:020d}", entry.message_id,
               entry.endpoint_id, entry.attempt)


def encode_log(e: LogEntry) -> bytes:
    return dump({"messageId": e.message_id, "eventType": e.event_type,
                 "endpointId": e.endpoint_id, "attempt": e.attempt, "status": e.status,
                 "error": e.error, "at": e.at.isoformat(), "outcome": e.outcome.value,
                 "nextRetryAt": None if e.next_retry_at is None else e.next_retry_at.isoformat()})


def decode_log(raw: bytes) -> LogEntry:
    v = load(raw)
    return LogEntry(v["messageId"], v["eventType"], v["endpointId"], v["attempt"], v["status"],
                    v["error"], datetime.fromisoformat(v["at"]), DeliveryState(v["outcome"]),
                    None if v["nextRetryAt"] is None
                    else datetime.fromisoformat(v["nextRetryAt"]))


def log_keys(api_owner: str, scan: Scan) -> Iterator[str]:
    """The owner's log keys, newest first."""
    return _keys_under(scan, key(Kind.DELIVERY_LOG, api_owner))


def recent(api_owner: str, scan: Scan, read: ReadKey, limit: int) -> list[LogEntry]:
    out: list[LogEntry] = []
    for raw in log_keys(api_owner, scan):
        if len(out) == limit:
            break
        value = read(raw)
        if value is not None:
            out.append(decode_log(value))
    return out


def _keys_under(scan: Scan, prefix: str) -> Iterator[str]:
    """Keys that extend `prefix` by at least one part; the separator's successor bounds
    them."""
    return scan(prefix + SEP, prefix + chr(ord(SEP) + 1))


def _unit(text: str) -> float:
    """A number in [0, 1) that only `text` decides."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
