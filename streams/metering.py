"""The metering agent: owner-keyed messages in, state writes and usage outputs out."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from faust.types import StreamT
from pydantic import TypeAdapter, ValidationError

from aggregates.meter import Meter, Outcome
from schemas.codec import dumps
from schemas.internal import (
    ApiKeyMessage,
    EventMessage,
    MeteringMessage,
    QuotaMessage,
    TickMessage,
)
from schemas.outputs import DailySnapshotOut, QuotaAlertOut, UsageRecordOut
from streams.api.keys import key_outcome
from streams.app import ALERTS_TOPIC, DAILY_TOPIC, RECORDS_TOPIC, Runtime
from streams.decode import to_domain
from streams.topics import partition_of

Message = EventMessage | TickMessage | QuotaMessage | ApiKeyMessage
_messages: TypeAdapter[Message] = TypeAdapter(MeteringMessage)


def register(rt: Runtime) -> None:
    def _invalidate(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Owners may have moved: rebuild the Meter from the table before the next use."""
        rt.holder.invalidate()

    rt.app.on_partitions_assigned.connect(_invalidate)
    rt.app.on_partitions_revoked.connect(_invalidate)

    @rt.app.agent(rt.metering, name="metering")
    async def metering(stream: StreamT[Any]) -> None:
        async for event in stream.events():  # type: ignore[attr-defined]
            try:
                message = _messages.validate_json(event.value)
            except ValidationError:
                continue  # only this app writes the topic; an unreadable record is not ours
            outcome = _handle(rt, rt.holder.get(), message, event.message.partition)
            _persist(rt, outcome)
            await _emit(rt, outcome)
            rt.metrics.observe_lag(rt.app.consumer, event.message)


def _handle(rt: Runtime, meter: Meter, message: Message, partition: int) -> Outcome:
    if isinstance(message, ApiKeyMessage):
        return key_outcome(message)  # API keys live in the owner's partition of the table
    if isinstance(message, TickMessage):
        rt.metrics.pieces.set(sum(ledger.piece_count for ledger in meter.ledgers.values()))
        return meter.tick(
            message.now, owns=lambda owner: partition_of(owner, rt.settings.partitions) == partition
        )
    if isinstance(message, QuotaMessage):
        if message.contract_id not in meter.contracts:
            return Outcome()
        return meter.set_quota(message.contract_id, message.quota_m2, message.now)
    started = time.perf_counter()
    outcome = meter.apply(to_domain(message), datetime.now(UTC))
    rt.metrics.latency.observe(time.perf_counter() - started)
    _count(rt, outcome)
    return outcome


def _persist(rt: Runtime, outcome: Outcome) -> None:
    """Written in the order the core listed them; the event's marker comes last."""
    for key, value in outcome.writes:
        if value is None:
            rt.state.pop(key, None)
        else:
            rt.state[key] = value


async def _emit(rt: Runtime, outcome: Outcome) -> None:
    if outcome.record is not None:
        record = UsageRecordOut.model_validate(outcome.record)
        await rt.outputs[RECORDS_TOPIC].send(
            key=outcome.record.api_owner.encode(), value=dumps(record.to_wire())
        )
    for alert in outcome.alerts:
        await rt.outputs[ALERTS_TOPIC].send(
            key=alert.contract_id.encode(),
            value=dumps(QuotaAlertOut.model_validate(alert).to_wire()),
        )
    for snap in outcome.snapshots:
        body = DailySnapshotOut.model_validate(snap)
        rt.metrics.snapshots.labels(str(snap.final).lower()).inc()
        await rt.outputs[DAILY_TOPIC].send(key=snap.key.encode(), value=dumps(body.to_wire()))


def _count(rt: Runtime, outcome: Outcome) -> None:
    record = outcome.record
    if record is None:
        return
    rt.metrics.events.labels(record.type, record.reason or "counted").inc()
    for product, area in record.by_product.items():
        if area.owner_m2 > 0:
            rt.metrics.area_added.labels(product).inc(area.owner_m2)
