"""The embedded broker is real Kafka: transactions and compaction work on one node."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.settings import Settings
from streams.topics import DAILY_TOPIC, ensure_topics
from tests.support.kafka import Broker


async def _transactions(bootstrap: str) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="probe-tx")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send("tx-probe", b"committed")
        await producer.begin_transaction()
        await producer.send("tx-probe", b"aborted")
        await producer.abort_transaction()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "tx-probe",
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
        return [m.value for msgs in batch.values() for m in msgs if m.value is not None]
    finally:
        await consumer.stop()


async def _cleanup_policy(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        configs = {c[0]: c[1] for c in described[0].resources[0][4]}
        return str(configs["cleanup.policy"])
    finally:
        await admin.close()


def test_transactions_commit_and_abort(broker: Broker) -> None:
    assert asyncio.run(_transactions(broker.bootstrap)) == [b"committed"]


def test_spec_topics_created_with_partitions_and_compaction(broker: Broker) -> None:
    settings = Settings(broker=f"kafka://{broker.bootstrap}", partitions=3)
    ensure_topics(settings)
    ensure_topics(settings)  # idempotent: a second worker starting finds them
    assert asyncio.run(_cleanup_policy(broker.bootstrap, DAILY_TOPIC)) == "compact"
