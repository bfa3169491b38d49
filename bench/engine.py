"""Throughput of the unique-area ledger against a naive union and the overlay floor, and
how its per-event cost scales with the size of a scope.

Issue 9's scale goal: at constant density, the per-event cost with 1M pieces stored is
at most 1.2x the cost with 10k (`make bench-engine` runs that; the default
`--pieces-scale` is smaller, so a quick run takes seconds, not minutes, and says it
measured short of the goal's scale).
"""

import argparse
import cProfile
import io
import math
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from aggregates import UniqueAreaLedger, geodesic_area_m2
from aggregates.overlay import object_array, on_grid
from bench.goals import report_load, verdict
from streams.allocator import start_tuned

METRES_PER_DEG = 111_320.0
VERTICES = 64
WINDOW = 2_000
GOAL_SCALE_RATIO = 1.2
GOAL_SCALE_PIECES = 1_000_000


@dataclass(frozen=True)
class Stream:
    """A synthetic event stream: geometries, their days, and the overlapping pairs."""

    geoms: np.ndarray
    days: np.ndarray
    overlaps: list[tuple[int, int]]


def make_stream(args: argparse.Namespace, count: int) -> Stream:
    """Jittered 64-gons of 1-10 ha; a share of them overlap an earlier field.

    Fields are spread over a region sized like a large farming customer, so fresh fields
    mostly land on open ground while the overlapping share exercises real overlay work.
    """
    rng = np.random.default_rng(args.seed)
    centres = np.column_stack(
        [
            args.lon + rng.uniform(0, args.region_deg, count),
            args.lat + rng.uniform(0, args.region_deg, count),
        ]
    )
    radii = np.sqrt(rng.uniform(1e4, 1e5, count) / math.pi)
    overlaps = _place_overlaps(rng, centres, radii, args.overlap)
    geoms = _polygons(rng, centres, radii)
    days = 700_000 + np.arange(count) // args.events_per_day
    late = rng.random(count) < args.late
    days[late] -= rng.integers(1, 10, late.sum())
    return Stream(geoms, days, overlaps)


def _place_overlaps(
    rng: np.random.Generator, centres: np.ndarray, radii: np.ndarray, share: float
) -> list[tuple[int, int]]:
    """Move a share of the fields next to an earlier one so the two overlap."""
    pairs: list[tuple[int, int]] = []
    for i in np.flatnonzero(rng.random(len(centres)) < share)[1:].tolist():
        j = int(rng.integers(0, i))
        angle = rng.uniform(0, 2 * math.pi)
        shift = rng.uniform(0.3, 1.0) * radii[j] / METRES_PER_DEG
        centres[i, 0] = centres[j, 0] + shift * math.cos(angle) / math.cos(
            math.radians(centres[j, 1])
        )
        centres[i, 1] = centres[j, 1] + shift * math.sin(angle)
        pairs.append((i, j))
    return pairs


