"""API keys through the API, on the real agents: listed without their secret, last use
reported at most once a minute, revoked for good (401 from the next request on)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from streams.api.auth import fingerprint
from streams.api.deps import Api
from tests.api.conftest import ADMIN, NOW, OTHER, OWNER, Feed
from tests.api.test_views import Client, bearer, get


async def test_an_owner_lists_and_revokes_its_keys(client: Client, world: Feed) -> None:
    key, spare = await world.key_for(OWNER), await world.key_for(OWNER)
    key_id, spare_id = fingerprint(key)[:16], fingerprint(spare)[:16]
    assert (await get(client, "/billing/contracts", key))[0] == 200
    await world.pipeline.settled()  # the use report went through the metering agent

    status, rows, headers = await get(client, "/api-keys", key)
    assert status == 200 and headers["X-Total-Count"] == "2"
    assert {r["keyId"]: r["lastUsedAt"] for r in rows} == {
        key_id: NOW.isoformat().replace("+00:00", "Z"), spare_id: None
    }
    assert all(r["revokedAt"] is None and r["apiOwner"] == OWNER for r in rows)
    assert key not in str(rows) and fingerprint(key) not in str(rows)
    pages = [await get(client, "/api-keys", key, page=page, size=1) for page in (1, 2, 3)]
    assert [p[2]["X-Total-Count"] for p in pages] == ["2", "2", "2"]
    assert [p[1] for p in pages] == [rows[:1], rows[1:], []]

    resp = await client.delete(f"/api-keys/{key_id}", headers=bearer(key))
    body = await resp.json()
    assert resp.status == 200 and body["keyId"] == key_id and body["revokedAt"] is not None
    resp = await client.get("/billing/contracts", headers=bearer(key))
    assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
    assert (await get(client, "/billing/contracts", spare))[0] == 200

    status, rows, _ = await get(client, "/api-keys", spare)
    assert {r["keyId"]: r["revokedAt"] is not None for r in rows} == {
        key_id: True, spare_id: False
    }


async def test_the_admin_lists_and_revokes_any_owners_keys(client: Client, world: Feed) -> None:
    key = await world.key_for(OTHER)
    key_id = fingerprint(key)[:16]
    status, body, _ = await get(client, "/api-keys", ADMIN)
    assert status == 400 and body["parameter"] == "apiOwner"
    status, rows, _ = await get(client, "/api-keys", ADMIN, apiOwner=OTHER)
    assert status == 200 and [r["keyId"] for r in rows] == [key_id]
    resp = await client.delete(f"/api-keys/{key_id}", headers=bearer(ADMIN),
                               params={"apiOwner": OTHER})
    assert resp.status == 200
    assert (await client.get("/usage/plan", headers=bearer(key))).status == 401
    again = await client.delete(f"/api-keys/{key_id}", headers=bearer(ADMIN),
                                params={"apiOwner": OTHER})
    assert again.status == 200 and (await again.json()) == (await resp.json())


async def test_no_owner_sees_or_revokes_anothers_keys(client: Client, world: Feed) -> None:
    mine, theirs = await world.key_for(OWNER), await world.key_for(OTHER)
    status, _, _ = await get(client, "/api-keys", mine, apiOwner=OTHER)
    assert status == 404
    resp = await client.delete(f"/api-keys/{fingerprint(theirs)[:16]}", headers=bearer(mine))
    assert resp.status == 404
    assert (await get(client, "/usage/plan", theirs))[0] == 200


async def test_use_is_reported_once_a_minute_per_key(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    assert world.rt.api is not None
    api: Api = world.rt.api.state.api
    clock: list[Any] = [NOW]
    api.clock = lambda: clock[0]
    sent = world.sent_to_metering()
    for seconds in (0, 10, 59, 60, 61, 119, 120):
        clock[0] = NOW + timedelta(seconds=seconds)
        assert (await get(client, "/usage/plan", key))[0] == 200
    await world.pipeline.settled()
    assert world.sent_to_metering() - sent == 3  # at 0 s, 60 s and 120 s
    _, rows, _ = await get(client, "/api-keys", key)
    assert rows[0]["lastUsedAt"] == (NOW + timedelta(seconds=120)).isoformat().replace(
        "+00:00", "Z")
