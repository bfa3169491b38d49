"""The FastAPI dependencies every API route shares, in the order a request meets them:

1. `authenticate`: who the bearer key claims to be (401 when it names no one);
2. `route`: the API owner acted for, and the worker holding its partition: a request
   for an owner held elsewhere is forwarded there and its answer returned as it is;
   503 with Retry-After while partitions move or recover;
3. `verify`: on the owner's worker, the owner key's hash must be in the keys table,
   not revoked; its use is reported at most once a minute;
4. `rate_limit`: per key with the `limits` library; 429 with Retry-After;
5. `Scope` (`READ`, `CHECK`, `ADMIN`): the routed, verified caller with the Meter it
   reads and the request's time, which is all a handler sees; the handler itself starts
   once no thread changes that Meter (streams/api/settled.py).

What they use lives in one `Api` on `app.state.api`, so a test can swap the locator, the
clock or the keys without touching a route.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from aggregates.api_keys import KeyAction, KeyRecord
from aggregates.meter import Meter
from schemas.codec import JSONDecodeError, dumps, loads
from streams.api.auth import Principal, identify, unauthorized
from streams.api.errors import ApiError, bad_parameter, not_found
from streams.api.exports import is_export
from streams.api.keys import TableKeys, UseReports, command
from streams.api.routing import (
    FORWARDED,
    Forwarded,
    Locator,
    TableLocator,
    forward,
    rebalancing,
    recovering,
)
from streams.holder import NotReady
from streams.runtime import Runtime

BEARER = HTTPBearer(auto_error=False, description="The admin key or an API owner's key.")
OWNER_PARAMETER = "apiOwner"
OWNER_BODY_FIELDS = ("apiOwner", "api_owner")


class Meters(Protocol):
    """Where a request finds the Meter it reads (streams.holder.MeterHolder)."""

    def meter_of(self, api_owner: str) -> Meter:
        """The owner's Meter; NotReady while its partition recovers."""

    def meter_with_contract(self, contract_id: str) -> Meter | None:
        """The local Meter holding the contract; NotReady when it may be recovering."""

    def all_served(self) -> dict[int, Meter]:
        """Every local partition's Meter; NotReady while one of them recovers."""

    async def settled(self, api_owner: str | None = None) -> None:
        """Returns once no thread is metering into the owner's Meter (any, if None)."""


class Keys(Protocol):
    """An owner's keys as its worker's table holds them (streams.api.keys.TableKeys)."""

    def exists(self, api_owner: str, sha256: str) -> bool:
        """Whether the owner's key with this hash is stored and not revoked."""

    def record(self, api_owner: str, sha256: str) -> KeyRecord | None: ...

    def of(self, api_owner: str) -> list[KeyRecord]: ...

    def find(self, api_owner: str, key_id: str) -> KeyRecord | None: ...


class Limiter:
    """Requests per key fingerprint and bucket over a moving minute (`limits`, in memory).

    Owner keys are always served by the worker owning their partition, so their count is
    exact across workers; the admin key is counted per serving worker.
    """

    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, fingerprint: str, bucket: str, per_minute: int) -> None:
        """Count one request or raise 429 with Retry-After in whole seconds."""
        item = RateLimitItemPerMinute(per_minute)
        if self._limiter.hit(item, fingerprint, bucket):
            return
        reset = self._limiter.get_window_stats(item, fingerprint, bucket).reset_time
        retry = max(1, math.ceil(reset - time.time()))
        raise ApiError(
            429, "rate_limited", f"more than {per_minute} requests per minute; retry in {retry}s",
            headers={"Retry-After": str(retry)},
        )


