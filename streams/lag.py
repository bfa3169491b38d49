"""Consumer lag of the whole group, read from the broker rather than from Faust.

Lag is end offset minus the group's committed offset, for every partition of every
topic the app consumes, whoever owns it: a partition assigned to no one, or owned by a
stuck consumer, shows lag that does not fall. The old per-message gauge read 0 in both
cases, since it moved only when a message was processed. `LagReader` uses clients of
its own, so it keeps reading while Faust's consumer is stuck or rebalancing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.group import MemberAssignment

Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Member:
    """Who holds a partition, as the broker's group description names them."""

    member_id: str
    client_id: str
    host: str


@dataclass(frozen=True)
class Group:
    """The group's state and which member each partition of our topics is assigned to."""

    state: str
    members: int
    assignment: Mapping[Partition, Member]


@dataclass(frozen=True)
class Offsets:
    """One reading of the group's partitions; `committed` is None where the group has
    never committed (it then starts from the beginning: auto_offset_reset=earliest)."""

    beginning: Mapping[Partition, int]
    end: Mapping[Partition, int]
    committed: Mapping[Partition, int | None]

    def lag(self) -> dict[Partition, int]:
        return lag_by_partition(self.beginning, self.end, self.committed)


def caught_up(lag: int, max_lag: int) -> bool:
    """The one rule /ready and `acreage status` share."""
    return lag <= max_lag


def lag_by_partition(
    beginning: Mapping[Partition, int],
    end: Mapping[Partition, int],
    committed: Mapping[Partition, int | None],
) -> dict[Partition, int]:
    """Records the group has yet to commit, per partition of `end`."""
    lag = {}
    for tp, last in end.items():
        position = committed.get(tp)
        start = position if position is not None else beginning.get(tp, 0)
        lag[tp] = max(0, last - start)
    return lag


class LagReader:
    """Reads `Offsets` for the group's topics, at most `timeout` seconds per reading.

    A failed reading closes the clients; the next one connects afresh, so a broker
    that comes back is found again without any state carried over.
    """

    def __init__(
        self, bootstrap: list[str], group: str, topics: Iterable[str], timeout: float = 10.0
    ) -> None:
        self._bootstrap = bootstrap
        self._group = group
        self._topics = frozenset(topics)
        self._timeout = timeout
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self) -> Offsets:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._read()
        except Exception:
            await self.close()
            raise

    async def _read(self) -> Offsets:
        admin, consumer = await self._clients()
        # Metadata of all topics, not of ours by name: naming a missing topic would make
        # the broker auto-create it with its default partition count, before Faust
        # creates it with ours (the table's changelog then refuses to match).
        tps = [
            TopicPartition(topic["topic"], p["partition"])
            for topic in await admin.describe_topics()
            if topic["topic"] in self._topics and topic["error_code"] == 0
            for p in topic["partitions"]
        ]
        if not tps:
            return Offsets({}, {}, {})
        committed = await admin.list_consumer_group_offsets(self._group, partitions=tps)
        end = await consumer.end_offsets(tps)
        beginning = await consumer.beginning_offsets(tps)
        return Offsets(
            beginning={(tp.topic, tp.partition): o for tp, o in beginning.items()},
            end={(tp.topic, tp.partition): o for tp, o in end.items()},
            committed={
                (tp.topic, tp.partition): (
                    meta.offset if (meta := committed.get(tp)) and meta.offset >= 0 else None
                )
                for tp in tps
            },
        )

    async def group(self) -> Group:
        """Read apart from `read`: only `acreage status` needs to know who holds what."""
        try:
            async with asyncio.timeout(self._timeout):
                admin, _ = await self._clients()
                response = (await admin.describe_consumer_groups([self._group]))[0]
        except Exception:
            await self.close()
            raise
        return group_of(response.to_object()["groups"][0], self._topics)

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        timeout_ms = int(self._timeout * 1000)
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap, request_timeout_ms=timeout_ms
            )
            await admin.start()
            self._admin = admin
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                enable_auto_commit=False,
                request_timeout_ms=timeout_ms,
            )
            await consumer.start()
            self._consumer = consumer
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if admin is not None:
            await admin.close()
        if consumer is not None:
            await consumer.stop()


def group_of(description: Mapping[str, Any], topics: Set[str]) -> Group:
    """A DescribeGroups entry decoded: Faust's assignor sends the standard consumer
    assignment (its own data rides in `user_data`), so the plain decoder reads it."""
    assignment = {}
    for member in description["members"]:
        holder = Member(
            member["member_id"], member["client_id"], member["client_host"].lstrip("/")
        )
        if not member["member_assignment"]:
            continue
        decoded = MemberAssignment.decode(member["member_assignment"])
        for topic, partitions in decoded.assignment:
            if topic in topics:
                assignment.update({(topic, p): holder for p in partitions})
    return Group(str(description["state"]), len(description["members"]), assignment)
