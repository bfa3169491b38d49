"""/webhooks endpoints: an owner's webhook endpoints and their delivery log.

Registering and removing go in-stream through the metering topic, as API keys do, so an
endpoint is durable and every worker that ever owns the owner's partition finds it. They
run on the owner's worker, so they wait until the change is stored before answering.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response

from aggregates.state import ReadKey, Scan
from aggregates.webhooks import Endpoint, endpoint_key, endpoints, log_keys, recent
from schemas.api import (
    DeliveriesQuery,
    DeliveryOut,
    WebhookCreatedOut,
    WebhookIn,
    WebhookListQuery,
    WebhookOut,
    WebhooksQuery,
)
from schemas.codec import dumps
from schemas.internal import WebhookEndpointMessage
from streams.api.deps import READ, Scope
from streams.api.errors import ERROR_RESPONSES, bad_parameter, not_found
from streams.api.paging import TOTAL_HEADER, page_of, set_total
from streams.api.params import WebhookId
from streams.api.settled import SettledRoute
from streams.topics import partition_of
from streams.webhook_targets import address_refusal

VISIBLE_WITHIN_SECONDS = 10.0
SECRET_BYTES = 24

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES,
                   route_class=SettledRoute)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@router.post("", response_model=WebhookCreatedOut, status_code=201,
             summary="Register a webhook endpoint (its secret is shown once)")
async def create(body: WebhookIn, scope: READ) -> WebhookCreatedOut:
    owner = scope.acting_owner
    refusal = address_refusal(body.url.host)
    if refusal is not None and not scope.api.settings.webhook_private_targets:
        raise bad_parameter("url", f"{refusal}: webhooks reach public addresses only")
    endpoint = Endpoint("ep_" + secrets.token_hex(8), str(body.url), new_secret(), scope.now)
    await _send(scope, WebhookEndpointMessage(
        api_owner=owner, endpoint_id=endpoint.endpoint_id, url=endpoint.url,
        secret=endpoint.secret, now=scope.now))
    read, _ = _table(scope)
    await _until(lambda: read(endpoint_key(owner, endpoint.endpoint_id)) is not None)
    return WebhookCreatedOut(id=endpoint.endpoint_id, url=endpoint.url,
                             created_at=endpoint.created_at, secret=endpoint.secret)


@router.get("", response_model=list[WebhookOut], summary="The owner's webhook endpoints",
            responses=TOTAL_HEADER)
async def listed(
    q: Annotated[WebhookListQuery, Query()], scope: READ, response: Response
) -> list[WebhookOut]:
    found = [_out(e) for e in _endpoints(scope)]
    set_total(response, len(found))
    return page_of(found, q.page, q.size)


@router.get("/deliveries", response_model=list[DeliveryOut],
            summary="Recent delivery attempts, newest first", responses=TOTAL_HEADER)
async def deliveries(
    q: Annotated[DeliveriesQuery, Query()], scope: READ, response: Response
) -> list[DeliveryOut]:
    read, scan = _table(scope)
    found = [DeliveryOut(message_id=e.message_id, event_type=e.event_type,
                         endpoint_id=e.endpoint_id, attempt=e.attempt, status_code=e.status,
                         error=e.error, at=e.at, outcome=e.outcome.value,
                         next_retry_at=e.next_retry_at)
             for e in recent(scope.acting_owner, scan, read, q.limit)]
    set_total(response, sum(1 for _ in log_keys(scope.acting_owner, scan)))
    return found


@router.delete("/{webhookId}", status_code=204, response_class=Response,
               summary="Remove a webhook endpoint and the deliveries it is still owed")
async def remove(
    webhook_id: WebhookId, q: Annotated[WebhooksQuery, Query()], scope: READ
) -> Response:
    owner = scope.acting_owner
    if not any(e.endpoint_id == webhook_id for e in _endpoints(scope)):
        raise not_found("webhook")
    await _send(scope, WebhookEndpointMessage(api_owner=owner, endpoint_id=webhook_id,
                                              now=scope.now))
    read, _ = _table(scope)
    await _until(lambda: read(endpoint_key(owner, webhook_id)) is None)
    return Response(status_code=204)


def _table(scope: Scope) -> tuple[ReadKey, Scan]:
    """The owner's partition of the state table, on the owner's worker."""
    holder = scope.api.rt.holder
    partition = partition_of(scope.acting_owner, scope.api.settings.partitions)
    return holder.reader(partition), partial(holder.scan, partition)


def _endpoints(scope: Scope) -> list[Endpoint]:
    read, scan = _table(scope)
    return endpoints(scope.acting_owner, scan, read)


def _out(e: Endpoint) -> WebhookOut:
    return WebhookOut(id=e.endpoint_id, url=e.url, created_at=e.created_at)


async def _send(scope: Scope, message: WebhookEndpointMessage) -> None:
    await scope.api.send(message.api_owner, dumps(message.model_dump(mode="json")))


async def _until(done: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VISIBLE_WITHIN_SECONDS
    while not done() and loop.time() < deadline:
        await asyncio.sleep(0.05)
