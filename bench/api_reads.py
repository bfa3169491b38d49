"""Cost of a /usage/details read for an owner with a long history, beside its goal.

The history is filled directly with synthetic records (the read does not care how they
were metered), spread over a year, 50 users and 2 event types, into a RocksDB opened as
Faust opens the worker's table, and read as the worker reads it (`StoredHistory` over
the holder's scan). Each read is what the handler does: select with the request's
filters, count, and take one page.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial

from rocksdict import Options, Rdict

from aggregates.history import StoredHistory, record_write
from aggregates.markers import encode_marker
from aggregates.records import ProductArea, UsageRecord
from bench.state import rss_bytes
from streams.holder import scan_back

GOAL_P99_MS = 50.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TYPES = ("FIELD_BOUNDARY_CREATED", "MACHINE_FILE_PROCESSED")


def fill(db: Rdict, count: int, seed: int) -> StoredHistory:
    """Records in roughly event-time order, as a stream delivers them (10 % late)."""
    rng = random.Random(seed)
    history = StoredHistory(partial(scan_back, db), lambda k: db.get(k.encode()))
    step = 365 * 86_400 / count
    started = time.perf_counter()
    for i in range(count):
        late = rng.uniform(0, 3 * 86_400) if rng.random() < 0.1 else 0.0
        at = T0 + timedelta(seconds=i * step - late)
        record = UsageRecord(f"e{i}", rng.choice(TYPES), at, "owner", f"u{rng.randrange(50)}",
                             ["FIELDS_BOUNDARY"], "SUCCESS", True, 1.0, 1.0, None,
                             {"FIELDS_BOUNDARY": ProductArea(1.0, 1.0)})
        history.add(record)
        row, marker = record_write(record, i, encode_marker(record, i, None))
        db[row.encode()] = marker
        if (i + 1) % (count // 10 or 1) == 0:
            print(f"  filled {i + 1:,} records", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"insert: {count:,} records in {elapsed:.1f} s = {count / elapsed:,.0f} records/s")
    return history


def read_ms(history: StoredHistory, rng: random.Random, filtered: bool) -> float:
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


def scan_ms(history: StoredHistory) -> float:
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
    with tempfile.TemporaryDirectory() as path:
        db = Rdict(path, options=Options(raw_mode=True))
        before = rss_bytes()
        history = fill(db, args.records, args.seed)
        print(f"resident memory of the history: {(rss_bytes() - before) / args.records:,.0f} "
              f"B/record (RocksDB's buffers included)")
        rng = random.Random(args.seed)
        report("unfiltered", [read_ms(history, rng, False) for _ in range(args.reads)])
        report("user+type+30 days", [read_ms(history, rng, True) for _ in range(args.reads)])
        print(f"details by scan and sort (before the index), one user: "
              f"{scan_ms(history):,.0f} ms")
        db.close()


if __name__ == "__main__":
    main()
