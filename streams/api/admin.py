"""/admin endpoints: owner API keys, created in-stream so they survive restarts."""

from __future__ import annotations

import asyncio

from schemas.api import ApiKeyIn, ApiKeyOut
from schemas.codec import dumps
from streams.api.auth import fingerprint, new_owner_key
from streams.api.core import Call, Endpoint, Reply
from streams.api.keys import create_message

VISIBLE_WITHIN_SECONDS = 10.0


async def create_key(call: Call) -> Reply:
    """Runs on the owner's worker, so it can wait until the key works before answering."""
    body: ApiKeyIn = call.body
    token = new_owner_key(body.api_owner)
    message = create_message(body.api_owner, fingerprint(token), call.now)
    await call.api.send(body.api_owner, dumps(message.model_dump(mode="json")))
    await _until_stored(call, body.api_owner, fingerprint(token))
    return Reply(ApiKeyOut(api_owner=body.api_owner, api_key=token, created_at=call.now), 201)


async def _until_stored(call: Call, api_owner: str, sha256: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VISIBLE_WITHIN_SECONDS
    while not call.api.keys.exists(api_owner, sha256) and loop.time() < deadline:
        await asyncio.sleep(0.05)


ENDPOINTS = [
    Endpoint("POST", "/admin/api-keys", "Admin: create an API owner's key (shown once)",
             create_key, ApiKeyOut, None, ApiKeyIn, status=201, admin_only=True, tag="admin"),
]
