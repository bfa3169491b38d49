"""/admin endpoints: owner API keys, created in-stream so they survive restarts."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from schemas.api import ApiKeyIn, ApiKeyOut
from schemas.codec import dumps
from streams.api.auth import fingerprint, new_owner_key
from streams.api.deps import ADMIN, Scope
from streams.api.errors import ERROR_RESPONSES
from streams.api.keys import create_message

VISIBLE_WITHIN_SECONDS = 10.0

router = APIRouter(prefix="/admin", tags=["admin"], responses=ERROR_RESPONSES)


@router.post("/api-keys", response_model=ApiKeyOut, status_code=201,
             summary="Admin: create an API owner's key (shown once)")
async def create_key(body: ApiKeyIn, scope: ADMIN) -> ApiKeyOut:
    """Runs on the owner's worker, so it can wait until the key works before answering."""
    token = new_owner_key(body.api_owner)
    message = create_message(body.api_owner, fingerprint(token), scope.now)
    await scope.api.send(body.api_owner, dumps(message.model_dump(mode="json")))
    await _until_stored(scope, body.api_owner, fingerprint(token))
    return ApiKeyOut(api_owner=body.api_owner, api_key=token, created_at=scope.now)


async def _until_stored(scope: Scope, api_owner: str, sha256: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VISIBLE_WITHIN_SECONDS
    while not scope.api.keys.exists(api_owner, sha256) and loop.time() < deadline:
        await asyncio.sleep(0.05)
