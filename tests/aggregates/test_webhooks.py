"""Webhook deliveries: backoff, ids, payloads and what each attempt writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aggregates.state import Write
from aggregates.webhooks import (
    ALERT_EVENT,
    LOG_KEPT,
    Attempt,
    DeliveryState,
    Endpoint,
    RetryPolicy,
    after,
    decode_delivery,
    delivery_key,
    encode_endpoint,
    endpoint_key,
    endpoints,
    log_keys,
    message_id,
    owed,
    payload,
    recent,
    recorded,
    removal,
)
from tests.support.tables import scan_of

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
OWNER = "owner@example.com"
POLICY = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(minutes=10),
                     give_up=timedelta(hours=1))
HOOK = Endpoint("ep_1", "http://127.0.0.1:9/hook", "whsec_c2VjcmV0", T0)


def apply(store: dict[str, bytes], writes: list[Write]) -> None:
    for k, v in writes:
        if v is None:
            store.pop(k, None)
        else:
            store[k] = v


def body(n: int = 1) -> bytes:
    return payload(ALERT_EVENT, {"contractId": f"c{n}", "thresholdPercent": 80}, T0)


def owe(store: dict[str, bytes], *bodies: bytes) -> None:
    apply(store, owed(OWNER, [HOOK], [(ALERT_EVENT, b) for b in bodies], T0, store.get))


def attempt(store: dict[str, bytes], number: int, status: int | None, at: datetime,
            msg: str | None = None) -> DeliveryState | None:
    """One attempt's result applied to the store as the metering agent applies it."""
    msg = msg or message_id(ALERT_EVENT, body())
    k = delivery_key(OWNER, HOOK.endpoint_id, msg)
    d = decode_delivery(k, store[k]) if k in store else None
    entry = after(d, Attempt(HOOK.endpoint_id, msg, number, status,
                             None if status else "connection refused", at), POLICY)
    if entry is None or d is None:
        return None
    apply(store, recorded(d, entry, list(log_keys(OWNER, scan_of(store)))))
    return entry.outcome


def test_backoff_doubles_jitters_and_stops_at_the_cap() -> None:
    delays = [POLICY.delay(n, "msg_a").total_seconds() for n in range(1, 12)]
    for n, d in enumerate(delays, start=1):
        nominal = 5 * 2 ** (n - 1)
        assert min(600, 0.75 * nominal) <= d <= min(600, 1.25 * nominal), (n, d)
    assert delays[-1] == 600
    assert POLICY.delay(3, "msg_a") != POLICY.delay(3, "msg_b")  # jitter spreads a burst
    assert POLICY.delay(3, "msg_a") == POLICY.delay(3, "msg_a")  # and is replayed alike
    assert POLICY.delay(10_000, "msg_a") == POLICY.cap


def test_a_message_id_is_its_content() -> None:
    assert message_id(ALERT_EVENT, body(1)) == message_id(ALERT_EVENT, body(1))
    assert message_id(ALERT_EVENT, body(1)) != message_id(ALERT_EVENT, body(2))
    assert message_id(ALERT_EVENT, body(1)) != message_id("usage.day.final", body(1))
    assert message_id(ALERT_EVENT, body(1)).startswith("msg_")


def test_the_payload_is_canonical_json_with_type_timestamp_and_data() -> None:
    assert body(1) == (b'{"data":{"contractId":"c1","thresholdPercent":80},'
                       b'"timestamp":"2026-03-01T12:00:00+00:00","type":"quota.alert"}')


def test_a_delivery_is_owed_once_per_endpoint_and_message() -> None:
    store: dict[str, bytes] = {}
    owe(store, body(1), body(2))
    owe(store, body(1))  # a message read again
    owed_keys = [k for k in store if k.startswith("y")]
    assert len(owed_keys) == 2
    d = decode_delivery(owed_keys[0], store[owed_keys[0]])
    assert (d.attempts, d.next_at, d.api_owner) == (0, T0, OWNER)


