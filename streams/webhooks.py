"""Webhooks inside stream processing: what the metering agent writes for them.

Endpoints, deliveries owed and attempts all change only through messages of the owner's
metering partition, as API keys do, so every write is a table write from inside the
agent, journalled with the rest of the message (aggregates/journal.py).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from aggregates.meter import Outcome
from aggregates.state import ReadKey, Scan, Write
from aggregates.webhooks import (
    ALERT_EVENT,
    FINAL_DAY_EVENT,
    Attempt,
    Endpoint,
    RetryPolicy,
    after,
    decode_delivery,
    delivery_key,
    encode_endpoint,
    endpoint_key,
    endpoints,
    log_keys,
    owed,
    payload,
    recorded,
    removal,
)
from schemas.internal import WebhookAttemptMessage, WebhookEndpointMessage
from schemas.outputs import DailySnapshotOut, QuotaAlertOut
from streams.settings import Settings


def retry_policy(s: Settings) -> RetryPolicy:
    return RetryPolicy(base=timedelta(seconds=s.webhook_retry_base_seconds),
                       cap=timedelta(seconds=s.webhook_retry_cap_seconds),
                       give_up=timedelta(hours=s.webhook_give_up_hours))


def endpoint_outcome(message: WebhookEndpointMessage, scan: Scan) -> Outcome:
    if message.url is None or message.secret is None:
        return Outcome(writes=removal(message.api_owner, message.endpoint_id, scan))
    endpoint = Endpoint(message.endpoint_id, message.url, message.secret, message.now)
    return Outcome(writes=[(endpoint_key(message.api_owner, message.endpoint_id),
                            encode_endpoint(endpoint))])


def attempt_outcome(message: WebhookAttemptMessage, read: ReadKey, scan: Scan,
                    policy: RetryPolicy) -> Outcome:
    k = delivery_key(message.api_owner, message.endpoint_id, message.message_id)
    raw = read(k)
    delivery = None if raw is None else decode_delivery(k, raw)
    entry = after(delivery, Attempt(message.endpoint_id, message.message_id, message.attempt,
                                    message.status, message.error, message.at), policy)
    if delivery is None or entry is None:
        return Outcome()
    return Outcome(writes=recorded(delivery, entry, log_keys(message.api_owner, scan)))


def owed_for(outcome: Outcome, read: ReadKey, scan: Scan) -> list[Write]:
    """The deliveries a message's quota alerts and final days owe their owners' endpoints,
    written with the message: they exist exactly when the outputs do."""
    events: dict[str, list[tuple[str, bytes, datetime]]] = defaultdict(list)
    for alert in outcome.alerts:
        data = QuotaAlertOut.model_validate(alert).to_wire()
        events[alert.api_owner].append(
            (ALERT_EVENT, payload(ALERT_EVENT, data, alert.emitted_at), alert.emitted_at))
    for snap in outcome.snapshots:
        if snap.final:
            data = DailySnapshotOut.model_validate(snap).to_wire()
            events[snap.api_owner].append(
                (FINAL_DAY_EVENT, payload(FINAL_DAY_EVENT, data, snap.emitted_at),
                 snap.emitted_at))
    writes: list[Write] = []
    for owner, found in events.items():
        to = endpoints(owner, scan, read)
        if to:
            at = max(at for _, _, at in found)
            writes += owed(owner, to, [(t, body) for t, body, _ in found], at, read)
    return writes
