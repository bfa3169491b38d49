"""Handlers start on a settled Meter.

The `Scope` dependency waits until no thread changes the Meter it reads
(streams/holder.py), but FastAPI may await after it: a sync dependency runs in a thread,
and the loop meanwhile lets the metering agent begin the next change (every tick is one).
The handler's read then found its partition changing and answered 503 on a steady
cluster. So each route's endpoint waits again, right before it runs: from there to its
first await, nothing else runs on the loop, and no thread starts changing a Meter.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

from fastapi.routing import APIRoute

from streams.api.deps import Everyone, Scope

Endpoint = Callable[..., Coroutine[Any, Any, Any]]


class SettledRoute(APIRoute):
    """The API routers' route class: every endpoint wrapped by `settled_first`."""

    def __init__(self, path: str, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(path, settled_first(endpoint), **kwargs)


def settled_first(endpoint: Endpoint) -> Endpoint:
    """FastAPI reads the signature (and the annotations' module) through `__wrapped__`,
    so the wrapper is given the same arguments as the endpoint."""

    @wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        for value in kwargs.values():
            if isinstance(value, Scope):
                await value.api.meters.settled(value.owner)
            elif isinstance(value, Everyone):
                await value.api.meters.settled()
        return await endpoint(*args, **kwargs)

    return run
