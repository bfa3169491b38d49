"""What every worker serves over HTTP: the REST API (streams.api), Prometheus metrics,
/health and /ready, all one FastAPI app run by uvicorn on the worker's loop; also starts
the partition watchdog whose readings /ready shares."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from streams import health, watchdog
from streams.api.app import build_app
from streams.api.deps import Api
from streams.api.server import ApiServer
from streams.runtime import Runtime
from streams.ui import pages

METRICS_MEDIA_TYPE = "text/plain"


def metrics_router(rt: Runtime) -> APIRouter:
    routes = APIRouter(tags=["operations"])

    @routes.get("/metrics", response_class=Response, summary="Prometheus exposition",
                responses={200: {"content": {METRICS_MEDIA_TYPE: {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        return Response(rt.metrics.exposition(), media_type=METRICS_MEDIA_TYPE)

    return routes


def register(rt: Runtime) -> None:
    watch = watchdog.register(rt)
    rt.api = build_app(Api.for_runtime(rt), [metrics_router(rt), health.router(rt, watch),
                                              pages.router(rt.settings)])
    server = ApiServer(rt.api, rt.settings.web_host, rt.settings.web_port)
    rt.app.add_dependency(server)

    @rt.app.on_before_shutdown.connect
    async def stop_serving(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Before the producer a request may send to is flushed and stopped."""
        await server.stop()
