"""API tests: the whole app's FastAPI application (`create_app`), served by the worker's
own uvicorn service on a free port and called over HTTP, reading the state its real ingest
and metering agents wrote (tests/support/agents.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from shapely.geometry import box, mapping

from aggregates.meter import Meter
from schemas.codec import dumps
from schemas.internal import QuotaMessage
from streams.api.auth import fingerprint, new_owner_key
from streams.api.deps import Api
from streams.api.keys import command
from streams.api.routing import LocalOnly
from streams.api.server import ApiServer
from streams.app import create_app
from streams.replay import TOPIC_OF_TYPE
from streams.settings import Settings
from tests.support.agents import Pipeline, harness

OWNER, OTHER = "owner@example.com", "other@example.com"
ADMIN = "admin-secret"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
# The object id each event type must name (schemas.events.InputEvent).
OBJECT_ID = {
    "fieldBoundaryCreated": "fieldId",
    "providerFileProcessingFinished": "fileId",
    "operationProcessingFinished": "operationId",
    "satelliteImageProcessingFinished": "imageId",
}


def sq(x: float, y: float, size: float = 0.001) -> Any:
    return box(x, y, x + size, y + size)


def settings(data_dir: Path) -> Settings:
    """No grace, so a tick at NOW finalises every day before it. The events are dated
    around fixed days of 2026 while ingest judges plausibility by the real clock: its
    window is opened as wide as the settings allow. Events over 20,000 km² are refused,
    so a check of a shape under the lon/lat limit but over this one is tested."""
    return Settings(store="memory://", admin_key=ADMIN, data_dir=data_dir, grace_seconds=0,
                    max_event_age_days=36_500, max_clock_skew_seconds=31_536_000,
                    rate_limit_per_min=30, check_rate_limit_per_min=60,
                    max_event_area_km2=20_000)


class Feed:
    """Events, API keys and quotas fed to the real agents, each settled before the next,
    and the state the metering agent keeps for the API to read."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.rt = pipeline.harness.rt
        self.n = 0

    async def event(self, owner: str, user: str, geom: Any,
                    type_: str = "providerFileProcessingFinished", ts: datetime = T0,
                    **kw: Any) -> None:
        """One input event as upstream publishes it, then a tick at NOW: every event is
        snapshotted before the next one arrives."""
        self.n += 1
        body = {"id": f"e{self.n}", "type": type_, "timestamp": ts.isoformat(),
                "apiOwner": owner, "leafUserId": user, OBJECT_ID[type_]: f"o{self.n}"}
        if geom is not None:
            body["geometry"] = mapping(geom)
        body |= {to_camel(k): v for k, v in kw.items()}
        await self.pipeline.publish(TOPIC_OF_TYPE[type_], dumps(body), key=owner.encode())
        await self.pipeline.settled()
        await self.pipeline.tick(NOW)
        await self.pipeline.settled()

    async def key_for(self, owner: str) -> str:
        """A new key, created in-stream as `acreage keys create` creates it."""
        token = new_owner_key(owner)
        await self.send(owner, command(owner, fingerprint(token), NOW))
        return token

    async def set_quota(self, contract_id: str, quota_m2: float, now: datetime = NOW) -> None:
        """The message PUT /billing/contracts/{id}/quota sends."""
        owner = self.owner_of(contract_id)
        await self.send(owner, QuotaMessage(contract_id=contract_id, quota_m2=quota_m2, now=now))

    async def send(self, owner: str, message: BaseModel) -> None:
        await self.pipeline.send(owner.encode(), dumps(message.model_dump(mode="json")))
        await self.pipeline.settled()

    def meter_of(self, owner: str) -> Meter:
        return self.rt.holder.meter_of(owner)

    @property
    def meter(self) -> Meter:
        """OWNER's: every test's contracts are OWNER's unless named otherwise."""
        return self.meter_of(OWNER)

    def owner_of(self, contract_id: str) -> str:
        meter = self.rt.holder.meter_with_contract(contract_id)
        assert meter is not None, contract_id
        return meter.contracts[contract_id].api_owner

    def table(self) -> dict[str, bytes]:
        """The state table as the worker's store holds it."""
        return {_text(k): v for k, v in self.rt.state.items()}

    def sent_to_metering(self) -> int:
        return len(self.pipeline.harness.broker.to(self.pipeline.topic))


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def populate(feed: Feed) -> None:
    """Two users of OWNER share one field; OTHER has usage of its own."""
    await feed.event(OWNER, "u1", sq(0, 0), ts=T0)
    await feed.event(OWNER, "u2", sq(0, 0), ts=T0 + timedelta(days=1))
    await feed.event(OWNER, "u2", sq(0.002, 0), ts=T0 + timedelta(days=2))
    await feed.event(OWNER, "u1", sq(0, 0.002), type_="fieldBoundaryCreated", field_id="f1",
                     ts=T0 + timedelta(days=3))
    await feed.event(OWNER, "u1", None, type_="satelliteImageProcessingFinished",
                     provider="planet", status="FAILED", ts=T0 + timedelta(days=3))
    await feed.event(OTHER, "x1", sq(1, 1), ts=T0)


@pytest.fixture
async def feed(tmp_path: Path) -> AsyncIterator[Feed]:
    """The whole app with its agents running and nothing fed yet."""
    rt = create_app(settings(tmp_path))
    async with harness(rt) as h, Pipeline(h, clock=lambda: NOW) as pipeline:
        yield Feed(pipeline)


@pytest.fixture
async def world(feed: Feed) -> Feed:
    await populate(feed)
    return feed


@asynccontextmanager
async def serve(feed: Feed) -> AsyncIterator[ClientSession]:
    """The app's own routes and Api, on a single worker that owns every partition."""
    app = feed.rt.api
    assert app is not None
    api: Api = app.state.api
    api.locator = LocalOnly()
    api.clock = lambda: NOW
    server = ApiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        async with ClientSession(base_url=f"http://127.0.0.1:{server.port}") as c:
            yield c
    finally:
        await server.stop()


@pytest.fixture
async def client(world: Feed) -> AsyncIterator[ClientSession]:
    async with serve(world) as c:
        yield c
