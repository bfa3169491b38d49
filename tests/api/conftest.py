"""API tests: views through aiohttp's test client on a Faust app with injected state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from shapely.geometry import box

from aggregates.meter import Meter, Outcome
from aggregates.records import MeterEvent
from schemas.codec import loads
from schemas.internal import ApiKeyMessage, QuotaMessage
from streams.api.auth import fingerprint, new_owner_key
from streams.api.core import API_KEY, Api
from streams.api.keys import key_outcome, key_record
from streams.api.routing import LocalOnly
from streams.app import create_app
from streams.settings import Settings

OWNER, OTHER = "owner@example.com", "other@example.com"
ADMIN = "admin-secret"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def sq(x: float, y: float, size: float = 0.001) -> Any:
    return box(x, y, x + size, y + size)


@dataclass
class World:
    """A Meter and a key table fed exactly as the metering agent would feed them."""

    meter: Meter = field(default_factory=lambda: Meter(grace=timedelta(0)))
    table: dict[str, bytes] = field(default_factory=dict)
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    n: int = 0
    seq: int = 0

    def persist(self, out: Outcome) -> None:
        for k, v in out.writes:
            if v is None:
                self.table.pop(k, None)
            else:
                self.table[k] = v

    def event(self, owner: str, user: str, geom: Any, type_: str = "providerFileProcessingFinished",
              ts: datetime = T0, **kw: Any) -> None:
        self.n += 1
        ev = MeterEvent(f"e{self.n}", type_, ts, owner, user, geometry=geom, **kw)
        self.persist(self.meter.apply(ev, NOW, self.next_seq()))
        self.persist(self.meter.tick(NOW, self.next_seq()))

    def next_seq(self) -> int:
        """The offset the next metering message would have."""
        self.seq += 1
        return self.seq

    def key_for(self, owner: str) -> str:
        token = new_owner_key(owner)
        self.persist(key_outcome(ApiKeyMessage(api_owner=owner, key_sha256=fingerprint(token),
                                               now=NOW)))
        return token

    async def send(self, owner: str, value: bytes) -> None:
        """What the metering agent does with the message, at once."""
        self.sent.append((owner, value))
        message = loads(value)
        if message["kind"] == "api_key":
            self.persist(key_outcome(ApiKeyMessage.model_validate(message)))
        elif message["kind"] == "quota":
            q = QuotaMessage.model_validate(message)
            self.persist(self.meter.set_quota(q.contract_id, q.quota_m2, q.now, self.next_seq()))

    def exists(self, owner: str, sha256: str) -> bool:
        return key_record(owner, sha256) in self.table


@dataclass
class OneMeter:
    """Every owner in one recovered Meter, as on a single worker that owns everything."""

    meter: Meter

    def meter_of(self, api_owner: str) -> Meter:
        return self.meter

    def meter_with_contract(self, contract_id: str) -> Meter | None:
        return self.meter if contract_id in self.meter.contracts else None


def populated() -> World:
    """Two users of OWNER share one field; OTHER has usage of its own."""
    w = World()
    w.event(OWNER, "u1", sq(0, 0), ts=T0)
    w.event(OWNER, "u2", sq(0, 0), ts=T0 + timedelta(days=1))
    w.event(OWNER, "u2", sq(0.002, 0), ts=T0 + timedelta(days=2))
    w.event(OWNER, "u1", sq(0, 0.002), type_="fieldBoundaryCreated", field_id="f1",
            ts=T0 + timedelta(days=3))
    w.event(OWNER, "u1", None, type_="satelliteImageProcessingFinished", provider="planet",
            status="FAILED", ts=T0 + timedelta(days=3))
    w.event(OTHER, "x1", sq(1, 1), ts=T0)
    return w


@pytest.fixture
def world() -> World:
    return populated()


@pytest.fixture
async def client(world: World, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(store="memory://", admin_key=ADMIN, data_dir=tmp_path,
                        rate_limit_per_min=30, check_rate_limit_per_min=60)
    rt = create_app(settings)
    web_app = rt.app.web.web_app  # type: ignore[attr-defined]
    api: Api = web_app[API_KEY]
    api.locator = LocalOnly()
    api.keys = world
    api.meters = OneMeter(world.meter)
    api.send = world.send
    api.clock = lambda: NOW
    async with TestClient(TestServer(web_app)) as c:
        yield c
