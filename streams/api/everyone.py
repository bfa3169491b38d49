"""The admin's reads across every owner, gathered from every worker.

Each worker holds the owners of its own partitions, so no local read is complete. The
worker serving the request asks every other worker for its share (the same request,
marked forwarded); a share names the partitions it covers in a header. The gatherer
keeps one share per partition and answers 503 with Retry-After unless the shares cover
every partition, so a listing taken while partitions move is refused, not incomplete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from aggregates.meter import Meter
from schemas.codec import dumps, loads
from streams.api.deps import Everyone
from streams.api.routing import PARTITIONS_HEADER, Forwarded, forward, rebalancing, recovering
from streams.holder import NotReady
from streams.topics import partition_of

Row = dict[str, Any]
Share = dict[int, list[Row]]  # the rows of each partition a worker covers


def local_share(everyone: Everyone, rows_of: Callable[[Meter], list[Row]]) -> Share:
    """This worker's rows, by partition; 503 while one of its partitions recovers."""
    try:
        meters = everyone.api.meters.all_served()
    except NotReady as exc:
        raise recovering(int(str(exc))) from None
    return {partition: rows_of(meter) for partition, meter in meters.items()}


def share_response(share: Share) -> Response:
    """What a worker asked for its share answers: all its rows, unpaged."""
    rows = [row for partition in sorted(share) for row in share[partition]]
    return Response(dumps(rows), media_type="application/json",
                    headers={PARTITIONS_HEADER: ",".join(map(str, sorted(share)))})


async def gather(everyone: Everyone, request: Request, own: Share, owner_field: str) -> list[Row]:
    """Every partition's rows once: this worker's share, then each other worker's for the
    partitions still missing. `owner_field` names the row's API owner, which tells its
    partition."""
    api = everyone.api
    partitions = int(api.settings.partitions)
    found = dict(own)
    for worker in api.locator.other_workers():
        response = await forward(api.rt.app.http_client, worker, request, b"")
        if response.status_code != 200:
            raise Forwarded(response)  # its 503 while recovering, as it is
        covered = _partitions(response.headers.get(PARTITIONS_HEADER, ""))
        theirs: Share = {p: [] for p in covered if p not in found}
        for row in loads(bytes(response.body)):
            partition = partition_of(str(row[owner_field]), partitions)
            if partition in theirs:
                theirs[partition].append(row)
        found |= theirs
    if set(found) != set(range(partitions)):
        raise rebalancing()
    return [row for partition in sorted(found) for row in found[partition]]


def _partitions(header: str) -> set[int]:
    return {int(p) for p in header.split(",") if p.strip().isdigit()}
