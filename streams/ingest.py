"""Ingest agents, one per input topic: validate, normalise, re-key by API owner.

Every record ends as a metering message or a dead letter, and no record can stop an
agent: an agent that dies stops metering for every owner of its partitions. A record is
acked once the broker has its forward (streams/acks.py): a commit must never cover a
forward the broker has not acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from faust.types import TopicT

from schemas.events import TOPIC_TYPES
from streams.decode import (
    Limits,
    Origin,
    Rejection,
    dead_letter,
    decode_input,
    encode_for_metering,
)
from streams.faust_guards import processed_ack
from streams.runtime import DEAD_LETTER_TOPIC, Runtime

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0


class Throttled:
    """At most one log line per kind every `every` seconds, with the number held back:
    a broker outage or a flood of poison must not write a line per record."""

    def __init__(self, every: float = 30.0) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, msg: str, *args: Any, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        if kind in self._last and now - self._last[kind] < self.every:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        log.warning(f"{msg} ({held} more held back)", *args, exc_info=exc)


throttled = Throttled()


def register(rt: Runtime) -> None:
    for name, topic in rt.inputs.items():
        rt.app.agent(topic, name=f"ingest-{name}")(_ingest_agent(rt, name))


def _ingest_agent(rt: Runtime, topic_name: str) -> Callable[[Any], Awaitable[None]]:
    allowed = TOPIC_TYPES[topic_name]
    limits = Limits.from_settings(rt.settings)

    async def ingest(stream: Any) -> None:
        records = stream.noack()
        async for event in records.events():
            msg = event.message
            origin = Origin(msg.topic, msg.partition, msg.offset, msg.key, msg.value)
            sent = await _ingest_one(rt, origin, allowed, limits)
            rt.forwards.ack_after(sent, processed_ack(records, event))

    ingest.__name__ = f"ingest_{topic_name.replace('.', '_').replace('-', '_')}"
    return ingest


async def _ingest_one(
    rt: Runtime, origin: Origin, allowed: frozenset[str], limits: Limits
) -> list[Awaitable[Any]]:
    """Forward or dead-letter one record; an exception costs that record, not the stream.
    What is returned resolves when the broker has what was sent."""
    try:
        routed = _route(origin, allowed, limits)
    except Exception as exc:  # a bug triggered by one input must not stop metering
        routed = _internal_error(origin, exc)
    if isinstance(routed, Rejection):
        return await _dead_letter(rt, origin, routed)
    key, value = routed
    try:
        return [await _send(rt.metering, key, value)]
    except Exception as exc:  # not broker trouble (that is waited out): the record's own
        return await _dead_letter(rt, origin, _internal_error(origin, exc))


def _route(
    origin: Origin, allowed: frozenset[str], limits: Limits
) -> tuple[bytes, bytes] | Rejection:
    """The metering topic's key and value, or why the record cannot be metered."""
    message = decode_input(origin.value, origin.topic, allowed, limits, datetime.now(UTC))
    if isinstance(message, Rejection):
        return message
    source = f"{origin.topic}/{origin.partition}/{origin.offset}"
    value = encode_for_metering(message.model_copy(update={"source": source}))
    if isinstance(value, Rejection):
        return value
    return message.event.api_owner.encode(), value


def _internal_error(origin: Origin, exc: Exception) -> Rejection:
    throttled.warning(
        "internal_error",
        "internal error on %s[%d]@%d",
        origin.topic,
        origin.partition,
        origin.offset,
        exc=exc,
    )
    return Rejection("internal_error", f"{type(exc).__name__}: {exc}")


async def _dead_letter(rt: Runtime, origin: Origin, rejection: Rejection) -> list[Awaitable[Any]]:
    """A dead letter that cannot be sent is logged and counted (reason label `unsent`):
    losing the trace of a bad record must not cost the good ones behind it, nor stop the
    worker, so the broker refusing it later is not an error for the record's ack."""
    try:
        key, value = dead_letter(rejection, origin, rt.settings.dead_letter_max_payload_bytes)
        sent = await _send(rt.outputs[DEAD_LETTER_TOPIC], key, value)
    except Exception as exc:
        _unsent(rt, origin, rejection, exc)
        return []
    rt.metrics.dead_letters.labels(rejection.reason).inc()
    return [asyncio.ensure_future(_settled_or_unsent(rt, origin, rejection, sent))]


async def _settled_or_unsent(
    rt: Runtime, origin: Origin, rejection: Rejection, sent: Awaitable[Any]
) -> None:
    try:
        await sent
    except Exception as exc:
        _unsent(rt, origin, rejection, exc)


def _unsent(rt: Runtime, origin: Origin, rejection: Rejection, exc: Exception) -> None:
    rt.metrics.dead_letters.labels("unsent").inc()
    throttled.warning(
        "dead_letter_unsent",
        "dead letter (%s) for %s[%d]@%d not sent",
        rejection.reason,
        origin.topic,
        origin.partition,
        origin.offset,
        exc=exc,
    )


async def _send(topic: TopicT, key: bytes | None, value: bytes) -> Awaitable[Any]:
    """Broker trouble is waited out, never turned into a dead letter: a valid event
    dead-lettered because the broker was away would be area lost. Anything else raises.
    Returns the send's future, which resolves when the broker acknowledges it."""
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            return await topic.send(key=key, value=value)
        except Exception as exc:
            if not _broker_trouble(exc):
                raise
            throttled.warning("broker", "send to %s waits for the broker", topic, exc=exc)
        await asyncio.sleep(delay)
        delay = min(2 * delay, RETRY_MAX_SECONDS)


def _broker_trouble(exc: BaseException) -> bool:
    """Faust wraps aiokafka's errors (ProducerSendError from KafkaError): look through."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, KafkaTimeoutError | KafkaConnectionError):
            return True
        if isinstance(cause, KafkaError):
            return bool(cause.retriable)
        cause = cause.__cause__
    return False
