"""The metering agent: owner-keyed messages in, state writes and usage outputs out.

Per message: the pure Meter computes an Outcome and its writes go to the table; the
message is acked only once the broker has acknowledged those writes, so no commit covers
a write that could still be lost (streams/acks.py). Its writes go between each owner's
journal records (aggregates/journal.py). Its usage records are sent once those writes are
acknowledged, and the ack waits for them too; a rebuild re-sends the records of the
messages it will read again. Its snapshots and alerts wait in the partition's outbox. A
tick sends the outbox once the bookkeeping that numbers them is durable, then records per
owner that they were sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from faust.types import StreamT
from pydantic import TypeAdapter, ValidationError

from aggregates.journal import bracket
from aggregates.meter import Meter, Outcome
from aggregates.overlay import cut_in_parts
from aggregates.records import UsageRecord
from aggregates.state import Write
from schemas.codec import dumps
from schemas.internal import (
    ApiKeyMessage,
    EventMessage,
    MeteringMessage,
    QuotaMessage,
    TickMessage,
    WebhookAttemptMessage,
    WebhookEndpointMessage,
)
from schemas.outputs import DailySnapshotOut, QuotaAlertOut, UsageRecordOut
from streams.acks import Ack
from streams.api.keys import key_outcome
from streams.collector import Freezer
from streams.decode import Origin, Rejection, dead_letter, to_domain
from streams.faust_guards import processed_ack
from streams.holder import PartitionState
from streams.runtime import ALERTS_TOPIC, DAILY_TOPIC, DEAD_LETTER_TOPIC, RECORDS_TOPIC, Runtime
from streams.topics import partition_of
from streams.webhooks import attempt_outcome, endpoint_outcome, owed_for, retry_policy

log = logging.getLogger(__name__)

Message = (
    EventMessage
    | TickMessage
    | QuotaMessage
    | ApiKeyMessage
    | WebhookEndpointMessage
    | WebhookAttemptMessage
)
_messages: TypeAdapter[Message] = TypeAdapter(MeteringMessage)
_PERSIST_SLICE = 256  # writes stored (or outputs sent) between two turns of the loop
_T = TypeVar("_T")


def register(rt: Runtime) -> None:
    topic = rt.metering.get_topic_name()

    def _revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        rt.holder.revoked()

    def _assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs["assigned"]
        rt.holder.assigned(tp.partition for tp in assigned if tp.topic == topic)

    rt.app.on_partitions_revoked.connect(_revoked)
    rt.app.on_partitions_assigned.connect(_assigned)

    @rt.app.agent(rt.metering, name="metering")
    async def metering(stream: StreamT[Any]) -> None:
        await _meter_each(rt, stream.noack())  # type: ignore[attr-defined]


async def _meter_each(rt: Runtime, stream: Any) -> None:
    """Acks are ours (a `noack` stream): a message is acked once its table writes and its
    usage records are durable, and never if the agent is stopped halfway through it."""
    freezer = Freezer()
    async for event in stream.events():
        records = await _meter_one(rt, event.message)
        ack = processed_ack(stream, event)
        rt.changelog.ack_after_writes(partial(_send_then, rt, records, ack) if records else ack)
        freezer.between_messages()


async def _send_then(rt: Runtime, records: list[UsageRecord], ack: Ack) -> None:
    """Runs once the message's table writes are acknowledged. A record sent before them
    could outlive them: a worker stopped with the broker away lost the writes, the event
    was metered again after later ones, and the same event had two different records
    (issue 7). Sent from here, a record on the broker is the one its stored marker would
    re-send."""
    rt.record_sends.ack_after([_send_records(rt, records)], ack)


async def _meter_one(rt: Runtime, record: Any) -> list[UsageRecord]:
    """Returns the usage records to send once the message's writes are durable."""
    try:
        message = _messages.validate_json(record.value)
    except ValidationError:
        return []  # only this app writes the topic; an unreadable record is not ours
    state = await rt.holder.state_for(record.partition, record.offset)
    records, state.pending.records = state.pending.records, []  # a rebuild's, sent once
    outcome = await _meter_and_store(rt, state.meter, message, record)
    if outcome is None:
        return records
    _count(rt, outcome)
    records += outcome.records
    state.pending.alerts.extend(outcome.alerts)
    state.pending.snapshots.extend(outcome.snapshots)
    if isinstance(message, TickMessage):
        rt.metrics.pieces.set(sum(m.bounded.piece_count for m in rt.holder.meters()))
        await _flush(rt, state, record.offset)
    return records


