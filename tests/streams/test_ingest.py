"""The ingest agent's per-record step: whatever fails, the record ends somewhere and the
agent goes on. Topics are in-memory stand-ins; the ingest code is the real one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from schemas.codec import dumps, loads
from schemas.events import TOPIC_TYPES
from streams import ingest
from streams.decode import Limits, Origin
from streams.metrics import Metrics
from streams.runtime import DEAD_LETTER_TOPIC
from streams.settings import Settings
from tests.streams.test_decode import LIMITS, event

TOPIC = "events.provider-files"


class Topic:
    """Records what is sent; raises the queued failures first, one per send. Like
    Faust's, a send returns a future the broker's acknowledgement resolves: here the
    test does, through `acks`."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.acks: list[asyncio.Future[None]] = []

    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((key, value))
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


def runtime(metering: Topic, letters: Topic) -> Any:
    return SimpleNamespace(
        settings=Settings(),
        metrics=Metrics(),
        metering=metering,
        outputs={DEAD_LETTER_TOPIC: letters},
    )


def fresh() -> bytes:
    """A valid event dated now: the agent step reads the real clock."""
    return dumps(event(timestamp=datetime.now(UTC).isoformat()))


def dead_letters(rt: Any, reason: str) -> float:
    return float(rt.metrics.dead_letters.labels(reason)._value.get())


async def run(rt: Any, value: bytes, limits: Limits = LIMITS) -> list[Awaitable[Any]]:
    return await ingest._ingest_one(
        rt, Origin(TOPIC, 1, 7, b"key", value), TOPIC_TYPES[TOPIC], limits)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "RETRY_FIRST_SECONDS", 0.001)


async def test_valid_event_is_forwarded_keyed_by_owner() -> None:
    rt = runtime(metering := Topic(), letters := Topic())
    await run(rt, fresh())
    assert [key for key, _ in metering.sent] == [b"owner@example.com"]
    assert letters.sent == []


async def test_what_a_record_waits_for_is_the_brokers_acknowledgement_of_its_forward() -> None:
    rt = runtime(metering := Topic(), Topic())
    [sent] = await run(rt, fresh())
    waiting = asyncio.gather(sent)
    await asyncio.sleep(0)
    assert not waiting.done()  # buffered is not enough to ack the input record
    metering.acks[0].set_result(None)
    await waiting


async def test_a_dead_letter_the_broker_refuses_later_is_counted_and_not_an_error() -> None:
    rt = runtime(Topic(), letters := Topic())
    [sent] = await run(rt, b"{not json")
    letters.acks[0].set_exception(MessageSizeTooLargeError())
    await sent
    assert dead_letters(rt, "unsent") == 1


async def test_exception_while_decoding_becomes_internal_error() -> None:
    rt = runtime(metering := Topic(), letters := Topic())
    broken = Limits(10_000, max_event_age=timedelta(days=999_999_999), max_clock_skew=timedelta())
    await run(rt, fresh(), broken)  # now - age overflows: a bug stand-in
    assert metering.sent == []
    [(key, value)] = letters.sent
    body = loads(value)
    assert key == b"key" and body["reason"] == "internal_error"
    assert body["error"].startswith("OverflowError: ") and "\n" not in body["error"]
    assert dead_letters(rt, "internal_error") == 1


async def test_broker_trouble_on_forward_is_waited_out_not_dead_lettered() -> None:
    trouble = ProducerSendError("send failed")
    trouble.__cause__ = KafkaConnectionError()
    rt = runtime(metering := Topic(trouble, KafkaConnectionError()), letters := Topic())
    await run(rt, fresh())
    assert len(metering.sent) == 1 and letters.sent == []


async def test_record_error_on_forward_becomes_internal_error() -> None:
    refused = ProducerSendError("send failed")
    refused.__cause__ = MessageSizeTooLargeError()
    rt = runtime(metering := Topic(refused), letters := Topic())
    await run(rt, fresh())
    assert metering.sent == []
    assert loads(letters.sent[0][1])["reason"] == "internal_error"


async def test_dead_letter_that_cannot_be_sent_is_counted_and_the_agent_goes_on() -> None:
    rt = runtime(metering := Topic(), Topic(ValueError("refused")))
    await run(rt, b"{not json")
    assert dead_letters(rt, "unsent") == 1 and dead_letters(rt, "bad_json") == 0
    await run(rt, fresh())  # the next record still flows
    assert len(metering.sent) == 1
