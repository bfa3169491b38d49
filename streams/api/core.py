"""The request pipeline shared by every endpoint: identify, route, verify, limit, handle.

Handlers (billing.py, usage.py, admin.py) only see a parsed `Call` and return a `Reply`;
everything about keys, workers and limits happens here, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from aiohttp import web
from faust.web import View
from pydantic import BaseModel, ValidationError

from aggregates.meter import Meter
from schemas.codec import JSONDecodeError, dumps, loads
from streams.api.auth import Principal, identify, unauthorized
from streams.api.errors import ApiError, bad_parameter, from_validation, middleware, not_found
from streams.api.keys import TableKeys
from streams.api.ratelimit import RateLimiter
from streams.api.routing import (
    FORWARDED,
    LocalOnly,
    Locator,
    TableLocator,
    forward,
    rebalancing,
    recovering,
)
from streams.holder import NotReady
from streams.runtime import Runtime

T = TypeVar("T")
API_KEY: web.AppKey[Api] = web.AppKey("acreage.api")
PUBLIC_PATHS = frozenset({"/metrics", "/openapi.json", "/health", "/ready"})


@dataclass(frozen=True)
class Call:
    """One authenticated, parsed request as a handler sees it."""

    api: Api
    principal: Principal
    owner: str | None  # the API owner acted for; None: the admin by contract id alone
    query: Any
    body: Any
    path: dict[str, str]
    meter: Meter
    now: datetime


@dataclass(frozen=True)
class Reply:
    body: BaseModel | Sequence[BaseModel]
    status: int = 200
    total: int | None = None  # sent as X-Total-Count on list endpoints


@dataclass(frozen=True)
class Endpoint:
    """One method on one path: how it is parsed, who may call it and what it returns."""

    method: str
    path: str
    summary: str
    handler: Callable[[Call], Awaitable[Reply]]
    response: Any
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    admin_only: bool = False
    bucket: str = "default"
    paged: bool = False
    tag: str = "usage"

    @property
    def by_contract(self) -> bool:
        return "{contractId}" in self.path


class Meters(Protocol):
    """Where a request finds the Meter it reads (streams.holder.MeterHolder)."""

    def meter_of(self, api_owner: str) -> Meter:
        """The owner's Meter; NotReady while its partition recovers."""

    def meter_with_contract(self, contract_id: str) -> Meter | None:
        """The local Meter holding the contract; NotReady when it may be recovering."""


@dataclass
class Api:
    """What the views share; every collaborator can be swapped in unit tests."""

    rt: Runtime
    locator: Locator
    keys: Any
    meters: Meters
    send: Callable[[str, bytes], Awaitable[None]]
    limiter: RateLimiter = field(default_factory=RateLimiter)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @classmethod
    def for_runtime(cls, rt: Runtime) -> Api:
        async def send(api_owner: str, value: bytes) -> None:
            await rt.metering.send(key=api_owner.encode(), value=value)

        locator = TableLocator(rt.app, rt.state, rt.settings.partitions)
        return cls(rt, locator, TableKeys(rt.state), rt.holder, send)

    @property
    def settings(self) -> Any:
        return self.rt.settings

    async def serve(self, ep: Endpoint, request: web.Request) -> web.StreamResponse:
        principal = identify(request.headers, self.settings.admin_key)
        raw = await request.read() if ep.body is not None else b""
        if principal.is_admin:
            query, body = _parse(ep, request, raw)
            owner = _admin_owner(ep, query, body)
        else:
            query, body, owner = None, None, principal.owner
        routed = await self._route(ep, request, raw, owner)
        if routed is not None:
            return routed
        self._verify(principal)
        if not principal.is_admin:
            query, body = self._owner_parse(ep, request, raw, principal)
        self.limiter.hit(principal.fingerprint, ep.bucket, self._limit(ep))
        meter = self._meter(owner, request.match_info.get("contractId"))
        call = Call(self, principal, owner, query, body, dict(request.match_info), meter,
                    self.clock())
        return render(await ep.handler(call), ep)

    def _meter(self, owner: str | None, contract_id: str | None) -> Meter:
        """The owner's Meter, or, for an admin by contract id, the one holding it."""
        try:
            if owner is not None:
                return self.meters.meter_of(owner)
            meter = self.meters.meter_with_contract(contract_id or "")
        except NotReady as exc:
            raise recovering(int(str(exc))) from None
        if meter is None:
            raise not_found("contract")
        return meter

    async def _route(
        self, ep: Endpoint, request: web.Request, raw: bytes, owner: str | None
    ) -> web.StreamResponse | None:
        """None: serve here. Owners go to their worker; an admin by contract id searches."""
        forwarded = FORWARDED in request.headers
        if owner is not None:
            worker = self.locator.worker_of(owner)
            if worker is None:
                return None
            if forwarded:
                raise rebalancing()
            return await forward(self.rt.app.http_client, worker, request, raw)
        if forwarded or self._holds(request.match_info.get("contractId", "")):
            return None
        for worker in self.locator.other_workers():
            response = await forward(self.rt.app.http_client, worker, request, raw)
            if response.status != 404:
                return response
        return None  # served here: 404, or 503 if it may be in a partition still recovering

    def _holds(self, contract_id: str) -> bool:
        try:
            return self.meters.meter_with_contract(contract_id) is not None
        except NotReady:
            return False

    def _verify(self, principal: Principal) -> None:
        if principal.owner is not None and not self.keys.exists(
            principal.owner, principal.fingerprint
        ):
            raise unauthorized("invalid key")

    def _owner_parse(
        self, ep: Endpoint, request: web.Request, raw: bytes, principal: Principal
    ) -> tuple[Any, Any]:
        if ep.admin_only:
            raise ApiError(403, "forbidden", "this endpoint needs the admin key")
        query, body = _parse(ep, request, raw)
        named = _admin_owner_field(query, body)
        if named is not None and named != principal.owner:
            raise not_found("API owner")
        return query, body

    def _limit(self, ep: Endpoint) -> int:
        if ep.bucket == "check":
            return int(self.settings.check_rate_limit_per_min)
        return int(self.settings.rate_limit_per_min)


