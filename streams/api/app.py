"""The FastAPI application: every APIRouter of the API, the JSON error handlers, the
OpenAPI document at /openapi.json and its interactive docs at /docs.

Adding endpoints is adding their APIRouter to `ROUTERS`, made with
`route_class=SettledRoute` (streams/api/settled.py); their routes take the shared
dependencies from streams/api/deps.py (`READ`, `CHECK`, `ADMIN`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline

from streams.api import admin, billing, errors, explain, usage, webhooks
from streams.api.deps import Api
from streams.api.routing import Forwarded

ROUTERS: tuple[APIRouter, ...] = (
    billing.router, usage.router, explain.router, admin.router, admin.keys_router,
    webhooks.router
)
DESCRIPTION = (
    "Spatially unique area processed (SPEC §6). Areas are in `unit` (acres by default; "
    "1 acre = 4046.8564224 m²). Errors are JSON `{error, message, parameter}`."
)


def build_app(api: Api, extra: Sequence[APIRouter] = ()) -> FastAPI:
    """`extra`: routers of the worker's own (health, readiness, metrics)."""
    # FastAPIOffline: FastAPI whose /docs loads Swagger UI from the installed package,
    # not from a CDN, so the docs work without internet access.
    app = FastAPIOffline(title="Acreage billing and usage API", version="1.0.0",
                         description=DESCRIPTION, redoc_url=None, static_url="/docs/static")
    app.state.api = api
    errors.install(app)
    app.add_exception_handler(Forwarded, _forwarded)
    for router in (*ROUTERS, *extra):
        app.include_router(router)
    app.openapi = _without_422(app)  # type: ignore[method-assign]
    return app


async def _forwarded(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forwarded)
    return exc.response


def _without_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """Invalid input is a 400 with the ErrorOut body (errors.py), never FastAPI's 422."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation["responses"].pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema or {}

    return openapi
