"""Ingest agents, one per input topic: validate, normalise, re-key by API owner."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from schemas.codec import dumps
from schemas.events import TOPIC_TYPES
from schemas.internal import EventMessage
from schemas.outputs import DeadLetterOut
from streams.app import DEAD_LETTER_TOPIC, Runtime
from streams.decode import Rejection, decode_input


def register(rt: Runtime) -> None:
    for name, topic in rt.inputs.items():
        rt.app.agent(topic, name=f"ingest-{name}")(_ingest_agent(rt, name))


def _ingest_agent(rt: Runtime, topic_name: str) -> Callable[[Any], Awaitable[None]]:
    allowed = TOPIC_TYPES[topic_name]

    async def ingest(stream: AsyncIterator[Any]) -> None:
        async for event in stream.events():  # type: ignore[attr-defined]
            result = decode_input(event.value, topic_name, allowed, rt.settings.max_vertices)
            if isinstance(result, Rejection):
                await _dead_letter(rt, event.message, result)
            else:
                await _forward(rt, result)
            rt.metrics.observe_lag(rt.app.consumer, event.message)

    ingest.__name__ = f"ingest_{topic_name.replace('.', '_').replace('-', '_')}"
    return ingest


async def _forward(rt: Runtime, message: EventMessage) -> None:
    await rt.metering.send(
        key=message.event.api_owner.encode(), value=dumps(message.model_dump(mode="json"))
    )


async def _dead_letter(rt: Runtime, message: Any, rejection: Rejection) -> None:
    """Keep the original bytes (as text when they are UTF-8) so the record can be replayed."""
    raw: bytes = message.value or b""
    try:
        payload, encoding = raw.decode(), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(raw).decode(), "base64"
    letter = DeadLetterOut(
        error=rejection.error,
        reason=rejection.reason,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        payload=payload,
        payload_encoding=encoding,
    )
    rt.metrics.dead_letters.labels(rejection.reason).inc()
    await rt.outputs[DEAD_LETTER_TOPIC].send(key=message.key, value=dumps(letter.to_wire()))
