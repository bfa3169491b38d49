"""Messages on the internal, owner-keyed metering topic.

Events, clock ticks and admin commands share one topic so that every change of an
owner's state happens in order, inside stream processing, where table writes belong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from aggregates.api_keys import KeyAction
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
    """An owner's API key was created, revoked or used; only its sha256 travels. A
    worker reports a key's use at most once a minute (streams/api/keys.py)."""

    kind: Literal["api_key"] = "api_key"
    api_owner: str
    key_sha256: str
    action: KeyAction = KeyAction.CREATE
    now: datetime


class WebhookEndpointMessage(BaseModel):
    """An owner registered a webhook endpoint (url and secret) or removed one (neither)."""

    kind: Literal["webhook_endpoint"] = "webhook_endpoint"
    api_owner: str
    endpoint_id: str
    url: str | None = None
    secret: str | None = None
    now: datetime


class WebhookAttemptMessage(BaseModel):
    """A worker tried to deliver a webhook message once; the owner's metering partition
    records the result, so retries survive the worker."""

    kind: Literal["webhook_attempt"] = "webhook_attempt"
    api_owner: str
    endpoint_id: str
    message_id: str
    attempt: int = Field(ge=1)
    status: int | None
    error: str | None
    at: datetime


MeteringMessage = Annotated[
    EventMessage
    | TickMessage
    | QuotaMessage
    | ApiKeyMessage
    | WebhookEndpointMessage
    | WebhookAttemptMessage,
    Field(discriminator="kind"),
]
