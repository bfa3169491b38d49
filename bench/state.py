"""Memory per event and takeover time of the pure Meter, each beside issue 9's goal.

One owner, two users, boundary events (64-vertex fields of bench.engine, 30 % overlapping
an earlier one) metered into a real RocksDB, opened as Faust opens the worker's table
(with the worker's buffer settings), and read back from it as the worker's Meter does:
what the table holds is on disk, so the resident-memory growth is what the Meter keeps
plus RocksDB's bounded buffers, printed apart. Each event's geometry is parsed from WKB
as ingest's message is, so what the Meter keeps of its input is counted too.
The same events are then published again (all duplicates, at later offsets), and the
Meter is rebuilt from the store as a worker taking over the partition does after its
changelog recovery.
"""
from __future__ import annotations

import argparse
import cProfile
import ctypes
import gc
import os
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import shapely
from faust.stores.rocksdb import RocksDBOptions
from rocksdict import Rdict

from aggregates.meter import Meter, Outcome
from aggregates.records import MeterEvent
from bench.engine import make_stream
from bench.goals import report_load, verdict
from bench.peak import PeakRss
from streams.allocator import start_tuned
from streams.holder import full_scan, scan_back
from streams.settings import Settings

GOAL_BYTES_PER_EVENT = 1024
GOAL_TAKEOVER_S = 30.0
OWNER = "owner@example.com"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident memory now (not the peak), after a collection, and glibc handing free
    pages back, so garbage is not counted."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def event(wkbs: list[bytes], i: int, events_per_day: int) -> MeterEvent:
    at = T0 + timedelta(seconds=i * 86_400 / events_per_day)
    return MeterEvent(f"e{i}", "fieldBoundaryCreated", at, OWNER, f"u{i % 2}",
                      field_id=f"f{i}", geometry=shapely.from_wkb(wkbs[i]))


def persist(store: Rdict, out: Outcome) -> None:
    for key, value in out.writes:
        if value is None:
            store.delete(key.encode())
        else:
            store[key.encode()] = value


def table_meter(store: Rdict, items: Iterable[tuple[bytes, bytes]] = ()) -> Meter:
    """A Meter reading and scanning the store as the worker's reads Faust's RocksDB."""
    return Meter.from_state(((k.decode(), bytes(v)) for k, v in items),
                            read=lambda k: store.get(k.encode()),
                            scan=partial(scan_back, store))


