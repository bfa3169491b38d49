"""CSV responses: which requests get one, and streaming their rows without holding the loop.

A request gets CSV on an export's `.csv` path, or on its JSON path when `Accept` prefers
`text/csv` to JSON (the `CSV` dependency). Everything that can fail (auth, routing,
parameters, a missing contract) fails before the response starts, as JSON; then the rows
stream in chunks, so memory holds one chunk whatever the number of rows. Sending a chunk
need not suspend, so the loop is handed back after every one: an export of a million
records must not stall the metering agent that shares the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import StreamingResponse

from aggregates.exports import TermTally
from aggregates.records import UsageRecord
from schemas import exports
from streams.api.errors import ERROR_RESPONSES
from streams.api.paging import TOTAL, TOTAL_HEADER

# Records read between two hand-backs of the loop while a term report is tallied.
TALLY_BATCH = 500
CSV_RANGES = frozenset({"text/csv", "text/*"})
JSON_RANGES = frozenset({"application/json", "application/*", "*/*"})
CSV_SCHEMA = {"schema": {"type": "string"}}
ERROR_REF = "#/components/schemas/ErrorOut"
# OpenAPI of a JSON route that also answers CSV, and of a `.csv` route
ALSO_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {exports.MEDIA_TYPE: CSV_SCHEMA}},
}
LIST_ALSO_CSV: dict[int | str, dict[str, Any]] = {200: {**TOTAL_HEADER[200], **ALSO_CSV[200]}}
# (FastAPI would document a `.csv` route's errors as CSV, its response class's type.)
CSV_ONLY: dict[int | str, dict[str, Any]] = {
    200: {**TOTAL_HEADER[200], "description": "RFC 4180 CSV with a header row, in UTF-8.",
          "content": {exports.MEDIA_TYPE: CSV_SCHEMA}},
    **{status: {**{k: v for k, v in error.items() if k != "model"},
                "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}
       for status, error in ERROR_RESPONSES.items()},
}


class CsvResponse(StreamingResponse):
    media_type = exports.MEDIA_TYPE


def prefers_csv(accept: str) -> bool:
    """`text/csv` (or `text/*`) ranked above JSON; on equal quality, the range listed
    first wins. `*/*` alone means the endpoint's default, JSON."""
    best: dict[bool, tuple[float, int]] = {True: (0.0, 0), False: (0.0, 0)}
    for i, part in enumerate(accept.split(",")):
        media, *params = (p.strip().lower() for p in part.split(";"))
        if media in CSV_RANGES or media in JSON_RANGES:
            is_csv, q = media in CSV_RANGES, _quality(params)
            if q > best[is_csv][0]:
                best[is_csv] = (q, -i)
    return best[True][0] > 0.0 and best[True] > best[False]


def _quality(params: list[str]) -> float:
    for p in params:
        name, _, value = p.partition("=")
        if name.strip() == "q":
            try:
                return min(1.0, max(0.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def accepts_csv(request: Request) -> bool:
    return prefers_csv(request.headers.get("accept", ""))


def is_export(request: Request) -> bool:
    """What forwarding needs to know before any route runs: the answer may be a long
    CSV stream, to be relayed as it comes."""
    return request.url.path.endswith(".csv") or accepts_csv(request)


CSV = Annotated[bool, Depends(accepts_csv)]


def csv_response(header: list[str], rows: Iterable[exports.Row], filename: str,
                 total: int | None = None) -> CsvResponse:
    """`rows` is consumed only as the response is sent."""
    headers = {"Content-Type": exports.CONTENT_TYPE,
               "Content-Disposition": f'attachment; filename="{filename}"'}
    if total is not None:
        headers[TOTAL] = str(total)
    return CsvResponse(paced(exports.encode(header, rows)), headers=headers)


async def paced(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
        await asyncio.sleep(0)


async def tally(records: Iterable[UsageRecord], into: TermTally) -> TermTally:
    """Every record into the tally, handing the loop back every `TALLY_BATCH` records."""
    for i, record in enumerate(records, 1):
        into.add(record)
        if i % TALLY_BATCH == 0:
            await asyncio.sleep(0)
    return into