def test_a_stored_delivery_is_not_reset_by_a_replay() -> None:
    store: dict[str, bytes] = {}
    owe(store, body())
    assert attempt(store, 1, None, T0) is DeliveryState.RETRYING
    owe(store, body())
    k = delivery_key(OWNER, HOOK.endpoint_id, message_id(ALERT_EVENT, body()))
    assert decode_delivery(k, store[k]).attempts == 1


def test_failures_back_off_then_success_removes_the_delivery() -> None:
    store: dict[str, bytes] = {}
    owe(store, body())
    k = delivery_key(OWNER, HOOK.endpoint_id, message_id(ALERT_EVENT, body()))
    at = T0
    for n in (1, 2, 3):
        assert attempt(store, n, 503, at) is DeliveryState.RETRYING
        d = decode_delivery(k, store[k])
        assert d.attempts == n
        assert d.next_at == at + POLICY.delay(n, d.message_id)
        at = d.next_at
    assert attempt(store, 4, 204, at) is DeliveryState.DELIVERED
    assert k not in store
    log = recent(OWNER, scan_of(store), store.get, 10)
    assert [(e.attempt, e.status, e.outcome) for e in log] == [
        (4, 204, DeliveryState.DELIVERED), (3, 503, DeliveryState.RETRYING),
        (2, 503, DeliveryState.RETRYING), (1, 503, DeliveryState.RETRYING)]
    assert log[1].next_retry_at == at


def test_a_result_read_twice_changes_nothing() -> None:
    store: dict[str, bytes] = {}
    owe(store, body())
    attempt(store, 1, None, T0)
    before = dict(store)
    assert attempt(store, 1, None, T0 + timedelta(seconds=1)) is None
    assert store == before
    attempt(store, 2, 200, T0 + timedelta(seconds=9))
    after_delivery = dict(store)
    assert attempt(store, 2, 200, T0 + timedelta(seconds=9)) is None
    assert store == after_delivery


def test_a_delivery_failing_past_give_up_is_dropped_and_logged() -> None:
    store: dict[str, bytes] = {}
    owe(store, body())
    assert attempt(store, 1, 500, T0 + POLICY.give_up) is DeliveryState.GAVE_UP
    assert not [k for k in store if k.startswith("y")]
    assert recent(OWNER, scan_of(store), store.get, 1)[0].outcome is DeliveryState.GAVE_UP


def test_the_log_keeps_the_newest_attempts() -> None:
    store: dict[str, bytes] = {}
    bodies = [body(n) for n in range(LOG_KEPT + 5)]
    owe(store, *bodies)
    for n, b in enumerate(bodies):
        attempt(store, 1, 200, T0 + timedelta(seconds=n), message_id(ALERT_EVENT, b))
    log = recent(OWNER, scan_of(store), store.get, 10_000)
    assert len(log) == LOG_KEPT
    assert log[0].at == T0 + timedelta(seconds=LOG_KEPT + 4)
    assert log[-1].at == T0 + timedelta(seconds=5)


def test_removing_an_endpoint_drops_what_it_was_owed() -> None:
    other = Endpoint("ep_2", "http://127.0.0.1:9/other", "whsec_b3RoZXI=", T0)
    store = {endpoint_key(OWNER, e.endpoint_id): encode_endpoint(e) for e in (HOOK, other)}
    apply(store, owed(OWNER, [HOOK, other], [(ALERT_EVENT, body())], T0, store.get))
    assert [e.endpoint_id for e in endpoints(OWNER, scan_of(store), store.get)] == ["ep_1",
                                                                                   "ep_2"]
    apply(store, removal(OWNER, "ep_1", scan_of(store)))
    assert endpoints(OWNER, scan_of(store), store.get) == [other]
    assert [k.split("\x1f")[2] for k in store if k.startswith("y")] == ["ep_2"]
