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


COMPACTED = {"cleanup.policy": "compact"}


def metering_topic(app_id: str) -> str:
    return f"{app_id}-metering"


def changelog_topic(app_id: str) -> str:
    """The state table's changelog, by the name Faust gives it."""
    return f"{app_id}-state-changelog"


def consumed_topics(app_id: str) -> frozenset[str]:
    """What the worker's consumer group reads and is measured on: lag, /ready, `status`."""
    return frozenset({*TOPIC_TYPES, metering_topic(app_id)})


def internal_topics(app_id: str) -> dict[str, tuple[int | None, dict[str, str]]]:
    """Faust's own topics, by the names Faust gives them, with partitions (None: the app's
    count) and configs. Faust would create them itself, but a worker that joins before
    they exist is assigned without them and sits idle until its next metadata refresh
    (minutes), so every worker creates them before its consumer joins."""
    return {
        metering_topic(app_id): (None, {}),
        changelog_topic(app_id): (None, COMPACTED),
        f"{app_id}-__assignor-__leader": (1, {}),
    }


def _new_topics(settings: Settings) -> list[NewTopic]:
    """The daily topic is compacted: a consumer wants the latest revision per key."""
    specs: dict[str, tuple[int | None, dict[str, str]]] = {
        **{
            name: (None, COMPACTED if name == DAILY_TOPIC else {})
            for name in (*TOPIC_TYPES, *OUTPUT_TOPICS)
        },
        **internal_topics(settings.app_id),
    }
    return [
        NewTopic(name, num_partitions=partitions or settings.partitions, replication_factor=1,
                 topic_configs=configs)
        for name, (partitions, configs) in specs.items()
    ]


async def _ensure(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers())
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
