"""CSV exports of a big owner: rows/s, the memory an export adds, the longest hold of the
event loop, each for exports of different sizes, so growth with rows would show.

The owner's state is bench.api_state's (a year of usage records, 50 Leaf users, three
contracts), in a RocksDB opened and read as the worker reads its table. Each export runs
its `.csv` route's function, as bench.api_reads runs routes, then drains the response's
body iterator as the server would send it (`streams.api.exports.paced`); only the socket
is left out: chunks are counted and dropped. Peak memory is sampled by a thread
(bench.peak) during the export alone.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args, get_type_hints

from fastapi.routing import APIRoute

from aggregates.contracts import contract_id_for
from aggregates.meter import Meter
from aggregates.products import Product
from bench.api_reads import PATH_ARGUMENTS, ROUTES, scope_of
from bench.api_state import OWNER, filled_store, rebuilt
from bench.goals import report_load
from bench.peak import PeakRss
from streams.allocator import start_tuned
from streams.api.exports import CsvResponse

CONTRACT = "/billing/contracts/{contractId}"
WATCH_PERIOD_S = 0.002  # a busy-looping watcher would halve the export's share of the loop


@dataclass(frozen=True)
class Figures:
    rows: int
    megabytes: float
    seconds: float
    cpu_seconds: float
    peak_mb: float
    longest_hold_ms: float
    longest_hold_cpu_ms: float


async def export(meter: Meter, route: APIRoute, query: dict[str, str],
                 path: dict[str, str]) -> Figures:
    """The export as its response sends it: parsing, the route, then every chunk."""
    query_model = get_args(get_type_hints(route.endpoint, include_extras=True)["q"])[0]
    arguments: dict[str, Any] = {PATH_ARGUMENTS[k]: v for k, v in path.items()}
    watch = LoopWatch()
    with PeakRss() as peak:
        watching = asyncio.create_task(watch.run())
        await asyncio.sleep(0)
        started, started_cpu = time.perf_counter(), time.thread_time()
        scope = scope_of(meter)
        out = await route.endpoint(q=query_model.model_validate(query), scope=scope,
                                   **arguments)
        assert isinstance(out, CsvResponse)
        size = lines = 0
        async for chunk in out.body_iterator:
            assert isinstance(chunk, bytes)
            size += len(chunk)
            lines += chunk.count(b"\r\n")
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - started_cpu
        watching.cancel()
    rows = lines - 1  # the header; bench.api_state's ids hold no line break
    assert rows == int(out.headers["X-Total-Count"]), (rows, out.headers)
    return Figures(rows, size / 2**20, elapsed, cpu, peak.grown / 2**20, watch.longest * 1000,
                   watch.longest_cpu * 1000)


class LoopWatch:
    """What a metering agent sharing the loop sees: the longest wait for a turn."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_cpu = 0.0

    async def run(self) -> None:
        """Wall time late, which other processes' load inflates, and the loop thread's
        CPU time in between, which it does not."""
        while True:
            asked, asked_cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(WATCH_PERIOD_S)
            late = time.perf_counter() - asked - WATCH_PERIOD_S
            self.longest = max(self.longest, late)
            self.longest_cpu = max(self.longest_cpu, time.thread_time() - asked_cpu)


def show(label: str, f: Figures) -> None:
    print(f"{label}: {f.rows:,} rows, {f.megabytes:,.1f} MB in {f.seconds:.2f} s = "
          f"{f.rows / f.seconds:,.0f} rows/s, {f.megabytes / f.seconds:,.1f} MB/s "
          f"({f.rows / f.cpu_seconds:,.0f} rows per CPU second); peak memory "
          f"+{f.peak_mb:,.1f} MB; longest hold of the loop {f.longest_hold_ms:.1f} ms "
          f"({f.longest_hold_cpu_ms:.1f} ms of CPU)")
    sys.stdout.flush()


async def run(meter: Meter) -> None:
    details = ROUTES["/usage/details.csv"]
    for label, query in (
        ("records, January", {"end_date": "2026-01-31"}),
        ("records, first half", {"end_date": "2026-06-30"}),
        ("records, all", {}),
        ("records, one user, all", {"leafUserId": "u7"}),
    ):
        show(label, await export(meter, details, {"unit": "hectares", **query}, {}))
    cid = {"contractId": contract_id_for(OWNER, Product.UNIFIED_AREA)}
    show("term report (all records tallied)",
         await export(meter, ROUTES[f"{CONTRACT}/report.csv"], {}, cid))
    show("owner's days, the year",
         await export(meter, ROUTES[f"{CONTRACT}/consumption/api-owner.csv"],
                      {"startTime": "2026-01-01", "endTime": "2026-12-31"}, cid))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.exports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    start_tuned()
    args = parse(argv)
    with filled_store(args.records, args.seed) as db:
        meter = rebuilt(db)
        report_load("before the exports")
        asyncio.run(run(meter))
        report_load("after the exports")


if __name__ == "__main__":
    main()
