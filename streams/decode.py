"""Turning raw input records into owner-keyed metering messages, or into rejections.

Everything here is pure (the clock comes in as `now`), so every rule about what ingest
accepts can be tested without Kafka.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import shapely
from pydantic import ValidationError

from aggregates import GeometryError, normalize_geometry
from aggregates.geometry import AreaTooLarge
from aggregates.records import MeterEvent
from schemas.codec import JSONDecodeError, dumps, loads
from schemas.events import EventEnvelope, InputEvent
from schemas.internal import EventMessage
from schemas.outputs import DeadLetterOut
from streams.settings import Settings

# Faust's producer refuses requests over 1,000,000 bytes and the broker's default limit
# is 1 MiB. A geometry within max_vertices can still densify to 200,000 vertices, which
# is 6.4 MB of hex WKB, so the encoded message itself is bounded here.
MAX_METERING_MESSAGE_BYTES = 900_000
MAX_ERROR_CHARS = 1000

# Validation error types raised by schemas.events that are reasons of their own.
_OWN_REASONS = ("timestamp_out_of_range", "invalid_id")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record cannot be metered; it goes to the dead-letter topic as it came."""

    reason: str
    error: str


@dataclass(frozen=True, slots=True)
class Limits:
    """What ingest accepts, apart from the envelope's own rules (schemas.events)."""

    max_vertices: int
    max_event_age: timedelta
    max_clock_skew: timedelta
    max_area_m2: float = float("inf")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_vertices=settings.max_vertices,
            max_event_age=timedelta(days=settings.max_event_age_days),
            max_clock_skew=timedelta(seconds=settings.max_clock_skew_seconds),
            max_area_m2=settings.max_event_area_km2 * 1e6,
        )


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from, and the record: all a dead letter needs to replay it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def decode_input(
    raw: bytes | None, topic: str, allowed: frozenset[str], limits: Limits, now: datetime
) -> EventMessage | Rejection:
    """Validate envelope, event time and geometry; FAILED events keep no geometry since
    they add none."""
    if raw is None:
        return Rejection("empty", "record has no value")
    try:
        event = InputEvent.model_validate(loads(raw))
    except JSONDecodeError as exc:
        return Rejection("bad_json", f"not JSON: {exc}")
    except ValidationError as exc:
        return Rejection(_reason(exc), _summarise(exc))
    if event.type not in allowed:
        return Rejection("wrong_topic", f"type {event.type} does not belong on {topic}")
    implausible = check_event_time(event.timestamp, now, limits)
    if implausible is not None:
        return implausible
    envelope = EventEnvelope.model_validate(event.model_dump(exclude={"geometry"}))
    if event.status == "FAILED" or event.geometry is None:
        return EventMessage(event=envelope)
    try:
        geom = normalize_geometry(
            event.geometry, max_vertices=limits.max_vertices, max_area_m2=limits.max_area_m2
        )
    except AreaTooLarge as exc:
        return Rejection(exc.reason, str(exc))
    except GeometryError as exc:
        return Rejection(f"geometry_{exc.reason}", str(exc))
    return EventMessage(event=envelope, wkb=shapely.to_wkb(geom, hex=True))


def check_event_time(timestamp: datetime, now: datetime, limits: Limits) -> Rejection | None:
    """An event dated 1970 would move a contract's start back 56 years, and one dated 9999
    has no term the core can compute: only a window around `now` is plausible."""
    earliest, latest = now - limits.max_event_age, now + limits.max_clock_skew
    if earliest <= timestamp <= latest:
        return None
    return Rejection(
        "timestamp_out_of_range",
        f"timestamp {timestamp.isoformat()} is outside the plausible window "
        f"{earliest.isoformat()} .. {latest.isoformat()}",
    )


def encode_for_metering(message: EventMessage) -> bytes | Rejection:
    """The metering topic's value; a message the producer would refuse is rejected here,
    where it costs one dead letter instead of the ingest agent."""
    value = dumps(message.model_dump(mode="json"))
    if len(value) > MAX_METERING_MESSAGE_BYTES:
        return Rejection(
            "too_large",
            f"normalised event is {len(value)} bytes, over the "
            f"{MAX_METERING_MESSAGE_BYTES} the metering topic takes",
        )
    return value


def dead_letter(
    rejection: Rejection, origin: Origin, max_payload: int
) -> tuple[bytes | None, bytes]:
    """Key and value of the dead letter. The original is kept (text when it is UTF-8,
    base64 otherwise) but cut to `max_payload` bytes, and the key likewise: a dead letter
    the broker refuses would leave the record with no trace at all."""
    raw = origin.value or b""
    payload, encoding, kept = _payload(raw, max_payload)
    letter = DeadLetterOut(
        error=_one_line(rejection.error)[:MAX_ERROR_CHARS],
        reason=rejection.reason,
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
        payload=payload,
        payload_encoding=encoding,
        payload_truncated=kept < len(raw),
        payload_size=len(raw),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
    )
    key = origin.key[:max_payload] if origin.key is not None else None
    return key, dumps(letter.to_wire())


def _payload(raw: bytes, limit: int) -> tuple[str, str, int]:
    """(payload, encoding, original bytes it holds): at most `limit` bytes once in the
    JSON value; base64 of a prefix for what is not text."""
    try:
        raw.decode()
    except UnicodeDecodeError:
        prefix = raw[: limit // 4 * 3]
        return base64.b64encode(prefix).decode(), "base64", len(prefix)
    text = _cut_text(raw, limit)
    return text, "utf-8", len(text.encode())


def _cut_text(raw: bytes, limit: int) -> str:
    """Cut on a character boundary, counting JSON escapes: a control character takes six
    bytes (\\u0001) on the wire, so the cut text may need to be shorter still."""
    text = raw[:limit].decode(errors="ignore")  # drops only a character cut in two
    while (size := len(dumps(text)) - 2) > limit:
        text = text[: len(text) * limit // size]
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(exc: ValidationError) -> str:
    """A bad id or an unrepresentable timestamp has its own reason; the rest of what the
    envelope rules catch is `invalid_event`."""
    types = {err["type"] for err in exc.errors()}
    return next((reason for reason in _OWN_REASONS if reason in types), "invalid_event")


def _summarise(exc: ValidationError) -> str:
    """One line per problem, with the camelCase field path the producer used."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors()
    )


def to_domain(message: EventMessage) -> MeterEvent:
    ev = message.event
    geometry = shapely.from_wkb(message.wkb) if message.wkb else None
    return MeterEvent(
        event_id=ev.id,
        type=ev.type,
        timestamp=ev.timestamp,
        api_owner=ev.api_owner,
        leaf_user_id=ev.leaf_user_id,
        status=ev.status,
        field_id=ev.field_id,
        provider=ev.provider,
        geometry=geometry,
    )
