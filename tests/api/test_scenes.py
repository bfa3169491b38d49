"""A satellite scene is metered in a thread (streams/holder.py): its add cuts it into
hundreds of pieces a ledger (0.2-1.5 s each), and its thousands of writes are stored a
slice at a time: both held the worker's loop, so every owner's API request and the
broker's heartbeats waited for them. So is a delete of a field as wide as a scene, and a
tick."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

import pytest
from shapely.geometry import box, mapping

from aggregates.exports import TermTally
from aggregates.records import UsageRecord
from schemas.codec import dumps
from streams.api import billing
from streams.api.app import ROUTERS
from streams.api.exports import tally
from streams.api.settled import SettledRoute
from streams.replay import TOPIC_OF_TYPE
from streams.topics import partition_of
from tests.api.conftest import ADMIN, NOW, OTHER, OWNER, T0, Feed, serve
from tests.api.test_views import FILE, bearer, get
from tests.support.agents import WAIT

SCENE = "satelliteImageProcessingFinished"


class Watched:
    """The holder's `changing`, passed through, noting when a scene's change starts and
    ends."""

    def __init__(self, changing: Callable[[int], AbstractAsyncContextManager[None]]) -> None:
        self._changing = changing
        self.started, self.ended = asyncio.Event(), asyncio.Event()

    @asynccontextmanager
    async def __call__(self, partition: int) -> AsyncIterator[None]:
        self.started.set()
        try:
            async with self._changing(partition):
                yield
        finally:
            self.ended.set()


async def test_the_api_answers_while_a_scene_is_metered(
    world: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another owner is answered while the scene is metered, and the loop keeps turning;
    the scene's owner is answered once it is metered, with the scene counted, not with a
    figure read half-way through it."""
    watched = Watched(world.rt.holder.changing)
    monkeypatch.setattr(world.rt.holder, "changing", watched)
    async with serve(world) as client:
        owner_key, other_key = await world.key_for(OWNER), await world.key_for(OTHER)
        _, before, _ = await get(client, "/usage/summary", owner_key, unit="m2")
        scene = {"id": "scene-1", "type": SCENE, "timestamp": NOW.isoformat(), "apiOwner": OWNER,
                 "leafUserId": "u1", "imageId": "img-1", "provider": "planet",
                 "geometry": mapping(box(10, 40, 11, 41))}
        await world.pipeline.publish(TOPIC_OF_TYPE[SCENE], dumps(scene), key=OWNER.encode())
        await asyncio.wait_for(watched.started.wait(), WAIT)

        turns = 0

        async def turn() -> None:
            nonlocal turns
            while not watched.ended.is_set():
                turns += 1
                await asyncio.sleep(0.005)

        turning = asyncio.ensure_future(turn())
        status, _, _ = await get(client, "/usage/summary", other_key, unit="m2")
        assert status == 200 and not watched.ended.is_set()
        status, during, _ = await get(client, "/usage/summary", owner_key, unit="m2")
        assert status == 200 and watched.ended.is_set()
        await turning
        assert turns >= 3
        await world.pipeline.settled()
        _, after, _ = await get(client, "/usage/summary", owner_key, unit="m2")
        assert during == after != before


