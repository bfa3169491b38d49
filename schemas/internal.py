"""Messages on the internal, owner-keyed metering topic.

Events, clock ticks and admin commands share one topic so that every change of an
owner's state happens in order, inside stream processing, where table writes belong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from schemas.events import EventEnvelope


class EventMessage(BaseModel):
    kind: Literal["event"] = "event"
    event: EventEnvelope
    wkb: str | None = Field(None, description="Normalised geometry, hex WKB.")
    source: str | None = Field(
        None,
        description="topic/partition/offset of the input record: the same event forwarded "
        "twice by a restarted ingest agent is not a duplicate sent upstream.",
    )


class TickMessage(BaseModel):
    kind: Literal["tick"] = "tick"
    now: datetime


class QuotaMessage(BaseModel):
    kind: Literal["quota"] = "quota"
    contract_id: str
    quota_m2: float | None
    now: datetime


class ApiKeyMessage(BaseModel):
    """An admin created or revoked an owner's API key; only its sha256 travels."""

    kind: Literal["api_key"] = "api_key"
    api_owner: str
    key_sha256: str
    revoke: bool = False
    now: datetime


MeteringMessage = Annotated[
    EventMessage | TickMessage | QuotaMessage | ApiKeyMessage, Field(discriminator="kind")
]
