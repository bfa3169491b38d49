"""Webhooks on a real broker and worker, to a real receiver that is down for a while.

The receiver is an aiohttp server on 127.0.0.1 that checks every request with
standardwebhooks' `Webhook.verify`. It refuses connections at first, then answers 503,
then accepts. Every quota alert and final day the worker put on Kafka must arrive
verified, once, with the id its content gives it; the second test kills the worker while
deliveries are pending and a new worker delivers them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from shapely.geometry import box, mapping
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from aggregates.webhooks import ALERT_EVENT, FINAL_DAY_EVENT, message_id, payload
from tests.support.kafka import (
    Broker,
    Worker,
    free_port,
    produce_events,
    read_topic,
    wait_for_group,
    wait_until,
)

pytestmark = pytest.mark.integration

ADMIN = "webhook-admin-key"
OWNER = "hooked@example.com"
DAYS = range(2, 9)  # event days, this many days ago: all of them final at once (no grace)
ENV = {
    "ACREAGE_ADMIN_KEY": ADMIN,
    "ACREAGE_GRACE_SECONDS": "0",
    "ACREAGE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "ACREAGE_WEBHOOK_RETRY_CAP_SECONDS": "2",
    "ACREAGE_WEBHOOK_POLL_SECONDS": "0.2",
    "ACREAGE_RATE_LIMIT_PER_MIN": "100000",
    "ACREAGE_WEBHOOK_PRIVATE_TARGETS": "true",  # the receivers listen on 127.0.0.1
}


class Receiver:
    """A webhook receiver in a thread of its own: `listen()` opens its port, `mode`
    says whether it answers 503 or verifies and accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.secret = ""
        self.mode = "unavailable"
        self.accepted: list[str] = []  # webhook-id of each request answered 2xx
        self.bodies: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.rejected = 0  # requests that failed verification
        self.refused_while_down = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        threading.Thread(target=self._loop.run_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def listen(self) -> None:
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.mode == "unavailable":
            self.refused_while_down += 1
            return web.Response(status=503)
        headers = dict(request.headers)
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.rejected += 1
            return web.Response(status=400)
        self.accepted.append(headers["webhook-id"])
        self.bodies[headers["webhook-id"]] = (body, headers)
        return web.Response(status=204)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def admin(worker: Worker, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(method, f"http://127.0.0.1:{worker.web_port}{path}", timeout=30,
                            headers={"Authorization": f"Bearer {ADMIN}"}, **kw)


def start_worker(broker: Broker, tmp: Path, name: str, app_id: str) -> Worker:
    worker = Worker(broker, app_id, tmp / name, extra_env=ENV).start()
    wait_for_group(broker, app_id, 1)
    wait_until(lambda: admin(worker, "GET", "/webhooks",
                             params={"apiOwner": OWNER}).status_code == 200, 60, 0.5)
    return worker


def register(worker: Worker, receiver: Receiver) -> None:
    reply = admin(worker, "POST", "/webhooks", json={"url": receiver.url, "apiOwner": OWNER})
    assert reply.status_code == 201, reply.text
    receiver.secret = reply.json()["secret"]
    assert receiver.secret.startswith("whsec_")
    listed = admin(worker, "GET", "/webhooks", params={"apiOwner": OWNER}).json()
    assert [(e["id"], e["url"]) for e in listed] == [(reply.json()["id"], receiver.url)]
    assert "secret" not in listed[0]


def meter_and_alert(broker: Broker, worker: Worker) -> set[str]:
    """Two users' files on past days, then a quota already exceeded: final days and
    alerts. Returns the ids of every message the worker owes the receiver."""
    now = datetime.now(UTC)
    produce_events(broker.bootstrap, [
        {"id": f"f{day}-{user}", "type": "providerFileProcessingFinished",
         "timestamp": (now - timedelta(days=day)).isoformat(), "apiOwner": OWNER,
         "leafUserId": f"u{user}", "fileId": f"file{day}-{user}",
         "geometry": mapping(box(139.5 + day * 0.002, 35.6 + user * 0.0005,
                                 139.5 + day * 0.002 + 0.001, 35.6 + user * 0.0005 + 0.001))}
        for day in DAYS for user in (1, 2)])
    assert wait_until(lambda: len(final_days(broker)) >= 3 * len(DAYS), 90, 1.0), \
        final_days(broker)
    contracts = admin(worker, "GET", "/billing/contracts", params={"apiOwner": OWNER}).json()
    quota = admin(worker, "PUT", f"/billing/contracts/{contracts[0]['contractId']}/quota",
                  json={"quota": 1, "unit": "m2"})
    assert quota.status_code == 202, quota.text
    assert wait_until(lambda: len(alerts(broker)) == 3, 60, 1.0), alerts(broker)
    time.sleep(2)  # a tick or two more: nothing else may be emitted meanwhile
    return expected_ids(broker)


def final_days(broker: Broker) -> list[dict[str, Any]]:
    return [v for _, v in read_topic(broker.bootstrap, "usage.consumption-daily")
            if v and v["apiOwner"] == OWNER and v["final"]]


def alerts(broker: Broker) -> list[dict[str, Any]]:
    return [v for _, v in read_topic(broker.bootstrap, "usage.alerts") if v["apiOwner"] == OWNER]


def expected_ids(broker: Broker) -> set[str]:
    """The id each output on Kafka gives its webhook message: its content's hash."""
    def ids(event_type: str, values: list[dict[str, Any]]) -> set[str]:
        return {message_id(event_type, payload(event_type, v, datetime.fromisoformat(
            v["emittedAt"]))) for v in values}

    return ids(FINAL_DAY_EVENT, final_days(broker)) | ids(ALERT_EVENT, alerts(broker))


def deliveries(worker: Worker) -> list[dict[str, Any]]:
    reply = admin(worker, "GET", "/webhooks/deliveries", params={"apiOwner": OWNER,
                                                                  "limit": 200})
    assert reply.status_code == 200, reply.text
    assert int(reply.headers["X-Total-Count"]) == len(reply.json())  # all of them kept
    return list(reply.json())


def metric(worker: Worker, name: str) -> float:
    text = requests.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=10).text
    return next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith(name + " "))