async def _meter_and_store(
    rt: Runtime, meter: Meter, message: Message, record: Any
) -> Outcome | None:
    """The message metered and its writes stored in the table; None if it failed (then
    dead-lettered). A message that may cost more than the loop can spare is metered and
    journalled in a thread and stored a slice at a time, the partition's readers waiting
    (MeterHolder.changing)."""
    off_loop = _off_loop(meter, message)
    async with rt.holder.changing(record.partition) if off_loop else nullcontext():
        try:
            outcome = await _run(off_loop, partial(_handle_owed, rt, meter, message, record))
        except Exception as exc:  # noqa: BLE001 - one input must not stop metering
            await _failed(rt, record, exc)
            return None
        writes = await _run(off_loop, partial(bracket, outcome.writes, record.offset,
                                              rt.state.get))
        if off_loop:
            await _persist_paced(rt, writes)
        else:
            _persist(rt, writes)
    return outcome


async def _run(off_loop: bool, work: Callable[[], _T]) -> _T:
    return await asyncio.to_thread(work) if off_loop else work()


def _off_loop(meter: Meter, message: Message) -> bool:
    """A satellite scene's add costs 0.2-1.5 s a ledger; a field's costs less than a
    thread's hand-over would save. A delete carries no shape, but deleting (or
    redrawing) a field as wide as a scene costs as much as re-uniting what lies under
    it. A tick's cost grows with the owners and days it closes (~0.2 ms an owner's
    snapshot, ~0.2 s for 1,000 owners at a day's end), and ticks are too rare for the
    hand-over to matter."""
    if isinstance(message, TickMessage):
        return True
    if not isinstance(message, EventMessage):
        return False
    if message.wkb is not None and cut_in_parts(len(message.wkb) // 2):  # hex: 2 a byte
        return True
    ev = message.event
    return (ev.type.startswith("fieldBoundary") and ev.field_id is not None
            and cut_in_parts(meter.fields.widest(ev.api_owner, ev.leaf_user_id, ev.field_id)))


def _handle_owed(rt: Runtime, meter: Meter, message: Message, record: Any) -> Outcome:
    """With the webhook deliveries of the message's alerts and final days, journalled
    with it."""
    outcome = _handle(rt, meter, message, record)
    outcome.writes += owed_for(outcome, rt.holder.reader(record.partition),
                               partial(rt.holder.scan, record.partition))
    return outcome


def _handle(rt: Runtime, meter: Meter, message: Message, record: Any) -> Outcome:
    """Every time the Meter is given comes from the log (a tick's `now`, an event's record
    timestamp), never from this worker's clock: a replay after a crash must hold, release
    and alert exactly as the first pass did, or the same event gets a different record."""
    partition, seq = record.partition, record.offset
    if isinstance(message, ApiKeyMessage):
        return key_outcome(message, rt.state.get)  # in the owner's partition of the table
    if isinstance(message, WebhookEndpointMessage | WebhookAttemptMessage):
        return _webhook(rt, message, partition)
    if isinstance(message, TickMessage):
        return meter.tick(
            message.now,
            seq,
            owns=lambda owner: partition_of(owner, rt.settings.partitions) == partition,
        )
    if isinstance(message, QuotaMessage):
        if message.contract_id not in meter.contracts:
            return Outcome()
        return meter.set_quota(message.contract_id, message.quota_m2, message.now, seq)
    with rt.metrics.latency.time():
        arrived = datetime.fromtimestamp(record.timestamp, UTC)
        return meter.apply(to_domain(message), arrived, seq, message.source)


def _webhook(
    rt: Runtime, message: WebhookEndpointMessage | WebhookAttemptMessage, partition: int
) -> Outcome:
    """Webhook records live in the owner's partition of the table, as API keys do."""
    scan = partial(rt.holder.scan, partition)
    if isinstance(message, WebhookEndpointMessage):
        return endpoint_outcome(message, scan)
    return attempt_outcome(message, rt.holder.reader(partition), scan,
                           retry_policy(rt.settings))


async def _failed(rt: Runtime, record: Any, exc: Exception) -> None:
    """The Meter's memory may be half-changed, but nothing reached the table: dropping
    the Meter makes the next message rebuild it exactly as it was before this one."""
    rt.holder.drop(record.partition)
    rt.metrics.metering_errors.inc()
    log.error("metering failed at %s[%d]@%d", record.topic, record.partition, record.offset,
              exc_info=exc)
    origin = Origin(record.topic, record.partition, record.offset, record.key, record.value)
    rejection = Rejection("internal_error", f"{type(exc).__name__}: {exc}")
    key, value = dead_letter(rejection, origin, rt.settings.dead_letter_max_payload_bytes)
    await rt.outputs[DEAD_LETTER_TOPIC].send(key=key, value=value)
    rt.metrics.dead_letters.labels(rejection.reason).inc()


def _persist(rt: Runtime, writes: Iterable[Write]) -> None:
    """Written in the order given: a message's writes for each owner between that owner's
    journal records (aggregates/journal.py), so a crash halfway is undone at the rebuild."""
    for key, value in writes:
        if value is None:
            rt.state.pop(key, None)
        else:
            rt.state[key] = value


async def _persist_paced(rt: Runtime, writes: list[Write]) -> None:
    """A scene's ~3,000 writes held the loop ~80 ms: stored a slice at a time, while
    readers of the partition wait (MeterHolder.changing) if they read what they change."""
    for start in range(0, len(writes), _PERSIST_SLICE):
        _persist(rt, writes[start:start + _PERSIST_SLICE])
        await asyncio.sleep(0)


async def _send_records(rt: Runtime, records: Iterable[UsageRecord]) -> None:
    sends = []
    for record in records:
        body = UsageRecordOut.model_validate(record)
        sends.append(await rt.outputs[RECORDS_TOPIC].send(
            key=record.api_owner.encode(), value=dumps(body.to_wire())
        ))
    await asyncio.gather(*sends)


async def _flush(rt: Runtime, state: PartitionState, seq: int) -> None:
    """Bookkeeping first, then the outputs it numbers, then the mark that they arrived.

    A failure leaves everything pending for the next tick: outputs may then be sent twice,
    always with the same revision and content, and never lost.
    """
    pending = state.pending
    if not pending.snapshots and not pending.alerts:
        return
    try:
        await rt.changelog.settled()  # the bookkeeping that numbers them
        acks = [await _send_alert(rt, a) for a in pending.alerts]
        for n, snapshot in enumerate(pending.snapshots, 1):
            acks.append(await _send_snapshot(rt, snapshot))
            if n % _PERSIST_SLICE == 0:  # a day's end sends one per owner, scope and day
                await asyncio.sleep(0)
        await asyncio.gather(*acks)
    except Exception as exc:  # noqa: BLE001 - the broker may be away; retried next tick
        log.warning("outputs not sent yet (%d pending): %s", len(pending.snapshots) +
                    len(pending.alerts), exc)
        return
    owners = {a.api_owner for a in pending.alerts} | {s.api_owner for s in pending.snapshots}
    state.pending = Outcome()
    await _persist_paced(rt, [state.meter.sent(owner, seq) for owner in sorted(owners)])


async def _send_alert(rt: Runtime, alert: Any) -> Any:
    return await rt.outputs[ALERTS_TOPIC].send(
        key=alert.contract_id.encode(), value=dumps(QuotaAlertOut.model_validate(alert).to_wire())
    )


async def _send_snapshot(rt: Runtime, snap: Any) -> Any:
    rt.metrics.snapshots.labels(str(snap.final).lower()).inc()
    body = DailySnapshotOut.model_validate(snap)
    return await rt.outputs[DAILY_TOPIC].send(key=snap.key.encode(), value=dumps(body.to_wire()))


def _count(rt: Runtime, outcome: Outcome) -> None:
    for record in outcome.records:
        rt.metrics.events.labels(record.type, record.reason or "counted").inc()
        for product, area in record.by_product.items():
            if area.owner_m2 > 0:
                rt.metrics.area_added.labels(product).inc(area.owner_m2)
