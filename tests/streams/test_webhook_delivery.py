"""The courier against real HTTP receivers on 127.0.0.1: a dead receiver holds only its
own endpoint's few slots, never the deliveries owed to anyone else; and such a receiver
is reached only when the operator allows non-public targets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from aggregates.state import Write
from aggregates.webhooks import (
    ALERT_EVENT,
    Endpoint,
    decode_delivery,
    encode_endpoint,
    endpoint_key,
    owed,
    payload,
)
from schemas.codec import loads
from streams.metrics import Metrics
from streams.settings import Settings
from streams.webhook_delivery import Courier, post

NOW = datetime.now(UTC)
SECRET = "whsec_c2VjcmV0LW9mLXRoZS10ZXN0"
PER_ENDPOINT = 4


class Table(dict[str, bytes]):
    """Partition 0 of the state table, read as the courier reads the holder."""

    def serving(self) -> list[int]:
        return [0]

    def reader(self, partition: int) -> Any:
        return self.get

    def prefixed(self, partition: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        return iter(sorted((k, v) for k, v in self.items() if k.startswith(prefix)))

    def apply(self, writes: list[Write]) -> None:
        self.update({k: v for k, v in writes if v is not None})


class Metering:
    """The metering topic: the results the courier sends back."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.results.append(loads(value))


async def serve(handler: Any) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@pytest.fixture
async def hanging() -> AsyncIterator[str]:
    """A receiver that accepts connections and answers only when the test is over."""
    over = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await over.wait()
        return web.Response(status=204)

    async for url in serve(hang):
        yield url
        over.set()


@pytest.fixture
async def accepting() -> AsyncIterator[tuple[str, list[str]]]:
    """A receiver that verifies each request and keeps its webhook-id."""
    ids: list[str] = []

    async def accept(request: web.Request) -> web.Response:
        Webhook(SECRET).verify(await request.read(), dict(request.headers))
        ids.append(request.headers["webhook-id"])
        return web.Response(status=204)

    async for url in serve(accept):
        yield url, ids


def owe(table: Table, owner: str, url: str, count: int, at: datetime) -> None:
    hook = Endpoint("ep_" + owner[:4], url, SECRET, at)
    table[endpoint_key(owner, hook.endpoint_id)] = encode_endpoint(hook)
    bodies = [(ALERT_EVENT, payload(ALERT_EVENT, {"n": n, "owner": owner}, at))
              for n in range(count)]
    table.apply(owed(owner, [hook], bodies, at, table.get))


async def test_a_dead_receiver_holds_only_its_own_slots(
    hanging: str, accepting: tuple[str, list[str]]
) -> None:
    live_url, received = accepting
    table, metering = Table(), Metering()
    owe(table, "dead@example.com", hanging, 20, NOW - timedelta(minutes=5))  # due first
    owe(table, "live@example.com", live_url, 5, NOW)
    rt = SimpleNamespace(holder=table, metering=metering, metrics=Metrics(),
                         settings=Settings(webhook_timeout_seconds=5,
                                           webhook_per_endpoint=PER_ENDPOINT,
                                           webhook_private_targets=True))
    courier = Courier(rt)  # type: ignore[arg-type]
    for _ in range(3):
        courier.sweep(NOW)
        await asyncio.sleep(0.3)
    assert len(received) == len(set(received)) == 5
    assert sorted(r["api_owner"] for r in metering.results) == ["live@example.com"] * 5
    assert {(r["attempt"], r["status"]) for r in metering.results} == {(1, 204)}
    assert courier.busy[("dead@example.com", "ep_dead")] == PER_ENDPOINT
    assert rt.metrics.webhook_backlog._value.get() == 25  # noqa: SLF001 - results unapplied
    for task in courier.tasks:
        task.cancel()


@pytest.mark.parametrize(("host", "reason"), [
    ("127.0.0.1", "127.0.0.1 is not a public address"),
    ("localhost", "localhost resolves to no public address"),  # a name: checked resolved
])
async def test_a_receiver_on_a_private_address_is_not_reached_unless_allowed(
    accepting: tuple[str, list[str]], host: str, reason: str
) -> None:
    url, received = accepting
    hook = Endpoint("ep_priv", url.replace("127.0.0.1", host), SECRET, NOW)
    [(key, raw)] = owed("o@example.com", [hook], [(ALERT_EVENT, payload(ALERT_EVENT, {}, NOW))],
                        NOW, {}.get)
    assert raw is not None
    d = decode_delivery(key, raw)
    at = datetime.now(UTC)  # signed now: the receiver refuses a timestamp minutes old
    status, error = await post(hook, d, at, 5.0)
    assert status is None and error is not None and reason in error, error
    assert received == []
    assert await post(hook, d, at, 5.0, private_targets=True) == (204, None)
    assert len(received) == 1