def _parse(ep: Endpoint, request: web.Request, raw: bytes) -> tuple[Any, Any]:
    query = None
    if ep.query is not None:
        try:
            query = ep.query.model_validate(dict(request.query))
        except ValidationError as exc:
            raise from_validation(exc, "query") from None
    return query, _parse_body(ep.body, raw)


def _parse_body(model: type[BaseModel] | None, raw: bytes) -> Any:
    if model is None:
        return None
    try:
        return model.model_validate(loads(raw or b"null"))
    except JSONDecodeError:
        raise bad_parameter("body", "the request body is not JSON") from None
    except ValidationError as exc:
        raise from_validation(exc, "body") from None


def _admin_owner_field(query: Any, body: Any) -> str | None:
    for source in (body, query):
        owner = getattr(source, "api_owner", None)
        if owner is not None:
            return str(owner)
    return None


def _admin_owner(ep: Endpoint, query: Any, body: Any) -> str | None:
    owner = _admin_owner_field(query, body)
    if owner is None and not ep.by_contract:
        raise bad_parameter("apiOwner", "the admin key must name the apiOwner to act for")
    return owner


def render(reply: Reply, ep: Endpoint) -> web.Response:
    body = reply.body
    if isinstance(body, BaseModel):
        data: Any = body.model_dump(mode="json", by_alias=True)
    else:
        data = [item.model_dump(mode="json", by_alias=True) for item in body]
    headers = {"X-Total-Count": str(reply.total)} if reply.total is not None else {}
    return web.Response(body=dumps(data), status=reply.status, content_type="application/json",
                        headers=headers)


def page_of(items: Sequence[T], page: int, size: int) -> list[T]:
    """`page` counts from zero here; /usage handlers pass page - 1."""
    return list(items[page * size:(page + 1) * size])


def register_endpoints(api: Api, endpoints: Iterable[Endpoint]) -> None:
    """One Faust view per path, its methods calling the shared pipeline."""
    by_path: dict[str, list[Endpoint]] = {}
    for ep in endpoints:
        by_path.setdefault(ep.path, []).append(ep)
    for path, eps in by_path.items():
        api.rt.app.page(path, name=_view_name(path))(_view(api, eps))
    allowed = PUBLIC_PATHS | set(by_path)
    web_app: web.Application = api.rt.app.web.web_app  # type: ignore[attr-defined]
    web_app.middlewares.append(middleware(lambda r: _is_ours(r, allowed)))
    web_app[API_KEY] = api  # lets tests swap the Api's collaborators


def _view(api: Api, eps: list[Endpoint]) -> type[View]:
    methods: dict[str, Any] = {}
    for ep in eps:
        async def handle(self: View, request: Any, _ep: Endpoint = ep, **_: Any) -> Any:
            return await api.serve(_ep, request)

        methods[ep.method.lower()] = handle
    return type("ApiView", (View,), methods)


def _view_name(path: str) -> str:
    return "api" + path.replace("/", "_").replace("{", "").replace("}", "").replace("-", "_")


def _is_ours(request: web.Request, allowed: frozenset[str] | set[str]) -> bool:
    resource = getattr(request.match_info.route, "resource", None)
    return resource is None or resource.canonical in allowed


__all__ = ["Api", "Call", "Endpoint", "LocalOnly", "Reply", "page_of", "register_endpoints"]