async def test_deleting_a_field_as_wide_as_a_scene_is_metered_in_a_thread(
    world: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete carries no shape, but it takes the field out of the owner's live union,
    which unites again everything under it: for a 1°×1° field over 2,000 others that held
    the loop 213 ms. The worker judges it from the field's stored shapes."""
    await world.event(OWNER, "u1", box(10, 40, 11, 41), type_="fieldBoundaryCreated",
                      field_id="wide", ts=T0 + timedelta(days=4))
    watched = Watched(world.rt.holder.changing)
    monkeypatch.setattr(world.rt.holder, "changing", watched)
    async with serve(world) as client:
        owner_key = await world.key_for(OWNER)
        _, before, _ = await get(client, "/usage/summary", owner_key, unit="m2")
        delete = {"id": "wide-gone", "type": "fieldBoundaryDeleted",
                  "timestamp": (T0 + timedelta(days=5)).isoformat(), "apiOwner": OWNER,
                  "leafUserId": "u1", "fieldId": "wide"}
        await world.pipeline.publish(TOPIC_OF_TYPE["fieldBoundaryDeleted"], dumps(delete),
                                     key=OWNER.encode())
        await asyncio.wait_for(watched.started.wait(), WAIT)
        await world.pipeline.settled()
        _, after, _ = await get(client, "/usage/summary", owner_key, unit="m2")
        assert watched.ended.is_set() and after != before


async def test_a_tick_is_metered_in_a_thread(world: Feed, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day's end closes every owner the partition served that day at once (~0.2 s for
    1,000 owners in the pure Meter, `make bench-ticks`): ticks go to the thread."""
    watched = Watched(world.rt.holder.changing)
    monkeypatch.setattr(world.rt.holder, "changing", watched)
    await world.pipeline.tick(NOW)
    await asyncio.wait_for(watched.started.wait(), WAIT)
    await world.pipeline.settled()
    assert watched.ended.is_set()


async def owner_change(world: Feed, begun: asyncio.Event | None = None) -> None:
    """What a tick metered in a thread is to the API: OWNER's partition changing a
    moment (~0.2 s here)."""
    async with world.rt.holder.changing(partition_of(OWNER, world.rt.settings.partitions)):
        if begun is not None:
            begun.set()
        await asyncio.sleep(0.2)


async def test_a_change_begun_once_a_request_is_routed_is_waited_for(
    world: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tick is metered in a thread, so changes begin every few seconds. One that
    began after the request's dependencies found the owner's Meter settled, but before
    its handler read it (FastAPI runs `accepts_csv` in a thread in between), answered 503
    "being recovered" on a steady cluster (CI, 2026-12-05). The handler is let run once
    that change has ended."""
    holder = world.rt.holder
    settled, changes = holder.settled, list[asyncio.Future[None]]()
    begun = asyncio.Event()

    async def settled_then_changed(api_owner: str | None = None) -> None:
        await settled(api_owner)
        if api_owner == OWNER and not changes:
            changes.append(asyncio.ensure_future(owner_change(world, begun)))

    async with serve(world) as client:
        key = await world.key_for(OWNER)
        monkeypatch.setattr(holder, "settled", settled_then_changed)
        status, body, _ = await get(client, "/usage/details", key)
        assert begun.is_set()
        assert status == 200 and changes[0].done(), body


async def test_a_quota_sent_is_answered_though_a_change_begins_after_the_send(
    world: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PUT quota sends its message, then answers with the contract as it will be. Read
    after the send's await, a change begun meanwhile made it 503: the client was told
    that a quota it had sent was not. It is read before."""
    assert world.rt.api is not None
    api = world.rt.api.state.api
    send, changes = api.send, list[asyncio.Future[None]]()

    async def send_then_change(owner: str, value: bytes) -> None:
        await send(owner, value)
        changes.append(asyncio.ensure_future(owner_change(world)))
        await asyncio.sleep(0)  # the change has begun when the handler goes on

    monkeypatch.setattr(api, "send", send_then_change)
    async with serve(world) as client:
        resp = await client.put(f"/billing/contracts/{FILE}/quota?unit=m2",
                                headers=bearer(ADMIN), json={"quota": 1.0, "unit": "hectares"})
        body = await resp.json()
        assert resp.status == 202 and body["quota"] == pytest.approx(10_000.0), body
        assert changes
        await changes[0]


async def test_a_term_report_waits_for_a_change_begun_while_it_tallied(
    world: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A term report hands the loop back as it tallies the term's records (every 500),
    so a tick may begin meanwhile; the Meter read after the tally then answered 503 to a
    report a big owner asked for on a steady cluster. That change is waited for."""
    changes = list[asyncio.Future[None]]()

    async def tally_then_change(records: Iterable[UsageRecord], into: TermTally) -> TermTally:
        found = await tally(records, into)
        changes.append(asyncio.ensure_future(owner_change(world)))
        await asyncio.sleep(0)  # the change has begun when the report goes on
        return found

    monkeypatch.setattr(billing, "tally", tally_then_change)
    async with serve(world) as client:
        key = await world.key_for(OWNER)
        status, body, _ = await get(client, f"/billing/contracts/{FILE}/report", key)
        assert status == 200 and body["contractId"] == FILE, body
        assert changes and changes[0].done()


def test_every_api_route_starts_on_a_settled_meter() -> None:
    """A router added without `route_class=SettledRoute` answers 503 when a change
    begins between its dependencies and its handler (the test above, on one route)."""
    routes = [route for router in ROUTERS for route in router.routes]
    assert routes and all(isinstance(route, SettledRoute) for route in routes)