@dataclass
class Api:
    """What the dependencies share; every collaborator can be swapped in tests."""

    rt: Runtime
    locator: Locator
    keys: Keys
    meters: Meters
    send: Callable[[str, bytes], Awaitable[None]]
    limiter: Limiter = field(default_factory=Limiter)
    uses: UseReports = field(default_factory=UseReports)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @classmethod
    def for_runtime(cls, rt: Runtime) -> Api:
        async def send(api_owner: str, value: bytes) -> None:
            await rt.metering.send(key=api_owner.encode(), value=value)

        locator = TableLocator(rt.app, rt.state, rt.settings.partitions)
        keys = TableKeys(rt.state.get, rt.holder.scan, rt.settings.partitions)
        return cls(rt, locator, keys, rt.holder, send)

    @property
    def settings(self) -> Any:
        return self.rt.settings


def api_of(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    api: Annotated[Api, Depends(api_of)],
) -> Principal:
    return identify(request.headers, api.settings.admin_key)


@dataclass(frozen=True)
class Target:
    """The API owner a request acts for; None: the admin by contract id alone."""

    owner: str | None
    named: str | None  # the apiOwner the request names, if any


async def route(
    request: Request,
    principal: Annotated[Principal, Depends(authenticate)],
    api: Annotated[Api, Depends(api_of)],
) -> Target:
    """Serve here, or raise `Forwarded` with the answer of the worker that holds it."""
    named = await _named_owner(request)
    owner = named if principal.is_admin else principal.owner
    contract_id = request.path_params.get("contractId")
    if owner is None and contract_id is None:
        return Target(None, None)  # the admin for every owner: `scoped` decides
    forwarded = FORWARDED in request.headers
    body = await request.body()
    if owner is not None:
        worker = api.locator.worker_of(owner)
        if worker is not None:
            if forwarded:
                raise rebalancing()
            raise Forwarded(await forward(api.rt.app.http_client, worker, request, body,
                                          is_export(request)))
    elif not forwarded and not await _holds(api.meters, contract_id or ""):
        for worker in api.locator.other_workers():
            response = await forward(api.rt.app.http_client, worker, request, body,
                                     is_export(request))
            if response.status_code != 404:
                raise Forwarded(response)
        # served here: 404, or 503 if it may be in a partition still recovering
    return Target(owner, named)


async def _named_owner(request: Request) -> str | None:
    """The apiOwner a request names, in the query or a JSON body; the route's own
    validation judges the rest of the input once the request is where it is served."""
    if OWNER_PARAMETER in request.query_params:
        return request.query_params[OWNER_PARAMETER]
    try:
        body = loads(await request.body() or b"null")
    except JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    named = next((body[k] for k in OWNER_BODY_FIELDS if k in body), None)
    return named if isinstance(named, str) else None


async def _holds(meters: Meters, contract_id: str) -> bool:
    """Asked once no scene is being metered here: a contract in a changing partition
    would look absent and the request go round every other worker first."""
    await meters.settled()
    try:
        return meters.meter_with_contract(contract_id) is not None
    except NotReady:
        return False


async def verify(
    principal: Annotated[Principal, Depends(authenticate)],
    target: Annotated[Target, Depends(route)],
    api: Annotated[Api, Depends(api_of)],
) -> Principal:
    """On the owner's worker (`route` ran first): an owner key's hash must be stored and
    not revoked. Its use is reported at most once a minute (streams/api/keys.py)."""
    if principal.owner is None:
        return principal
    if not api.keys.exists(principal.owner, principal.fingerprint):
        raise unauthorized("invalid key")
    now = api.clock()
    if api.uses.due(principal.owner, principal.fingerprint, now):
        used = command(principal.owner, principal.fingerprint, now, KeyAction.USED)
        await api.send(principal.owner, dumps(used.model_dump(mode="json")))
    return principal


