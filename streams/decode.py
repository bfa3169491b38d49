"""Turning raw input records into owner-keyed metering messages, or into rejections."""

from __future__ import annotations

from dataclasses import dataclass

import shapely
from pydantic import ValidationError

from aggregates import GeometryError, normalize_geometry
from aggregates.records import MeterEvent
from schemas.codec import JSONDecodeError, loads
from schemas.events import EventEnvelope, InputEvent
from schemas.internal import EventMessage


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record cannot be metered; it goes to the dead-letter topic as it came."""

    reason: str
    error: str


def decode_input(
    raw: bytes | None, topic: str, allowed: frozenset[str], max_vertices: int
) -> EventMessage | Rejection:
    """Validate envelope and geometry; FAILED events keep no geometry since they add none."""
    if raw is None:
        return Rejection("empty", "record has no value")
    try:
        event = InputEvent.model_validate(loads(raw))
    except JSONDecodeError as exc:
        return Rejection("bad_json", f"not JSON: {exc}")
    except ValidationError as exc:
        return Rejection("invalid_event", _summarise(exc))
    if event.type not in allowed:
        return Rejection("wrong_topic", f"type {event.type} does not belong on {topic}")
    envelope = EventEnvelope.model_validate(event.model_dump(exclude={"geometry"}))
    if event.status == "FAILED" or event.geometry is None:
        return EventMessage(event=envelope)
    try:
        geom = normalize_geometry(event.geometry, max_vertices=max_vertices)
    except GeometryError as exc:
        return Rejection(f"geometry_{exc.reason}", str(exc))
    return EventMessage(event=envelope, wkb=shapely.to_wkb(geom, hex=True))


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
