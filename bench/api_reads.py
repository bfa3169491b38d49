"""Cost of every /usage and /billing read of issue 9's goal 4, for an owner with 1M usage
records, each beside its goals: p99 < 50 ms, and no call holding the event loop > 100 ms.

The owner's state is bench.api_state's: a year of records, 50 Leaf users, three
contracts whose ledgers hold a total for every scope and day, in a RocksDB opened as
Faust opens the worker's table and read as the worker reads it. Each call is what the
API does once a request is routed to the owner's worker: parse the query, run the
route's function on the owner's Meter, render the reply to JSON. Nothing in between awaits, so a
call's time is also how long it holds the event loop that heartbeats Kafka.

Requests vary as clients' do: pages, users, products and days are drawn at random, and
dates left out take the handler's defaults (today, or the term's start). A slow read is
stopped after `--seconds` of calls, so its p99 rests on fewer of them.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from inspect import signature
from types import SimpleNamespace
from typing import Any, cast, get_args, get_type_hints

from fastapi import Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from aggregates.meter import Meter
from bench.api_state import DAYS, OWNER, PRODUCTS, USERS, filled_store, rebuilt, year_day
from bench.goals import report_load, verdict
from bench.state import rss_bytes
from streams.allocator import start_tuned
from streams.api.app import ROUTERS
from streams.api.auth import Principal
from streams.api.deps import Scope

GOAL_P99_MS = 50.0
GOAL_BLOCK_MS = 100.0
NOW = datetime(2026, 12, 31, 23, tzinfo=UTC)
PRINCIPAL = Principal(OWNER, "bench")
ROUTES = {r.path: r for router in ROUTERS for r in router.routes
          if isinstance(r, APIRoute) and r.methods == {"GET"}}
Request = tuple[dict[str, str], dict[str, str]]  # query, path parameters
PATH_ARGUMENTS = {"contractId": "contract_id", "leafUserId": "leaf_user_id"}


class Reads:
    """Random requests of each read, as a client of this owner would send them."""

    def __init__(self, meter: Meter, seed: int) -> None:
        self.rng = random.Random(seed)
        self.contract_ids = [c.contract_id for c in meter.contracts.values()]

    def _user(self) -> str:
        return f"u{self.rng.randrange(USERS)}"

    def _scope(self) -> dict[str, str]:
        """The owner's scope or one user's, half the time each."""
        return {"leafUserId": self._user()} if self.rng.random() < 0.5 else {}

    def _day(self) -> str:
        return year_day(self.rng.randrange(DAYS)).isoformat()

    def details(self) -> Request:
        return {"page": str(1 + self.rng.randrange(20))}, {}

    def details_filtered(self) -> Request:
        start = year_day(self.rng.randrange(DAYS - 30))
        return {"page": str(1 + self.rng.randrange(20)), "leafUserId": self._user(),
                "type": self.rng.choice(("providerFileProcessingFinished",
                                         "satelliteImageProcessingFinished")),
                "start_date": start.isoformat(),
                "end_date": (start + timedelta(days=30)).isoformat()}, {}

    def summary(self, **extra: str) -> Request:
        return {"period": "term", **extra}, {}

    def breakdown(self, period: str, **extra: str) -> Request:
        """A range ending on a random day; users paged, the newest records listed."""
        return {"period": period, "end_date": self._day(), "recent": "20",
                "page": str(1 + self.rng.randrange(USERS // 50 + 1)), **extra}, {}

    def by_period(self, period: str) -> Request:
        pages = {"day": DAYS // 50 + 1, "week": DAYS // 7 // 50 + 1}.get(period, 1)
        return {"period_type": period, "product": self.rng.choice(PRODUCTS).value,
                "page": str(1 + self.rng.randrange(pages)), **self._scope()}, {}

    def by_hour(self) -> Request:
        """Hours may only be asked for 31 days at a time: a random span of up to that."""
        first = self.rng.randrange(DAYS - 31)
        days = 1 + self.rng.randrange(31)
        start, end = year_day(first), year_day(first + days - 1)
        return {"period_type": "hour", "product": self.rng.choice(PRODUCTS).value,
                "start_date": start.isoformat(), "end_date": end.isoformat(),
                "page": str(1 + self.rng.randrange(days * 24 // 50 + 1)), **self._scope()}, {}

    def top_users(self) -> Request:
        return {"product": self.rng.choice(PRODUCTS).value, "date": self._day(),
                "page": str(1 + self.rng.randrange(USERS // 20 + 1))}, {}

    def consumption(self) -> Request:
        return ({"timestamp": self._day(), "page": str(1 + self.rng.randrange(USERS // 20 + 1))},
                {"contractId": self.rng.choice(self.contract_ids)})


class OnlyMeter:
    """The bench's one Meter, where a request looks its Meter up (streams.api.deps.Meters)."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def meter_of(self, api_owner: str) -> Meter:
        return self._meter

    def meter_with_contract(self, contract_id: str) -> Meter | None:
        return self._meter

    def all_served(self) -> dict[int, Meter]:
        return {0: self._meter}

    async def settled(self, api_owner: str | None = None) -> None:
        return None


