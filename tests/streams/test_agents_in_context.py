"""The real Faust agents, run by Faust's own test harness (`Agent.test_context()`), with
no broker: what the per-record tests (test_ingest.py, test_metering.py) drive by hand
with fakes is checked here as Faust wires it, stream, event, table and topic included.
The test plays the broker, acknowledging sends when it chooses; what stands in for what
is not there is listed in tests/support/agents.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import dumps, loads
from streams import ingest, metering
from streams.replay import TOPIC_OF_TYPE
from streams.runtime import DEAD_LETTER_TOPIC, RECORDS_TOPIC, build_runtime
from streams.settings import Settings
from streams.topics import metering_topic
from tests.streams.test_decode import event
from tests.support.agents import Broker, Harness, Sent, harness, put, quiet, until

BOUNDARIES = TOPIC_OF_TYPE["fieldBoundaryCreated"]
METERING = metering_topic(Settings().app_id)
CHANGELOG = f"{Settings().app_id}-state-changelog"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Harness]:
    """The project's runtime and its real ingest and metering agents, on a memory store
    and a producer that never reaches a network."""
    rt = build_runtime(Settings(store="memory://", data_dir=tmp_path, partitions=1))
    ingest.register(rt)
    metering.register(rt)
    async with harness(rt) as h:
        yield h


def boundary(**fields: Any) -> bytes:
    """A valid boundary event dated now: ingest checks event time against the real clock."""
    return dumps(event("fieldBoundaryCreated", timestamp=datetime.now(UTC).isoformat(), **fields))


# ---- ingest -------------------------------------------------------------------------


async def test_ingest_forwards_a_valid_event_and_acks_it_only_once_the_broker_has_it(
    world: Harness,
) -> None:
    """A commit covering a forward the broker never acknowledged loses the event."""
    broker = world.broker
    async with world.agent(f"ingest-{BOUNDARIES}").test_context() as agent:
        sent = await put(agent, boundary(), key=b"upstream-key")
        await until(lambda: len(broker.to(METERING)) == 1)
        [forward] = broker.to(METERING)
        assert forward.key == b"owner@example.com"  # re-keyed by API owner
        body = loads(forward.value)
        assert body["event"]["id"] == "evt-1" and body["wkb"]
        assert body["source"] == f"{BOUNDARIES}/0/{sent.message.offset}"
        assert broker.to(DEAD_LETTER_TOPIC) == []
        await quiet(broker)
        assert not sent.message.acked  # buffered by the producer is not enough
        broker.acknowledge()
        await until(lambda: sent.message.acked)


@pytest.mark.parametrize(
    ("bad", "reason", "encoding"),
    [
        (boundary(id="evt\x1f2"), "invalid_id", "utf-8"),
        (b"\xff\xfe garbage \x00", "bad_json", "base64"),
    ],
    ids=["control-character-in-id", "garbage-bytes"],
)
async def test_ingest_dead_letters_a_bad_record_and_goes_on(
    world: Harness, bad: bytes, reason: str, encoding: str
) -> None:
    """No record may stop an ingest agent: metering of every owner on its partitions
    would stop with it. The bad record is dead-lettered, with the reason and the bytes to
    replay it, and committed; the next record is forwarded."""
    broker = world.broker
    async with world.agent(f"ingest-{BOUNDARIES}").test_context() as agent:
        rejected = await put(agent, bad, key=b"bad-key")
        await until(lambda: len(broker.to(DEAD_LETTER_TOPIC)) == 1)
        [letter] = broker.to(DEAD_LETTER_TOPIC)
        body = loads(letter.value)
        assert letter.key == b"bad-key"
        assert body["reason"] == reason and body["error"]
        assert (body["topic"], body["partition"], body["offset"]) == (
            BOUNDARIES, 0, rejected.message.offset)
        assert body["payloadEncoding"] == encoding and body["payloadSize"] == len(bad)
        assert broker.to(METERING) == []
        assert world.rt.metrics.dead_letters.labels(reason)._value.get() == 1

        following = await put(agent, boundary(id="evt-2"))
        await until(lambda: len(broker.to(METERING)) == 1)
        assert loads(broker.to(METERING)[0].value)["event"]["id"] == "evt-2"
        await until(lambda: rejected.message.acked and following.message.acked,
                    acknowledge=broker)


# ---- metering -----------------------------------------------------------------------


async def forwards(world: Harness, *inputs: bytes) -> list[Sent]:
    """What the real ingest agent sends to the metering topic for `inputs`, acknowledged."""
    broker = world.broker
    before = len(broker.to(METERING))
    async with world.agent(f"ingest-{BOUNDARIES}").test_context() as agent:
        for value in inputs:
            await put(agent, value)
        await until(lambda: len(broker.to(METERING)) == before + len(inputs),
                    acknowledge=broker)
    return broker.to(METERING)[before:]


def usage_records(broker: Broker) -> list[dict[str, Any]]:
    return [loads(s.value) for s in broker.to(RECORDS_TOPIC)]


async def test_metering_sends_the_usage_record_only_after_the_state_behind_it_is_durable(
    world: Harness,
) -> None:
    """A record sent before its table writes could outlive them (issue 7); an ack before
    either would let a commit skip the message. Checked on Faust's own table: every
    write a message makes must pass through ChangelogAcks."""
    broker = world.broker
    [forward] = await forwards(world, boundary())
    async with world.agent("metering").test_context() as agent:
        metered = await put(agent, forward.value, key=forward.key)
        await until(lambda: len(broker.to(CHANGELOG)) > 0)
        await quiet(broker)
        assert usage_records(broker) == [] and not metered.message.acked

        while broker.acknowledge(CHANGELOG):  # until none is left unacknowledged
            await quiet(broker)
        await until(lambda: len(usage_records(broker)) == 1)
        await quiet(broker)
        assert not metered.message.acked  # the record is not acknowledged yet

        broker.acknowledge(RECORDS_TOPIC)
        await until(lambda: metered.message.acked)
    assert world.rt.state  # the writes landed in the table itself


async def test_metering_counts_a_boundary_once_and_marks_its_redelivery_a_duplicate(
    world: Harness,
) -> None:
    """The same event sent twice upstream is read by ingest twice, at two offsets: the
    second is a duplicate with no area, or the owner pays twice for one field."""
    broker = world.broker
    first, again = await forwards(world, boundary(), boundary())
    async with world.agent("metering").test_context() as agent:
        metered = [await put(agent, f.value, key=f.key) for f in (first, again)]
        await until(lambda: len(usage_records(broker)) == 2 and all(
            e.message.acked for e in metered), acknowledge=broker)

    # Not necessarily in input order: the duplicate writes nothing, so its record leaves
    # at once, while the first one's waits for its changelog writes to be acknowledged.
    records = usage_records(broker)
    [counted] = [r for r in records if r["reason"] is None]
    [duplicate] = [r for r in records if r["reason"] is not None]
    assert counted["eventId"] == duplicate["eventId"] == "evt-1"
    assert counted["counted"] is True
    assert counted["areaAddedOwnerM2"] > 0 and counted["areaAddedUserM2"] > 0
    assert duplicate["counted"] is False and duplicate["reason"] == "duplicate"
    assert duplicate["areaAddedOwnerM2"] == 0 == duplicate["areaAddedUserM2"]
    assert duplicate["byProduct"] == {}


async def test_metering_reading_its_own_message_again_sends_nothing(world: Harness) -> None:
    """A metering message read again (a restart re-reads what it had not committed) is
    our replay, not an upstream duplicate: a second record would tell billing the owner
    sent the event twice."""
    broker = world.broker
    [forward] = await forwards(world, boundary())
    async with world.agent("metering").test_context() as agent:
        first = await put(agent, forward.value, key=forward.key)
        await until(lambda: first.message.acked, acknowledge=broker)
        replayed = await put(agent, forward.value, key=forward.key)
        await until(lambda: replayed.message.acked, acknowledge=broker)
        await quiet(broker)
    assert [r["counted"] for r in usage_records(broker)] == [True]
