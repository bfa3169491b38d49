"""API key endpoints: the admin creates an owner's keys; the admin or the owner lists
and revokes them. Every change goes in-stream, so it survives restarts, and is answered
once the owner's worker has stored it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from aggregates.api_keys import KEY_ID_HEX, KeyAction
from schemas.api import ApiKeyIn, ApiKeyInfo, ApiKeyOut, ApiKeysQuery
from schemas.codec import dumps
from schemas.internal import ApiKeyMessage
from streams.api.auth import fingerprint, new_owner_key
from streams.api.deps import ADMIN, READ, Scope
from streams.api.errors import ERROR_RESPONSES, not_found
from streams.api.keys import command, info
from streams.api.paging import TOTAL_HEADER, page_of, set_total
from streams.api.settled import SettledRoute

VISIBLE_WITHIN_SECONDS = 10.0
KeyId = Annotated[str, Path(alias="keyId", min_length=1, max_length=64,
                            description="A key's id, as GET /api-keys lists it.")]

router = APIRouter(prefix="/admin", tags=["admin"], responses=ERROR_RESPONSES,
                   route_class=SettledRoute)
keys_router = APIRouter(prefix="/api-keys", tags=["admin"], responses=ERROR_RESPONSES,
                        route_class=SettledRoute)


@router.post("/api-keys", response_model=ApiKeyOut, status_code=201,
             summary="Admin: create an API owner's key (shown once)")
async def create_key(body: ApiKeyIn, scope: ADMIN) -> ApiKeyOut:
    """Runs on the owner's worker, so it can wait until the key works before answering."""
    token = new_owner_key(body.api_owner)
    sha = fingerprint(token)
    await _apply(scope, command(body.api_owner, sha, scope.now),
                 lambda: scope.api.keys.exists(body.api_owner, sha))
    return ApiKeyOut(api_owner=body.api_owner, api_key=token, key_id=sha[:KEY_ID_HEX],
                     created_at=scope.now)


@keys_router.get("", response_model=list[ApiKeyInfo], responses=TOTAL_HEADER,
                 summary="An owner's API keys: id, created, last used, revoked")
async def list_keys(
    q: Annotated[ApiKeysQuery, Query()], scope: READ, response: Response
) -> list[ApiKeyInfo]:
    """`q.apiOwner` only documents and checks what routing has already acted on."""
    owner = scope.acting_owner
    rows = [info(owner, r) for r in scope.api.keys.of(owner)]
    set_total(response, len(rows))
    return page_of(rows, q.page, q.size)


@keys_router.delete("/{keyId}", response_model=ApiKeyInfo,
                    summary="Revoke an API key: 401 for it from then on")
async def revoke_key(key_id: KeyId, q: Annotated[ApiKeysQuery, Query()],
                     scope: READ) -> ApiKeyInfo:
    """Answered once the owner's worker stored the revocation: from then on the key gets
    401 on every worker, since each forwards an owner's requests to that one. Revoking
    a revoked key changes nothing and answers the same."""
    owner = scope.acting_owner
    found = scope.api.keys.find(owner, key_id)
    if found is None:
        raise not_found("API key")
    if found.active:
        sha = found.sha256
        await _apply(scope, command(owner, sha, scope.now, KeyAction.REVOKE),
                     lambda: not scope.api.keys.exists(owner, sha))
        found = scope.api.keys.record(owner, sha) or found
    return info(owner, found)


async def _apply(scope: Scope, message: ApiKeyMessage, done: Callable[[], bool]) -> None:
    await scope.api.send(message.api_owner, dumps(message.model_dump(mode="json")))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VISIBLE_WITHIN_SECONDS
    while not done() and loop.time() < deadline:
        await asyncio.sleep(0.05)
