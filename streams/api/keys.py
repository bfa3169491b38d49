"""Owner API keys in the state table: written in-stream, read by the owner's worker.

A key record lives under `k␟apiOwner␟sha256` in the owner's partition of the state table,
so it is replicated by the changelog and survives restarts like every metering record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aggregates.meter import Outcome
from aggregates.state import Kind, dump, key
from schemas.internal import ApiKeyMessage


def key_record(api_owner: str, sha256: str) -> str:
    return key(Kind.API_KEY, api_owner, sha256)


def key_outcome(message: ApiKeyMessage) -> Outcome:
    """The metering agent's whole job for a key command: one table write (or delete)."""
    value = None if message.revoke else dump({"createdAt": message.now.isoformat()})
    return Outcome(writes=[(key_record(message.api_owner, message.key_sha256), value)])


def create_message(api_owner: str, sha256: str, now: datetime) -> ApiKeyMessage:
    return ApiKeyMessage(api_owner=api_owner, key_sha256=sha256, now=now)


class TableKeys:
    """Looks keys up in the worker's own partitions of the state table."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def exists(self, api_owner: str, sha256: str) -> bool:
        return self._table.get(key_record(api_owner, sha256)) is not None


# ---- `acreage keys create` ---------------------------------------------------------------


def create_from_cli(settings: Any, api_owner: str) -> int:
    """Sends the same message POST /admin/api-keys sends, for an owner that endpoint
    would accept; prints the key once."""
    import asyncio
    from datetime import UTC

    from aiokafka.errors import KafkaError
    from pydantic import ValidationError

    from schemas.api import ApiKeyIn
    from streams.api.auth import fingerprint, new_owner_key
    from streams.cli_errors import CliError, broker_error

    try:
        ApiKeyIn.model_validate({"apiOwner": api_owner})
    except ValidationError as exc:
        raise CliError(f"--owner {api_owner!r}: {exc.errors()[0]['msg']}") from exc
    token = new_owner_key(api_owner)
    message = create_message(api_owner, fingerprint(token), datetime.now(UTC))
    servers = settings.bootstrap_servers()
    try:
        asyncio.run(_send(servers, settings.app_id, api_owner, message))
    except (KafkaError, OSError) as exc:
        raise broker_error(servers, exc) from exc
    print(token)
    return 0


async def _send(
    bootstrap: list[str], app_id: str, api_owner: str, message: ApiKeyMessage
) -> None:
    """Only into an existing metering topic: auto-creating it would get the wrong partitions."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    from schemas.codec import dumps
    from streams.cli_errors import CliError
    from streams.topics import metering_topic

    topic = metering_topic(app_id)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            raise CliError(f"topic {topic} not found: start a worker first")
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, dumps(message.model_dump(mode="json")),
                                     key=api_owner.encode())
    finally:
        await producer.stop()
