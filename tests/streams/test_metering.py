"""The metering agent's step, on a real Meter: a message read again after a crash must be
metered as it was the first time, whenever the worker reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from aggregates.meter import Meter
from schemas.internal import EventMessage, TickMessage
from streams import metering
from streams.metrics import Metrics
from streams.settings import Settings
from tests.streams.test_decode import decode, event

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
