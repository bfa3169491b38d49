"""uvicorn serving the API as a Faust service, on the worker's own event loop.

The API reads the Meters the agents keep in this process, so it must share their loop.
Faust's `serve_asgi` would start the server only once table recovery has finished; this
one starts with the worker, so /health, /ready and the API's 503 + Retry-After answer
during a recovery too, as Faust's own web server did. Signals stay with Faust's worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from mode import Service

GRACEFUL_SECONDS = 5  # in-flight requests; the worker's whole stop is bounded at 12 s


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM are the Faust worker's to handle."""
        yield


class ApiServer(Service):
    def __init__(self, app: Any, host: str, port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config = uvicorn.Config(
            app, host=host, port=port, loop="none", lifespan="off", log_config=None,
            access_log=False, timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
        self._server = _Embedded(config)
        self._serving: asyncio.Future[None] | None = None

    async def on_start(self) -> None:
        """Returns once the port is bound; a port in use fails the start."""
        self._serving = self.add_future(self._server.serve())
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.01)

    async def on_stop(self) -> None:
        self._server.should_exit = True
        if self._serving is not None:
            await asyncio.shield(self._serving)

    @property
    def port(self) -> int:
        """The bound port (port 0 asks the system for a free one)."""
        port: int = self._server.servers[0].sockets[0].getsockname()[1]
        return port