def scope_of(meter: Meter) -> Scope:
    """The bench owner's request as its dependency hands it to the route; the Api is
    only asked for its Meters."""
    return Scope(cast(Any, SimpleNamespace(meters=OnlyMeter(meter))), PRINCIPAL, OWNER,
                 None, NOW)


def call_ms(runner: asyncio.Runner, meter: Meter, route: APIRoute, request: Request) -> float:
    """One routed request: parse the query, run the route's function, render its model."""
    query, path = request
    query_model = get_args(get_type_hints(route.endpoint, include_extras=True)["q"])[0]
    render = TypeAdapter(route.response_model)
    started = time.perf_counter()
    scope = scope_of(meter)
    arguments: dict[str, Any] = {PATH_ARGUMENTS[k]: v for k, v in path.items()}
    if route.dependant.response_param_name:
        arguments[route.dependant.response_param_name] = Response()
    if "csv" in signature(route.endpoint).parameters:
        arguments["csv"] = False  # what Accept: application/json gives
    reply = runner.run(route.endpoint(q=query_model.model_validate(query), scope=scope,
                                      **arguments))
    body = render.dump_json(reply, by_alias=True)
    elapsed = (time.perf_counter() - started) * 1000
    assert body
    return elapsed


def measure(label: str, times: list[float]) -> float:
    """Prints the figures beside the p99 goal; returns the worst call."""
    p99 = statistics.quantiles(times, n=100, method="inclusive")[98] if len(times) > 1 else times[0]
    worst = max(times)
    print(f"{label}: {len(times):,} calls, p50 {statistics.median(times):.2f} ms, "
          f"p99 {p99:.2f} ms (goal p99 < {GOAL_P99_MS:.0f} ms: "
          f"{verdict(p99 < GOAL_P99_MS)}), worst {worst:.1f} ms")
    sys.stdout.flush()
    return worst


def run_reads(meter: Meter, args: argparse.Namespace) -> None:
    reads = Reads(meter, args.seed)
    cases: list[tuple[str, str, Callable[[], Request]]] = [
        ("details, unfiltered", "/usage/details", reads.details),
        ("details, user+type+30 days", "/usage/details", reads.details_filtered),
        ("by-period hour, up to 31 days", "/usage/by-period", reads.by_hour),
        ("by-period day, the term", "/usage/by-period", lambda: reads.by_period("day")),
        ("by-period week, the term", "/usage/by-period", lambda: reads.by_period("week")),
        ("by-period month, the term", "/usage/by-period", lambda: reads.by_period("month")),
        ("by-period quarter, the term", "/usage/by-period",
         lambda: reads.by_period("quarter")),
        ("top-users", "/usage/top-users", reads.top_users),
        ("summary, the term", "/usage/summary", reads.summary),
        ("summary, the term, projections", "/usage/summary",
         lambda: reads.summary(include_projections="true")),
        ("breakdown, a month", "/usage/breakdown", lambda: reads.breakdown("month")),
        ("breakdown, the term, projections", "/usage/breakdown",
         lambda: reads.breakdown("term", include_projections="true")),
        ("consumption", "/billing/contracts/{contractId}/consumption", reads.consumption),
    ]
    worst: list[tuple[float, str]] = []
    with asyncio.Runner() as runner:
        for label, path, request in cases:
            route, times = ROUTES[path], list[float]()
            deadline = time.perf_counter() + args.seconds
            while len(times) < args.reads and time.perf_counter() < deadline:
                times.append(call_ms(runner, meter, route, request()))
            worst.append((measure(label, times), label))
    slowest, which = max(worst)
    print(f"worst single call: {slowest:.1f} ms, {which} (goal: no request blocks the "
          f"event loop > {GOAL_BLOCK_MS:.0f} ms: {verdict(slowest <= GOAL_BLOCK_MS)})")


def scan_ms(meter: Meter) -> float:
    """The details read before the index: filter every record, then sort them all."""
    every = list(meter.records.select(OWNER))
    started = time.perf_counter()
    found = sorted((r for r in every if r.leaf_user_id == "u1"),
                   key=lambda r: (r.timestamp, r.event_id), reverse=True)
    assert found
    return (time.perf_counter() - started) * 1000


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api_reads", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=1_000, help="calls per read at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="per read at most")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    start_tuned()
    args = parse(argv)
    with filled_store(args.records, args.seed) as db:
        before = rss_bytes()
        meter = rebuilt(db)
        print(f"resident memory of the rebuilt Meter: {(rss_bytes() - before) / args.records:,.0f}"
              f" B/record (RocksDB's buffers included)")
        report_load("before the reads")
        run_reads(meter, args)
        report_load("after the reads")
        print(f"details by scan and sort (before the index), one user: {scan_ms(meter):,.0f} ms")


if __name__ == "__main__":
    main()
