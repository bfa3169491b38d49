"""Creating the SPEC's topics before a worker subscribes: Faust only creates its own."""

from __future__ import annotations

import asyncio
import contextlib
from functools import lru_cache

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from schemas.events import TOPIC_TYPES
from streams.settings import Settings

DAILY_TOPIC = "usage.consumption-daily"
OUTPUT_TOPICS = ("usage.records", DAILY_TOPIC, "usage.alerts", "usage.dead-letter")


def _new_topics(settings: Settings) -> list[NewTopic]:
    """The daily topic is compacted: a consumer wants the latest revision per key."""
    return [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=1,
            topic_configs={"cleanup.policy": "compact"} if name == DAILY_TOPIC else {},
        )
        for name in (*TOPIC_TYPES, *OUTPUT_TOPICS)
    ]


async def _ensure(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker.removeprefix("kafka://"))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in _new_topics(settings) if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(missing)
    finally:
        await admin.close()


@lru_cache(maxsize=65_536)
def partition_of(api_owner: str, partitions: int) -> int:
    """The partition a message keyed by `api_owner` lands in: aiokafka's default
    partitioner, which Faust's producer uses for the owner-keyed metering topic."""
    ids = list(range(partitions))
    return int(DefaultPartitioner()(api_owner.encode(), ids, ids))


def ensure_topics(settings: Settings) -> None:
    asyncio.run(_ensure(settings))
