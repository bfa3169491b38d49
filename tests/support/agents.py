"""The project's real Faust agents, run by Faust's own test harness (`Agent.test_context()`),
with no broker. Used by the agent tests (tests/streams/test_agents_in_context.py), which
play the broker by hand, and by the API tests (tests/api), whose state is whatever the
agents wrote.

What stands in for what is not there:

* The producer, the one seam to the broker. `test_context()` swaps the agent's input
  channel, not its outputs: a `Topic.send` or a table write still goes through the app's
  producer, which would connect to Kafka. `app.producer` is replaced by `Broker`, a
  subclass of Faust's base `Producer`, so `Topic.send`, `FutureMessage`, the
  `ProducerBuffer` that carries table changelog writes and the send callbacks are all
  Faust's own; the test plays the broker by acknowledging sends when it chooses, and
  reads what was sent.
* Delivery: a send on the metering topic reaches the metering agent only because the
  test hands its bytes to the agent's `put` (by hand, or through `Pipeline`).
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
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import pytest
from faust.transport.producer import Producer
from faust.types import TP, AgentT, EventT
from faust.types.tuples import RecordMetadata

from streams.runtime import Runtime
from streams.ticks import send_ticks
from streams.topics import partition_of

WAIT = 5.0  # seconds; everything here happens in milliseconds


@dataclass
class Sent:
    """One record handed to the broker, and the future its acknowledgement resolves."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None
    timestamp: float | None
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
        self.sent.append(Sent(topic, key, value or b"", partition, timestamp, ack))
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


async def put(agent: Any, value: bytes, key: bytes | None = None, **record: Any) -> EventT:
    """Hand one record to the agent under test, as its consumer would; `record` takes
    the rest of what a consumer reads with it (partition, timestamp)."""
    put_event: EventT = await asyncio.wait_for(agent.put(value, key=key, **record), WAIT)
    return put_event


@dataclass
class Harness:
    """A runtime whose agents run under Faust's test harness, and the broker they send to."""

    rt: Runtime
    broker: Broker

    def agent(self, name: str) -> AgentT:
        return self.rt.app.agents[name]


@asynccontextmanager
async def harness(rt: Runtime) -> AsyncIterator[Harness]:
    """`rt`, its agents already registered, on a producer that never reaches a network."""
    rt.app.finalize()
    broker = Broker(rt.app.transport, loop=asyncio.get_running_loop())
    rt.app.producer = broker
    try:
        yield Harness(rt, broker)
    finally:
        # An ack still waiting when the loop closes is cancelled, and DurableAcks ends the
        # process on a cancelled write: every send is acknowledged before the loop goes.
        await until(lambda: broker.buffer.size == 0)
        broker.acknowledge()
        await asyncio.sleep(0.02)
        await broker.stop()
        gc.unfreeze()  # the metering agent froze this test's objects (streams/collector.py)


class Pipeline:
    """Every ingest agent and the metering agent running at once, the harness playing a
    healthy single-worker Kafka between them: every send is acknowledged, and whatever
    reaches the metering topic (ingest's forwards, ticks, the API's quota and key
    messages) is delivered to the metering agent in the partition its key selects,
    stamped on arrival with `clock`'s time, which the agent meters as arrival time."""

    def __init__(self, harness: Harness, clock: Callable[[], datetime]) -> None:
        self.harness = harness
        self.clock = clock
        self.topic = harness.rt.metering.get_topic_name()
        self._contexts = AsyncExitStack()
        self._ingest: dict[str, Any] = {}
        self._metering: Any = None
        self._read: list[EventT] = []  # every record an agent was handed
        self._delivered = 0  # of the sends to the metering topic
        self._delivery: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pipeline:
        enter = self._contexts.enter_async_context
        self._metering = await enter(self.harness.agent("metering").test_context())
        for name in self.harness.rt.inputs:
            self._ingest[name] = await enter(self.harness.agent(f"ingest-{name}").test_context())
        self._delivery = asyncio.create_task(self._deliver())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                await self.settled()
        finally:
            assert self._delivery is not None
            self._delivery.cancel()
            await self._contexts.aclose()

    async def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """One record on an input topic, read by that topic's ingest agent."""
        self._read.append(await put(self._ingest[topic], value, key=key))

    async def send(self, key: bytes, value: bytes) -> None:
        """One message on the metering topic, as the API and `acreage keys create` send it."""
        await self.harness.rt.metering.send(key=key, value=value)

    async def tick(self, now: datetime) -> None:
        """The leader's tick, at `now`, to every metering partition."""
        await send_ticks(self.harness.rt, now)

    async def settled(self) -> None:
        """Wait until everything sent has been delivered and every record read is acked:
        what the agents wrote is then all in the table and the holder's Meters."""
        await until(self._idle, acknowledge=self.harness.broker)

    def _idle(self) -> bool:
        """every send delivered to its agent and every record acked"""
        assert self._delivery is not None
        if self._delivery.done():
            self._delivery.result()  # raises what stopped delivery
        broker = self.harness.broker
        return (
            self._delivered == len(broker.to(self.topic))
            and broker.buffer.size == 0
            and all(e.message.acked for e in self._read)
        )

    async def _deliver(self) -> None:
        """The broker and the metering agent's consumer: acknowledge what was sent, and
        hand what reached the metering topic to the agent, in the order it was sent."""
        broker = self.harness.broker
        while True:
            broker.acknowledge()
            for sent in broker.to(self.topic)[self._delivered:]:
                self._read.append(await put(
                    self._metering, sent.value, key=sent.key, partition=self._partition(sent),
                    timestamp=sent.timestamp or self.clock().timestamp()))
                self._delivered += 1
            await asyncio.sleep(0.005)

    def _partition(self, sent: Sent) -> int:
        """The partition the producer's default partitioner picks for the key."""
        if sent.partition is not None:
            return sent.partition
        assert sent.key is not None, "a metering message is keyed or addressed"
        return partition_of(sent.key.decode(), self.harness.rt.settings.partitions)
