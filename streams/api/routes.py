"""Every endpoint of the API, put on a worker's web server with its OpenAPI document."""

from __future__ import annotations

from streams.api import admin, billing, openapi, usage
from streams.api.core import Api, register_endpoints
from streams.runtime import Runtime


def register(rt: Runtime, api: Api | None = None) -> Api:
    api = api or Api.for_runtime(rt)
    endpoints = [*billing.ENDPOINTS, *usage.ENDPOINTS, *admin.ENDPOINTS]
    register_endpoints(api, endpoints)
    openapi.register(rt, endpoints)
    return api
