"""The composition root: `create_app(settings)` builds the runtime and wires every agent,
timer, guard and web view to it. Nothing in streams/ imports this module."""

from __future__ import annotations

from streams import faust_guards, ingest, metering, ticks, web, webhook_delivery
from streams.runtime import Runtime, build_runtime
from streams.settings import Settings


def create_app(settings: Settings | None = None) -> Runtime:
    rt = build_runtime(settings or Settings())
    faust_guards.register(rt)
    ingest.register(rt)
    metering.register(rt)
    ticks.register(rt)
    web.register(rt)
    webhook_delivery.register(rt)
    return rt
