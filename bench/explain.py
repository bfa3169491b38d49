"""What explain my bill costs: the bytes pieces' origins and the filed event geometries
add to the table, and the time of one explain, on the state bench.state builds (one
owner, two users, 64-vertex boundary events, 30 % overlapping, 2,000 a day).

An explain is an R-tree query and a read per piece holding the point, then a scan of the
owner's filed geometries (`f`) over the days asked: a key split each, a read of the box
for the scope's users and products, a parse when the box holds the point. So it grows
with the owner's events in the range; this prints it for the whole range and for a day.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import shapely
from rocksdict import Rdict
from shapely.geometry import Point

from aggregates.codec import piece_origin
from aggregates.contracts import OWNER_SCOPE, contract_id_for
from aggregates.explain import Question, explain
from aggregates.meter import Meter
from aggregates.products import Product
from aggregates.state import Kind
from bench import state
from bench.engine import make_stream
from bench.goals import report_load
from streams.allocator import start_tuned
from streams.holder import full_scan


def main(argv: Sequence[str] | None = None) -> None:
    start_tuned()
    parser = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__)
    parser.add_argument("--points", type=int, default=200)
    own, rest = parser.parse_known_args(argv)
    args = state.parse(rest)
    report_load("at start")
    if args.state is None:
        with tempfile.TemporaryDirectory() as path:
            run(args, Path(path), own.points)
    else:
        run(args, args.state, own.points)
    report_load("at end")


def run(args: argparse.Namespace, path: Path, points: int) -> None:
    store = state.open_as_worker(path)
    recipe, done = state.built_recipe(args), path / state.BUILT
    if not (done.exists() and done.read_text() == recipe):
        done.unlink(missing_ok=True)
        state.build(store, args)
        done.write_text(recipe)
    sizes(store, args.events)
    meter = state.table_meter(store, full_scan(store))
    timings(meter, args, points)
    store.close()


def sizes(store: Rdict, events: int) -> None:
    """Bytes by kind of record, and what the origins take of the pieces'."""
    by_kind: Counter[str] = Counter()
    origins = pieces = 0
    for raw, value in full_scan(store):
        head = raw[:1].decode()
        by_kind[head] += len(raw) + len(value)
        if head == Kind.PIECE.value:
            pieces += 1
            origins += len(piece_origin(bytes(value)))
    total = sum(by_kind.values())
    covered = by_kind[Kind.COVERED.value]
    print(f"table: {total / 2**20:,.1f} MB for {events:,} events; filed event geometries "
          f"(f) {covered / 2**20:,.1f} MB = {covered / events:,.0f} B/event "
          f"({100 * covered / total:.0f} %); origins in {pieces:,} pieces "
          f"{origins / 2**20:,.1f} MB = {origins / events:,.0f} B/event "
          f"({100 * origins / total:.0f} %)")


def timings(meter: Meter, args: argparse.Namespace, points: int) -> None:
    """Explain at points of random events' fields, over every day and over one day."""
    contract = meter.contracts[contract_id_for(state.OWNER, Product.UNIFIED_AREA)]
    geoms = make_stream(args, args.events).geoms
    rng = np.random.default_rng(args.seed)
    picks = rng.integers(0, args.events, points)
    last = contract.start + timedelta(days=args.events // args.events_per_day)
    for label, days in (("every day", None), ("one day", 0)):
        took, found = [], []
        for i in picks.tolist():
            point = shapely.get_coordinates(shapely.point_on_surface(geoms[i]))[0]
            first = contract.start if days is None else state.T0.date() + timedelta(
                days=i // args.events_per_day)
            question = Question(contract, 0, OWNER_SCOPE, Point(point), first,
                                last if days is None else first)
            started = time.perf_counter()
            answer = explain(meter, question, 0, 20)
            took.append(time.perf_counter() - started)
            found.append(len(answer.counted) + len(answer.deduplicated))
        took.sort()
        print(f"explain over {label}: median {1000 * statistics.median(took):,.1f} ms, "
              f"p95 {1000 * took[int(0.95 * len(took))]:,.1f} ms over {points} points "
              f"({statistics.mean(found):.1f} events named per point)", file=sys.stdout)


if __name__ == "__main__":
    main()
