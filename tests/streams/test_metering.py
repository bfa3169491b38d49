"""The metering agent's step, on a real Meter: a message read again after a crash must be
metered as it was the first time, whenever the worker reads it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from aggregates.meter import Meter
from schemas.codec import loads
from schemas.internal import EventMessage, TickMessage
from streams import metering
from streams.acks import ChangelogAcks, DurableAcks
from streams.decode import encode_for_metering
from streams.holder import PartitionState
from streams.metrics import Metrics
from streams.runtime import RECORDS_TOPIC
from streams.settings import Settings
from tests.streams.test_decode import decode, event
from tests.support.tables import scan_of

WAIT = timedelta(minutes=10)
WRITTEN = datetime(2026, 3, 1, 12, tzinfo=UTC)  # when the record reached the log


def record(offset: int, at: datetime) -> Any:
    return SimpleNamespace(partition=0, offset=offset, timestamp=at.timestamp())


def handle(meter: Meter, message: Any, offset: int, at: datetime = WRITTEN) -> Any:
    rt = SimpleNamespace(
        settings=Settings(), metrics=Metrics(), holder=SimpleNamespace(meters=lambda: [meter])
    )
    return metering._handle(rt, meter, message, record(offset, at))


def test_an_operation_waits_from_when_its_record_was_written_not_when_it_is_read() -> None:
    """The wait once started on this worker's clock: a replay read minutes later held the
    operation past the tick that had released it, and two operations of one field were
    released in the other order, each claiming the other's area (issue 7 soak)."""
    operation = decode(event("operationProcessingFinished"))
    assert isinstance(operation, EventMessage)
    meter = Meter(grace=timedelta(0), field_wait=WAIT)
    assert handle(meter, operation, offset=1).records == []  # held for its field
    too_early = TickMessage(now=WRITTEN + WAIT - timedelta(seconds=1))
    assert handle(meter, too_early, offset=2).records == []
    released = handle(meter, TickMessage(now=WRITTEN + WAIT), offset=3).records
    assert [r.event_id for r in released] == ["evt-1"]


class ChangelogTable(dict[str, bytes]):
    """A Faust table: every write also sends a changelog record, here a future the test
    settles as the broker would acknowledge it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[asyncio.Future[Any]] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append(fut)
        return fut

    def __setitem__(self, key: str, value: bytes) -> None:
        super().__setitem__(key, value)
        self.send_changelog(key, value)

    def pop(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.send_changelog(key, None)
        return super().pop(key, default)


class Topic:
    """An output topic whose sends the test acknowledges."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.acks: list[asyncio.Future[Any]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[Any]:
        self.sent.append(loads(value))
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


class Stream:
    """A `noack` stream of metering records that notes which offsets were acked."""

    def __init__(self, *records: Any) -> None:
        self.records = records
        self.acked: list[int] = []
        self.app = SimpleNamespace(consumer=SimpleNamespace())

    async def events(self) -> Any:
        for message in self.records:
            yield SimpleNamespace(message=message)

    async def ack(self, event: Any) -> bool:
        self.acked.append(event.message.offset)
        return True


async def settle(futures: list[asyncio.Future[Any]]) -> None:
    for fut in futures:
        fut.set_result(None)
    await asyncio.sleep(0.01)


async def test_a_usage_record_leaves_only_once_the_state_behind_it_is_durable() -> None:
    """Sent at once, a record outlived its changelog writes when the worker stopped with
    the broker away; the event was metered again after later ones and got a second,
    different record (issue 7, CI of 2026-12-03)."""
    boundary = decode(event("fieldBoundaryCreated"))
    assert isinstance(boundary, EventMessage)
    value = encode_for_metering(boundary)
    assert isinstance(value, bytes)
    table, records = ChangelogTable(), Topic()
    state = PartitionState(Meter(grace=timedelta(0), field_wait=WAIT))
    rt = SimpleNamespace(
        settings=Settings(),
        metrics=Metrics(),
        state=table,
        holder=SimpleNamespace(state_for=partial(_ready, state),
                               reader=lambda partition: table.get,
                               scan=lambda partition, lo, hi: scan_of(table)(lo, hi)),
        outputs={RECORDS_TOPIC: records},
        changelog=ChangelogAcks(table, stopping=lambda: False),  # type: ignore[arg-type]
        record_sends=DurableAcks(lambda: False, "usage record send"),
    )
    stream = Stream(SimpleNamespace(
        topic="metering", partition=0, offset=7, tp=TP("metering", 0),
        timestamp=WRITTEN.timestamp(), key=b"owner@example.com", value=value,
    ))
    await metering._meter_each(rt, stream)  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert table.sent and records.sent == []  # its writes are not acknowledged yet
    await settle(table.sent)
    assert [r["eventId"] for r in records.sent] == ["evt-1"]
    assert stream.acked == []  # nor is the record
    await settle(records.acks)
    assert stream.acked == [7]


async def _ready(state: PartitionState, partition: int, offset: int) -> PartitionState:
    """A holder whose partition's Meter is built already."""
    return state