def _polygons(rng: np.random.Generator, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Star-shaped (hence simple) rings with radius jitter, put on the overlay grid as
    intake puts every shape (a set_precision'd shape would carry a fixed precision model,
    and GEOS would snap-round every overlay on it, which intake's shapes never cost)."""
    angles = np.linspace(0, 2 * math.pi, VERTICES, endpoint=False)
    jitter = rng.uniform(0.9, 1.1, (len(centres), VERTICES))
    r_deg = (radii[:, None] * jitter) / METRES_PER_DEG
    lon_scale = 1.0 / np.cos(np.radians(centres[:, 1]))[:, None]
    xs = centres[:, :1] + r_deg * np.cos(angles) * lon_scale
    ys = centres[:, 1:] + r_deg * np.sin(angles)
    ring = np.stack([xs, ys], axis=2)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)
    return object_array([on_grid(polygon) for polygon in shapely.polygons(ring)])


def feed(ledger: UniqueAreaLedger, stream: Stream, start: int, stop: int, label: str) -> np.ndarray:
    """Add events [start, stop) and return each add's duration in seconds."""
    durations = np.empty(stop - start)
    clock = time.perf_counter
    for k, i in enumerate(range(start, stop)):
        t0 = clock()
        ledger.add(stream.geoms[i], int(stream.days[i]))
        durations[k] = clock() - t0
        if (i + 1) % 10_000 == 0:
            print(f"  {label}: {i + 1:,} events, {ledger.piece_count:,} pieces", file=sys.stderr)
    return durations


def window_cost(durations: np.ndarray, pieces: np.ndarray, at: int) -> tuple[float, int]:
    """Mean µs per event over WINDOW events starting where the piece count reaches `at`."""
    start = int(np.searchsorted(pieces, at))
    start = min(start, len(durations) - WINDOW)
    return float(durations[start : start + WINDOW].mean() * 1e6), int(pieces[start])


def run_ledger(args: argparse.Namespace, stream: Stream) -> UniqueAreaLedger:
    """Section 1: the ledger over the whole stream, with cost at 10k vs ~100k pieces."""
    ledger = UniqueAreaLedger()
    durations = np.empty(args.events)
    pieces = np.empty(args.events, dtype=np.int64)
    t0 = time.perf_counter()
    step = 1_000
    for start in range(0, args.events, step):
        stop = min(start + step, args.events)
        durations[start:stop] = feed(ledger, stream, start, stop, "ledger")
        pieces[start:stop] = ledger.piece_count
    elapsed = time.perf_counter() - t0
    rate = args.events / elapsed
    print(f"ledger: {args.events:,} events in {elapsed:.1f} s = {rate:,.0f} events/s")
    print(f"ledger: {ledger.piece_count:,} pieces, total {ledger.total_m2 / 1e4:,.1f} ha")
    small, small_at = window_cost(durations, pieces, 10_000)
    large, large_at = window_cost(durations, pieces, args.events)
    print(f"ledger: per event {small:.0f} µs at {small_at:,} pieces")
    print(f"ledger: per event {large:.0f} µs at {large_at:,} pieces")
    print(f"ledger: cost ratio {large / small:.2f} for {large_at / small_at:.1f}x the pieces")
    return ledger


def run_scale(args: argparse.Namespace) -> None:
    """Section 2: per-event cost with 10k vs `--pieces-scale` pieces already stored.

    The region grows with the piece count so the density (and so the overlay work per
    event) stays the same: what is left is how cost scales with the size of the scope.
    """
    costs = []
    for target in (10_000, args.pieces_scale):
        scaled = argparse.Namespace(
            **{**vars(args), "region_deg": args.region_deg * math.sqrt(target / 100_000)}
        )
        stream = make_stream(scaled, target + WINDOW)
        ledger = UniqueAreaLedger()
        feed(ledger, stream, 0, target, f"scale {target:,}")
        durations = feed(ledger, stream, target, target + WINDOW, f"scale {target:,}")
        costs.append((float(durations.mean() * 1e6), ledger.piece_count))
    (small, small_n), (large, large_n) = costs
    print(f"scale: per event {small:.0f} µs at {small_n:,} pieces (same density)")
    print(f"scale: per event {large:.0f} µs at {large_n:,} pieces (same density)")
    ratio = large / small
    short = "" if args.pieces_scale >= GOAL_SCALE_PIECES else (
        f", measured short of the goal's {GOAL_SCALE_PIECES:,} pieces")
    print(f"scale: cost ratio {ratio:.2f} for {large_n / small_n:.1f}x the pieces "
          f"(goal <= {GOAL_SCALE_RATIO:g} from 10,000 to {GOAL_SCALE_PIECES:,} pieces: "
          f"{verdict(ratio <= GOAL_SCALE_RATIO)}{short})")


def run_naive(args: argparse.Namespace, stream: Stream) -> None:
    """The cumulative union a first implementation would write, with area per event."""
    union: BaseGeometry = shapely.Polygon()
    deadline = time.perf_counter() + args.naive_seconds
    t0 = time.perf_counter()
    done = 0
    while done < args.events and time.perf_counter() < deadline:
        union = union.union(stream.geoms[done])
        geodesic_area_m2(union)
        done += 1
    elapsed = time.perf_counter() - t0
    print(f"naive union+area: {done:,} events in {elapsed:.1f} s = {done / elapsed:,.0f} events/s")


def run_floor(stream: Stream) -> None:
    """Plain pairwise difference on the overlapping pairs: the overlay floor per event."""
    pairs = stream.overlaps
    t0 = time.perf_counter()
    for i, j in pairs:
        shapely.difference(stream.geoms[i], stream.geoms[j])
    elapsed = time.perf_counter() - t0
    print(f"floor difference: {len(pairs):,} pairs = {len(pairs) / elapsed:,.0f} events/s")
    t0 = time.perf_counter()
    for i, _ in pairs:
        geodesic_area_m2(stream.geoms[i])
    elapsed = time.perf_counter() - t0
    print(f"floor geodesic area (64 vertices): {len(pairs) / elapsed:,.0f} per s")


def run_profile(args: argparse.Namespace, stream: Stream) -> None:
    """cProfile over the first `--profile` events, to say what bounds the rate."""
    ledger = UniqueAreaLedger()
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(args.profile):
        ledger.add(stream.geoms[i], int(stream.days[i]))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print(out.getvalue())


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--naive-seconds", type=float, default=60.0)
    parser.add_argument(
        "--pieces-scale",
        type=int,
        default=200_000,
        help="second section: cost at 10k vs this many pieces (0 skips)",
    )
    parser.add_argument("--overlap", type=float, default=0.3)
    parser.add_argument("--late", type=float, default=0.01, help="share of late events")
    parser.add_argument("--events-per-day", type=int, default=2_000)
    parser.add_argument("--region-deg", type=float, default=3.0)
    parser.add_argument("--lon", type=float, default=8.0)
    parser.add_argument("--lat", type=float, default=48.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", type=int, default=0, help="profile this many events")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    start_tuned()
    args = parse(argv)
    print(f"generating {args.events:,} fields of {VERTICES} vertices...", file=sys.stderr)
    stream = make_stream(args, args.events)
    sections: list[Callable[[], object]] = [
        lambda: run_ledger(args, stream),
        lambda: run_floor(stream),
        lambda: run_naive(args, stream),
    ]
    if args.pieces_scale:
        sections.append(lambda: run_scale(args))
    if args.profile:
        sections.append(lambda: run_profile(args, stream))
    report_load("at start")
    for section in sections:
        section()
        sys.stdout.flush()
    report_load("at end")


if __name__ == "__main__":
    main()
