"""Cost of a /usage/details read for an owner with a long history, beside its goal.

The history is filled directly with synthetic records (the read does not care how they
were metered), spread over a year, 50 users and 2 event types. Each read is what the
handler does: select with the request's filters, count, and take one page.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from aggregates.history import UsageHistory
from aggregates.records import UsageRecord

GOAL_P99_MS = 50.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TYPES = ("FIELD_BOUNDARY_CREATED", "MACHINE_FILE_PROCESSED")


def fill(count: int, seed: int) -> UsageHistory:
    """Records in roughly event-time order, as a stream delivers them (10 % late)."""
    rng = random.Random(seed)
    history = UsageHistory()
    step = 365 * 86_400 / count
    started = time.perf_counter()
    for i in range(count):
        late = rng.uniform(0, 3 * 86_400) if rng.random() < 0.1 else 0.0
        at = T0 + timedelta(seconds=i * step - late)
        history.add(UsageRecord(f"e{i}", rng.choice(TYPES), at, "owner", f"u{rng.randrange(50)}",
                                ["FIELDS_BOUNDARY"], "SUCCESS", True, 1.0, 1.0))
        if (i + 1) % (count // 10 or 1) == 0:
            print(f"  filled {i + 1:,} records", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"insert: {count:,} records in {elapsed:.1f} s = {count / elapsed:,.0f} records/s")
    return history


def read_ms(history: UsageHistory, rng: random.Random, filtered: bool) -> float:
    page, size = rng.randrange(20), 50
    start = date(2026, 1, 1) + timedelta(days=rng.randrange(300)) if filtered else None
    started = time.perf_counter()
    found = history.select(
        "owner",
        leaf_user_id=f"u{rng.randrange(50)}" if filtered else None,
        event_type=rng.choice(TYPES) if filtered else None,
        start=start,
        end=start + timedelta(days=30) if start else None,
    )
    rows = found[page * size:(page + 1) * size]
    assert len(found) >= len(rows)
    return (time.perf_counter() - started) * 1000


def report(label: str, times: list[float]) -> None:
    p99 = statistics.quantiles(times, n=100)[98]
    verdict = "meets" if p99 < GOAL_P99_MS else "MISSES"
    print(f"details {label}: p50 {statistics.median(times):.3f} ms, p99 {p99:.3f} ms "
          f"(goal p99 < {GOAL_P99_MS:.0f} ms: {verdict})")


def scan_ms(history: UsageHistory) -> float:
    """The read before the index: filter every record, then sort them all."""
    every = list(history.select("owner"))
    started = time.perf_counter()
    found = sorted((r for r in every if r.leaf_user_id == "u1"),
                   key=lambda r: (r.timestamp, r.event_id), reverse=True)
    assert found
    return (time.perf_counter() - started) * 1000


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api_reads", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    history = fill(args.records, args.seed)
    rng = random.Random(args.seed)
    report("unfiltered", [read_ms(history, rng, False) for _ in range(args.reads)])
    report("user+type+30 days", [read_ms(history, rng, True) for _ in range(args.reads)])
    print(f"details by scan and sort (before the index), one user: {scan_ms(history):,.0f} ms")


if __name__ == "__main__":
    main()
