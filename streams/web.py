"""Web views served by every worker: Prometheus metrics, /health and /ready, and the
REST API (streams.api); also starts the partition watchdog whose readings they share."""

from __future__ import annotations

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from streams import health, watchdog
from streams.api import routes
from streams.runtime import Runtime


def register(rt: Runtime) -> None:
    @rt.app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(
                rt.metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0]
            )

    health.register(rt, watchdog.register(rt))
    routes.register(rt)  # the REST API of SPEC §6
