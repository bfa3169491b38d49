"""The real Faust agents, run by Faust's own test harness (`Agent.test_context()`), with
no broker: what the per-record tests (test_ingest.py, test_metering.py) drive by hand
with fakes is checked here as Faust wires it, stream, event, table and topic included.

Both kinds of agent run under the harness. What stands in for what is not there:

* The producer, the one seam to the broker. `test_context()` swaps the agent's input
  channel, not its outputs: a `Topic.send` or a table write still goes through the app's
  producer, which would connect to Kafka. `app.producer` is replaced by `Broker`, a
  subclass of Faust's base `Producer`, so `Topic.send`, `FutureMessage`, the
  `ProducerBuffer` that carries table changelog writes and the send callbacks are all
  Faust's own; the test plays the broker by acknowledging sends when it chooses, and
  reads what was sent.
* Delivery: a forward on the metering topic reaches the metering agent only because
  the test hands the bytes ingest sent to the metering agent's `put`.
* The store is `memory://`, not RocksDB, so MeterHolder's RocksDB reads
  (`_db_for_partition`) are not exercised here; the real-broker tests in
  tests/integration cover them.
* There is no consumer group: no rebalance signal fires (the holder builds a partition's
  Meter on its first message, as it does after a real assignment), and nothing commits,
  so streams/faust_guards.py's commit guards are not exercised. An ack is observed as
  Faust's `Message.acked`, which is what the consumer would commit from.

The changelog acknowledgements the metering agent waits on (streams/acks.py) do not block
it here: `ChangelogAcks` wraps the real `Table.send_changelog`, and its futures resolve
when `Broker` acknowledges the changelog records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faust.transport.producer import Producer
from faust.types import TP, AgentT, EventT
from faust.types.tuples import RecordMetadata

from schemas.codec import dumps, loads
from streams import ingest, metering
from streams.replay import TOPIC_OF_TYPE
from streams.runtime import DEAD_LETTER_TOPIC, RECORDS_TOPIC, Runtime, build_runtime
from streams.settings import Settings
from streams.topics import metering_topic
from tests.streams.test_decode import event

BOUNDARIES = TOPIC_OF_TYPE["fieldBoundaryCreated"]
METERING = metering_topic(Settings().app_id)
CHANGELOG = f"{Settings().app_id}-state-changelog"
WAIT = 5.0  # seconds; everything here happens in milliseconds


@dataclass
class Sent:
    """One record handed to the broker, and the future its acknowledgement resolves."""

    topic: str
    key: bytes | None
    value: bytes
    ack: asyncio.Future[RecordMetadata]


class Broker(Producer):
    """Faust's base producer with the network cut out: sends are kept, in order, and are
    acknowledged only when the test says so, as a broker would some time later."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Sent] = []

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        ack: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.sent.append(Sent(topic, key, value or b"", ack))
        return ack

    async def flush(self) -> None:
        await self.buffer.flush()

    def to(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]

    def acknowledge(self, topic: str | None = None) -> int:
        """Acknowledge every pending send (to `topic` only, if given); how many."""
        pending = [s for s in self.sent if not s.ack.done() and topic in (None, s.topic)]
        for n, s in enumerate(pending):
            s.ack.set_result(RecordMetadata(s.topic, 0, TP(s.topic, 0), n, time.time(), 0))
        return len(pending)


async def until(condition: Callable[[], bool], *, acknowledge: Broker | None = None) -> None:
    """Wait for `condition`, acknowledging every send meanwhile if given a broker; fail
    after WAIT seconds. The agents run as tasks, so their effects come a few steps later."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {condition.__doc__ or condition}")
        if acknowledge is not None:
            acknowledge.acknowledge()
        await asyncio.sleep(0.005)


async def quiet(broker: Broker) -> None:
    """Let the agent run until it has nothing left to send: Faust's producer buffer (table
    writes) is drained and a few loop turns bring nothing new."""
    await until(lambda: broker.buffer.size == 0)
    for _ in range(10):
        await asyncio.sleep(0.005)


@dataclass
class World:
    rt: Runtime
    broker: Broker

    def agent(self, name: str) -> AgentT:
        return self.rt.app.agents[name]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The project's runtime and its real ingest and metering agents, on a memory store
    and a producer that never reaches a network."""
    rt = build_runtime(Settings(store="memory://", data_dir=tmp_path, partitions=1))
    ingest.register(rt)
    metering.register(rt)
    rt.app.finalize()
    broker = Broker(rt.app.transport, loop=asyncio.get_running_loop())
    rt.app.producer = broker
    yield World(rt, broker)
    # An ack still waiting when the loop closes is cancelled, and DurableAcks ends the
    # process on a cancelled write: every send is acknowledged before the loop goes.
    await until(lambda: broker.buffer.size == 0)
    broker.acknowledge()
    await asyncio.sleep(0.02)
    await broker.stop()


async def put(agent: Any, value: bytes, key: bytes | None = None) -> EventT:
    """Hand one record to the agent under test, as its consumer would."""
    put_event: EventT = await asyncio.wait_for(agent.put(value, key=key), WAIT)
    return put_event


def boundary(**fields: Any) -> bytes:
    """A valid boundary event dated now: ingest checks event time against the real clock."""
    return dumps(event("fieldBoundaryCreated", timestamp=datetime.now(UTC).isoformat(), **fields))


# ---- ingest -------------------------------------------------------------------------


async def test_ingest_forwards_a_valid_event_and_acks_it_only_once_the_broker_has_it(
    world: World,
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
    world: World, bad: bytes, reason: str, encoding: str
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


async def forwards(world: World, *inputs: bytes) -> list[Sent]:
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
    world: World,
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
    world: World,
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


async def test_metering_reading_its_own_message_again_sends_nothing(world: World) -> None:
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