@dataclass(frozen=True)
class Scope:
    """One routed, verified and counted request, as a handler sees it."""

    api: Api
    principal: Principal
    owner: str | None  # the API owner acted for; None: the admin by contract id alone
    contract_id: str | None
    now: datetime

    @property
    def meter(self) -> Meter:
        """Found again at each read: the handler starts on a settled Meter
        (streams/api/settled.py), but after an await of its own a thread may have begun
        metering into it (streams/holder.py); then 503, not a torn read."""
        return _meter(self.api.meters, self.owner, self.contract_id)

    async def settled_meter(self) -> Meter:
        """The Meter for a handler that awaited since it started (a term report hands
        the loop back while it tallies): a tick begun meanwhile is waited for, not
        answered 503 (routing an admin's contract id waits for every partition)."""
        await self.api.meters.settled(self.owner)
        return self.meter

    @property
    def acting_owner(self) -> str:
        """For routes that always act for an owner (every route without a contract id)."""
        assert self.owner is not None
        return self.owner


def rate_limited(bucket: str) -> Callable[..., Principal]:
    """The dependency counting a verified key's request in `bucket` ("check" has its own
    limit, SPEC §6)."""

    def rate_limit(
        principal: Annotated[Principal, Depends(verify)],
        api: Annotated[Api, Depends(api_of)],
    ) -> Principal:
        per_minute = (api.settings.check_rate_limit_per_min if bucket == "check"
                      else api.settings.rate_limit_per_min)
        api.limiter.hit(principal.fingerprint, bucket, int(per_minute))
        return principal

    return rate_limit


@dataclass(frozen=True)
class Everyone:
    """The admin, naming no owner, on a route that reads every owner's state: there is
    no one Meter; each worker reads its own partitions (streams/api/everyone.py)."""

    api: Api
    now: datetime
    forwarded: bool  # asked by another worker for this worker's share only


def scoped(bucket: str, *, admin_only: bool = False) -> Callable[..., Awaitable[Scope]]:
    """The dependency giving a route its `Scope`: routed, verified, counted in `bucket`."""
    either = scoped_or_everyone(bucket, admin_only=admin_only)

    async def scope(chosen: Scope | Everyone = Depends(either)) -> Scope:  # a default: below
        if isinstance(chosen, Everyone):
            raise bad_parameter(OWNER_PARAMETER,
                                "the admin key must name the apiOwner to act for")
        return chosen

    return scope


def scoped_or_everyone(
    bucket: str, *, admin_only: bool = False
) -> Callable[..., Awaitable[Scope | Everyone]]:
    """`scoped`, except that the admin naming no owner (and no contract) gets `Everyone`."""
    limited = rate_limited(bucket)

    # A default, not Annotated: FastAPI resolves annotations in the module's globals,
    # where `limited` is not.
    async def scope(
        request: Request,
        target: Annotated[Target, Depends(route)],
        api: Annotated[Api, Depends(api_of)],
        principal: Principal = Depends(limited),
    ) -> Scope | Everyone:
        if admin_only and not principal.is_admin:
            raise ApiError(403, "forbidden", "this endpoint needs the admin key")
        if not principal.is_admin and target.named not in (None, principal.owner):
            raise not_found("API owner")
        contract_id = request.path_params.get("contractId")
        await api.meters.settled(target.owner)
        if target.owner is None and contract_id is None:
            return Everyone(api, api.clock(), FORWARDED in request.headers)
        _meter(api.meters, target.owner, contract_id)  # 404 or 503 before the handler runs
        return Scope(api, principal, target.owner, contract_id, api.clock())

    return scope


def _meter(meters: Meters, owner: str | None, contract_id: str | None) -> Meter:
    """The owner's Meter, or, for an admin by contract id, the one holding it."""
    try:
        if owner is not None:
            return meters.meter_of(owner)
        meter = meters.meter_with_contract(contract_id or "")
    except NotReady as exc:
        raise recovering(int(str(exc))) from None
    if meter is None:
        raise not_found("contract")
    return meter


READ = Annotated[Scope, Depends(scoped("default"))]
READ_ANY = Annotated[Scope | Everyone, Depends(scoped_or_everyone("default"))]
CHECK = Annotated[Scope, Depends(scoped("check"))]
ADMIN = Annotated[Scope, Depends(scoped("default", admin_only=True))]
