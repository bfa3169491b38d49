"""Webhook delivery: every worker POSTs the deliveries its metering partitions owe.

A timer reads the due deliveries from the table (reads are safe outside agents), POSTs
each one signed as Standard Webhooks asks, and sends the result to the owner's metering
partition, whose agent records it (streams/webhooks.py). Nothing is written here, so a
worker killed mid-attempt loses only the attempt's result: the delivery is still owed in
the table and is tried again, with the same `webhook-id`, by whichever worker owns the
partition next. A delivery waiting for its result is not tried again by this worker
until the result is recorded or the wait for it runs out.

Head of line: every delivery has its own retry schedule, and at most
`webhook_per_endpoint` requests are in flight to one endpoint, so a dead or slow
receiver delays only its own messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from standardwebhooks import Webhook
from yarl import URL

from aggregates.state import SEP, Kind, ReadKey
from aggregates.webhooks import (
    Delivery,
    Endpoint,
    decode_delivery,
    decode_endpoint,
    delivered,
    endpoint_key,
)
from schemas.codec import dumps
from schemas.internal import WebhookAttemptMessage
from streams.runtime import Runtime
from streams.webhook_targets import address_refusal, connector

log = logging.getLogger(__name__)

DELIVERY_PREFIX = Kind.DELIVERY.value + SEP
_RESULT_GRACE_SECONDS = 30.0  # past the request timeout, a result never recorded is retried
_ERROR_CHARS = 200


def register(rt: Runtime) -> None:
    courier = Courier(rt)

    @rt.app.timer(rt.settings.webhook_poll_seconds)
    async def deliver_due() -> None:
        courier.sweep(datetime.now(UTC))


@dataclass
class Courier:
    """This worker's deliveries in flight; what it knows is only memory, never state."""

    rt: Runtime
    waiting: dict[str, tuple[int, float]] = field(default_factory=dict)  # key: attempt, until
    busy: Counter[tuple[str, str]] = field(default_factory=Counter)  # (owner, endpoint)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def sweep(self, now: datetime) -> None:
        """Starts attempts for the due deliveries not already waiting for a result, the
        longest due first, and counts the backlog. Longest due first: taken in key order,
        an endpoint's few slots went to the same early messages at every sweep (their
        first retries come quickly) and later messages waited for their first attempt."""
        clock = time.monotonic()
        self.waiting = {k: v for k, v in self.waiting.items() if v[1] > clock}
        due: list[tuple[Delivery, ReadKey]] = []
        backlog = 0
        holder = self.rt.holder
        for partition in holder.serving():
            read = holder.reader(partition)
            for k, raw in holder.prefixed(partition, DELIVERY_PREFIX):
                backlog += 1
                d = decode_delivery(k, raw)
                if d.next_at <= now and self.waiting.get(k, (0, 0.0))[0] != d.attempts + 1:
                    due.append((d, read))
        self.rt.metrics.webhook_backlog.set(backlog)
        for d, read in sorted(due, key=lambda found: found[0].next_at):
            endpoint = read(endpoint_key(d.api_owner, d.endpoint_id))
            if endpoint is not None and self.busy[(d.api_owner, d.endpoint_id)] < \
                    self.rt.settings.webhook_per_endpoint:
                self._start(d, decode_endpoint(d.endpoint_id, endpoint), clock)

    def _start(self, d: Delivery, endpoint: Endpoint, clock: float) -> None:
        self.waiting[d.key] = (d.attempts + 1, clock + self.rt.settings.webhook_timeout_seconds
                               + _RESULT_GRACE_SECONDS)
        self.busy[(d.api_owner, d.endpoint_id)] += 1
        task = asyncio.create_task(self._attempt(d, endpoint))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _attempt(self, d: Delivery, endpoint: Endpoint) -> None:
        try:
            at = datetime.now(UTC)
            settings = self.rt.settings
            status, error = await post(endpoint, d, at, settings.webhook_timeout_seconds,
                                       settings.webhook_private_targets)
            if not delivered(status):
                self.rt.metrics.webhook_failures.inc()
            result = WebhookAttemptMessage(
                api_owner=d.api_owner, endpoint_id=d.endpoint_id, message_id=d.message_id,
                attempt=d.attempts + 1, status=status, error=error, at=at)
            await self.rt.metering.send(key=d.api_owner.encode(),
                                        value=dumps(result.model_dump(mode="json")))
        except Exception as exc:  # noqa: BLE001 - the broker may be away; tried again later
            log.warning("webhook result of %s not sent: %s", d.message_id, exc)
        finally:
            self.busy[(d.api_owner, d.endpoint_id)] -= 1


async def post(endpoint: Endpoint, d: Delivery, at: datetime, timeout: float,
               private_targets: bool = False) -> tuple[int | None, str | None]:
    """One signed POST: the status, or the error that kept an answer from coming back.
    Redirects are not followed: only a 2xx counts as delivered. Only public addresses
    are reached unless `private_targets` (streams/webhook_targets.py); an endpoint
    stored before that rule, or while the operator allowed others, fails here."""
    refusal = None if private_targets else address_refusal(URL(endpoint.url).host)
    if refusal is not None:
        return None, refusal
    headers = {
        "content-type": "application/json",
        "webhook-id": d.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(endpoint.secret).sign(d.message_id, at, d.payload),
    }
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout),
                                         connector=connector(private_targets)) as s, \
                s.post(endpoint.url, data=d.payload, headers=headers,
                       allow_redirects=False) as response:
            return response.status, None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
