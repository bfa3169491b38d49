"""Which worker serves an API owner, and forwarding a request to it.

The metering topic is keyed by `apiOwner` bytes and the state table is co-partitioned with
it, so an owner's state lives in partition `murmur2(apiOwner) % partitions` — the
partition aiokafka's default partitioner (which Faust's producer uses) picks for the key.
Faust's own `route_req` drops request bodies and response headers, so forwarding is ours.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from yarl import URL

from streams.api.errors import ApiError
from streams.topics import partition_of

FORWARDED = "X-Acreage-Forwarded"
PARTITIONS_HEADER = "X-Acreage-Partitions"  # the partitions a worker's share covers
KEPT_RESPONSE_HEADERS = (
    "X-Total-Count", "Retry-After", "WWW-Authenticate", "Content-Disposition", PARTITIONS_HEADER,
)
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=60)
# An export of a million records streams for longer than a minute; a stalled worker is
# still given up on within one.
EXPORT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)


class Locator(Protocol):
    def worker_of(self, api_owner: str) -> URL | None:
        """The owner's worker; None when it is this one."""

    def other_workers(self) -> list[URL]:
        """Every other worker, for admin look-ups by contract id alone."""


def rebalancing() -> ApiError:
    return ApiError(
        503,
        "unavailable",
        "partitions are being assigned; retry shortly",
        headers={"Retry-After": "2"},
    )


def recovering(partition: int) -> ApiError:
    return ApiError(
        503,
        "unavailable",
        f"metering state of partition {partition} is being recovered; retry shortly",
        headers={"Retry-After": "2"},
    )


class TableLocator:
    """Reads the partition assignment Faust's assignor shares with every worker."""

    def __init__(self, app: Any, table: Any, partitions: int) -> None:
        self._app = app
        self._table = table
        self._partitions = partitions

    def _hosts(self) -> dict[str, list[int]]:
        topic = self._table.changelog_topic.get_topic_name()
        meta = self._app.router.table_metadata(self._table.name)
        return {url: list(tps.get(topic, [])) for url, tps in meta.items()}

    def worker_of(self, api_owner: str) -> URL | None:
        partition = partition_of(api_owner, self._partitions)
        for url, partitions in self._hosts().items():
            if partition in partitions:
                return None if self._is_self(URL(url)) else URL(url)
        raise rebalancing()

    def other_workers(self) -> list[URL]:
        return [URL(u) for u in self._hosts() if not self._is_self(URL(u))]

    def _is_self(self, url: URL) -> bool:
        me = URL(str(self._app.conf.canonical_url))
        return (url.host, url.port) == (me.host, me.port)


class LocalOnly:
    """A single worker that owns everything: unit tests and one-node setups."""

    def worker_of(self, api_owner: str) -> URL | None:
        return None

    def other_workers(self) -> list[URL]:
        return []


class Forwarded(Exception):
    """The owner's worker answered: its response goes back to the client as it is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def forward(
    session: aiohttp.ClientSession, worker: URL, request: Request, body: bytes,
    export: bool = False,
) -> Response:
    """Replay the request on `worker`, marked so it is served there and not sent on.

    A CSV answer to an `export` request is relayed chunk by chunk as it arrives, never
    held whole; anything else (an export's errors too) is read whole, so a 404 can be
    tried on another worker."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    headers[FORWARDED] = "1"
    path = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    target = path + (f"?{request.url.query}" if request.url.query else "")
    url = URL(f"http://{worker.host}:{worker.port}{target}", encoded=True)
    try:
        resp = await session.request(request.method, url, headers=headers, data=body or None,
                                     timeout=EXPORT_TIMEOUT if export else FORWARD_TIMEOUT)
        kept = {h: resp.headers[h] for h in KEPT_RESPONSE_HEADERS if h in resp.headers}
        if export and resp.status == 200 and resp.content_type == "text/csv":
            kept["Content-Type"] = resp.headers["Content-Type"]
            return StreamingResponse(_relay(resp), status_code=200, headers=kept)
        async with resp:
            return Response(await resp.read(), status_code=resp.status,
                            media_type=resp.content_type, headers=kept)
    except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
        # RuntimeError: the worker is stopping and its client session is closed.
        raise rebalancing() from exc


async def _relay(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """A failure here comes after the first bytes went out: it ends the connection
    before the last chunk, so the client sees a failed transfer, not a cut file."""
    async with resp:
        async for chunk in resp.content.iter_any():
            yield chunk