def drain(receiver: Receiver, want: set[str], timeout: float) -> float:
    """Seconds until every wanted id was accepted."""
    started = time.monotonic()
    assert wait_until(lambda: set(receiver.accepted) >= want, timeout, 0.1), \
        f"{len(want - set(receiver.accepted))} of {len(want)} messages never arrived"
    return time.monotonic() - started


def assert_each_once_and_verified(receiver: Receiver, want: set[str]) -> None:
    assert set(receiver.accepted) == want
    assert len(receiver.accepted) == len(want), "a webhook-id arrived twice"
    assert receiver.rejected == 0
    body, headers = receiver.bodies[min(want)]
    tampered = {**headers, "webhook-signature": "v1," + "A" * 43 + "="}
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver.secret).verify(body, tampered)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "d3Jvbmcgc2VjcmV0").verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver.secret).verify(body.replace(b"quota", b"QUOTA"), headers)


def test_every_message_arrives_once_after_the_receiver_comes_back(
    broker: Broker, receiver: Receiver, tmp_path: Path
) -> None:
    worker = start_worker(broker, tmp_path, "w1", "acreage-hooks")
    try:
        register(worker, receiver)
        want = meter_and_alert(broker, worker)
        assert len(want) >= 3 * len(DAYS) + 3
        assert wait_until(lambda: len(deliveries(worker)) >= len(want), 30, 0.5)
        log = deliveries(worker)
        assert all(e["outcome"] == "retrying" and e["statusCode"] is None and e["error"]
                   and e["nextRetryAt"] for e in log), log[:3]
        assert metric(worker, "acreage_webhook_backlog") == len(want)
        assert metric(worker, "acreage_webhook_failures_total") >= len(want)

        receiver.listen()  # answering 503 now
        assert wait_until(lambda: receiver.refused_while_down >= len(want), 30, 0.2)
        receiver.mode = "accepting"
        seconds = drain(receiver, want, 60)
        print(f"\n{len(want)} messages delivered {seconds:.2f} s after the receiver came back")

        assert_each_once_and_verified(receiver, want)
        assert wait_until(lambda: metric(worker, "acreage_webhook_backlog") == 0, 10, 0.3)
        delivered = [e for e in deliveries(worker) if e["outcome"] == "delivered"]
        assert {e["messageId"] for e in delivered} == want
        assert all(e["statusCode"] == 204 and e["attempt"] > 1 for e in delivered), \
            [(e["messageId"][:8], e["attempt"], e["statusCode"], e["outcome"], e["at"])
             for e in deliveries(worker)][:60]
        time.sleep(3)  # nothing arrives twice later either
        assert len(receiver.accepted) == len(want)
    finally:
        worker.stop()


def test_deliveries_pending_when_a_worker_dies_are_made_by_the_next(
    broker: Broker, receiver: Receiver, tmp_path: Path
) -> None:
    first = start_worker(broker, tmp_path, "w1", "acreage-hooks-restart")
    register(first, receiver)
    want = meter_and_alert(broker, first)
    assert wait_until(lambda: len(deliveries(first)) >= len(want), 30, 0.5)
    first.kill9()

    receiver.listen()
    receiver.mode = "accepting"
    second = start_worker(broker, tmp_path, "w2", "acreage-hooks-restart")
    try:
        started = time.monotonic()
        drain(receiver, want, 120)
        print(f"\n{len(want)} messages delivered by the new worker "
              f"{time.monotonic() - started:.2f} s after it served")
        assert_each_once_and_verified(receiver, want)
        assert expected_ids(broker) == want  # the restart put nothing new on Kafka
    finally:
        second.stop()
