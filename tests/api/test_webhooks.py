"""/webhooks through the Faust web app, on the state the real metering agent wrote."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession

from aggregates.contracts import contract_id_for
from aggregates.products import Product
from aggregates.state import Kind
from aggregates.webhooks import ALERT_EVENT, decode_delivery
from tests.api.conftest import ADMIN, OTHER, OWNER, Feed

Client = ClientSession
URL = "https://hooks.example.com/acreage"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: Client, token: str, **body: Any) -> Any:
    resp = await client.post("/webhooks", headers=bearer(token), json={"url": URL, **body})
    return resp.status, await resp.json()


def owed(world: Feed) -> list[Any]:
    return [decode_delivery(k, v) for k, v in world.table().items()
            if k.startswith(Kind.DELIVERY.value)]


async def test_an_owner_registers_lists_and_removes_an_endpoint(
    client: Client, world: Feed
) -> None:
    key = await world.key_for(OWNER)
    status, created = await register(client, key)
    assert status == 201 and created["url"] == URL
    assert created["secret"].startswith("whsec_") and created["id"].startswith("ep_")
    resp = await client.get("/webhooks", headers=bearer(key))
    assert await resp.json() == [{"id": created["id"], "url": URL,
                                  "createdAt": created["createdAt"]}]
    resp = await client.delete(f"/webhooks/{created['id']}", headers=bearer(key))
    assert resp.status == 204
    assert await (await client.get("/webhooks", headers=bearer(key))).json() == []


async def test_a_url_naming_a_non_public_address_is_refused(client: Client, world: Feed) -> None:
    """The worker POSTs from inside the operator's network: loopback, private, link-local
    (a cloud's metadata service) and unspecified addresses are not webhook targets."""
    key = await world.key_for(OWNER)
    for url in ("http://127.0.0.1:8080/hook", "http://[::1]/hook", "http://10.1.2.3/",
                "http://169.254.169.254/latest/meta-data", "http://0.0.0.0/",
                "http://[::ffff:127.0.0.1]/"):
        status, body = await register(client, key, url=url)
        assert status == 400 and body["error"] == "invalid_parameter", (url, body)
        assert body["parameter"] == "url" and "public" in body["message"], body
    assert await (await client.get("/webhooks", headers=bearer(key))).json() == []
    status, _ = await register(client, key, url="http://203.0.113.7.nip.io/hook")
    assert status == 201  # a name is checked where a delivery resolves it


async def test_endpoints_are_listed_a_page_at_a_time(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    ids = [(await register(client, key))[1]["id"] for _ in range(3)]
    pages = []
    for page in (1, 2, 3):
        resp = await client.get("/webhooks", headers=bearer(key),
                                params={"page": page, "size": 2})
        assert resp.status == 200 and resp.headers["X-Total-Count"] == "3"
        pages.append([e["id"] for e in await resp.json()])
    assert [len(p) for p in pages] == [2, 1, 0] and sorted(pages[0] + pages[1]) == sorted(ids)


async def test_endpoints_are_the_owners_own(client: Client, world: Feed) -> None:
    _, mine = await register(client, ADMIN, apiOwner=OWNER)
    other = await world.key_for(OTHER)
    assert await (await client.get("/webhooks", headers=bearer(other))).json() == []
    resp = await client.delete(f"/webhooks/{mine['id']}", headers=bearer(other))
    assert resp.status == 404
    status, _ = await register(client, other, apiOwner=OWNER)
    assert status == 404


async def test_bad_registrations_are_400(client: Client, world: Feed) -> None:
    key = await world.key_for(OWNER)
    for url in ("ftp://example.com/x", "not a url", ""):
        resp = await client.post("/webhooks", headers=bearer(key), json={"url": url})
        assert resp.status == 400 and (await resp.json())["parameter"] == "url", url
    resp = await client.post("/webhooks", headers=bearer(ADMIN), json={"url": URL})
    assert resp.status == 400 and (await resp.json())["parameter"] == "apiOwner"


async def test_an_alert_is_owed_to_every_endpoint_of_its_owner(
    client: Client, world: Feed
) -> None:
    _, first = await register(client, ADMIN, apiOwner=OWNER)
    _, second = await register(client, ADMIN, apiOwner=OWNER)
    await register(client, ADMIN, apiOwner=OTHER)
    await world.set_quota(contract_id_for(OWNER, Product.OPERATIONS_FILE), 1.0)
    alerts = [d for d in owed(world) if d.event_type == ALERT_EVENT]
    assert {d.endpoint_id for d in alerts} == {first["id"], second["id"]}
    assert {d.api_owner for d in alerts} == {OWNER}
    assert all(d.attempts == 0 for d in alerts)
    assert len({d.message_id for d in alerts}) == len(alerts) // 2  # one id per alert
    resp = await client.get("/webhooks/deliveries", headers=bearer(ADMIN),
                            params={"apiOwner": OWNER})
    assert resp.status == 200 and await resp.json() == []  # nothing attempted yet
    assert resp.headers["X-Total-Count"] == "0"
    await client.delete(f"/webhooks/{first['id']}", headers=bearer(ADMIN),
                        params={"apiOwner": OWNER})
    assert {d.endpoint_id for d in owed(world) if d.event_type == ALERT_EVENT} == {
        second["id"]}