def meter_all(meter: Meter, store: Rdict, wkbs: list[bytes], args: argparse.Namespace,
              label: str, first_seq: int) -> float:
    """Meter every event once, from offset `first_seq` on; returns events/s."""
    count = len(wkbs)
    now = T0 + timedelta(days=count // args.events_per_day + 1)
    started = time.perf_counter()
    for i in range(count):
        persist(store, meter.apply(event(wkbs, i, args.events_per_day), now, first_seq + i))
        if (i + 1) % (count // 10 or 1) == 0:
            print(f"  {label}: {i + 1:,} events, rss {rss_bytes() / 2**20:,.0f} MB",
                  file=sys.stderr)
    return count / (time.perf_counter() - started)


def rocksdb_bytes(store: Rdict) -> int:
    """RocksDB's own buffers (memtables, block cache, index readers): bounded by its
    options, not by the number of events, so a short run shows them large per event."""
    names = ("cur-size-all-mem-tables", "block-cache-usage", "estimate-table-readers-mem")
    return sum(store.property_int_value(f"rocksdb.{name}") or 0 for name in names)


def report_memory(label: str, grown: int, rocksdb: int, count: int) -> None:
    per_event = grown / count
    print(f"memory {label}: {grown / 2**20:,.1f} MB for {count:,} events = "
          f"{per_event:,.0f} B/event (goal <= {GOAL_BYTES_PER_EVENT:,} B/event: "
          f"{verdict(per_event <= GOAL_BYTES_PER_EVENT)}); RocksDB's buffers "
          f"{rocksdb / 2**20:,.1f} MB of it, the rest {(grown - rocksdb) / count:,.0f} B/event")


def takeover(store: Rdict, args: argparse.Namespace) -> None:
    """The Meter rebuilt from the table, as after a rebalance; Kafka recovery excluded."""
    profile = cProfile.Profile() if args.profile else None
    gc.collect()
    with PeakRss() as peak:
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        meter = table_meter(store, full_scan(store))
        if profile is not None:
            profile.disable()
        elapsed = time.perf_counter() - started
    assert meter.owners() == [OWNER]
    print(f"takeover: Meter rebuilt from {args.events:,} events of state in {elapsed:.1f} s "
          f"(goal <= {GOAL_TAKEOVER_S:.0f} s with recovery: "
          f"{verdict(elapsed <= GOAL_TAKEOVER_S)} before recovery is added); resident "
          f"memory grew {peak.grown / 2**20:,.0f} MB at its peak, "
          f"{(rss_bytes() - peak.start) / 2**20:,.0f} MB kept by the Meter")
    if profile is not None:
        stats = pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime")
        stats.print_stats(args.profile)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.state", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--events-per-day", type=int, default=2_000)
    parser.add_argument("--overlap", type=float, default=0.3)
    parser.add_argument("--late", type=float, default=0.0)
    parser.add_argument("--region-deg", type=float, default=3.0)
    parser.add_argument("--lon", type=float, default=8.0)
    parser.add_argument("--lat", type=float, default=48.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile the takeover and print its N costliest functions")
    parser.add_argument(
        "--state", type=Path, default=None,
        help="keep the store here; a store built there before with the same arguments is "
        "reused, so only the takeover runs (a 200k build takes ~20 min)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    start_tuned()
    args = parse(argv)
    report_load("at start")
    if args.state is None:
        with tempfile.TemporaryDirectory() as path:
            run(args, Path(path))
    else:
        run(args, args.state)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"peak resident memory of the bench: {peak / 2**20:,.0f} MB")
    report_load("at end")


def open_as_worker(path: Path) -> Rdict:
    """A RocksDB with the options the worker opens its table partitions with."""
    options: dict[str, Any] = Settings().rocksdb_options()
    store: Rdict = RocksDBOptions(**options).open(path)
    return store


def run(args: argparse.Namespace, path: Path) -> None:
    """Build the state in `path` unless a build with the same arguments finished there,
    then take it over."""
    recipe = built_recipe(args)
    done = path / BUILT
    store = open_as_worker(path)
    if done.exists() and done.read_text() == recipe:
        print(f"reusing the store in {path}, built by {recipe}", file=sys.stderr)
    else:
        done.unlink(missing_ok=True)
        build(store, args)
        done.write_text(recipe)
    takeover(store, args)
    store.close()


def build(store: Rdict, args: argparse.Namespace) -> None:
    """Meter every event once, then again as duplicates, reporting memory per event."""
    wkbs = list(shapely.to_wkb(make_stream(args, args.events).geoms))
    meter = table_meter(store)
    before, rocks_before = rss_bytes(), rocksdb_bytes(store)
    rate = meter_all(meter, store, wkbs, args, "first pass", 0)
    after_first, rocks_first = rss_bytes(), rocksdb_bytes(store)
    print(f"first pass: {rate:,.0f} events/s through the Meter into RocksDB")
    report_memory("first pass", after_first - before, rocks_first - rocks_before, args.events)
    meter_all(meter, store, wkbs, args, "replay", args.events)
    report_memory("replay of the same events", rss_bytes() - after_first,
                  rocksdb_bytes(store) - rocks_first, args.events)


BUILT = "BUILT"  # beside the store's files: the arguments of a build that finished


def built_recipe(args: argparse.Namespace) -> str:
    """The arguments that decide what the store holds."""
    return " ".join(f"--{name.replace('_', '-')} {getattr(args, name)}"
                    for name in _STORED_BY) + "\n"


_STORED_BY = ("events", "events_per_day", "overlap", "late", "region_deg", "lon", "lat", "seed")

if __name__ == "__main__":
    main()
