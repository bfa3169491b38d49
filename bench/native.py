"""How much of the engine's and the Meter's time the C libraries take: a floor for any
rewrite of the Python around them.

Issue 9 asks 1,500 boundary events/s per worker through the broker (the pure Meter
alone does ~470 on this machine) and an engine with intake 3x an incremental PostGIS
peer (~1.2x). Both gaps are too wide for tuning; the question is whether moving the
per-event glue into compiled code could close them. This measures the answer: py-spy
samples each workload with native frames, and every sample is charged to the first C
library on its stack (GEOS, GeographicLib inside PROJ, libspatialindex, RocksDB inside
rocksdict) or else to Python (the interpreter, the project's code, numpy's and ctypes'
dispatch to those libraries). The libraries' share of an unsampled run's time is what
they cost per event: with no Python time at all, that is the best the same library work
can do. Only doing less of it (fewer unions per event, no WKB per piece) lowers it.

Each workload runs twice on fresh state: unsampled for its time (py-spy pauses the
process to read its stacks, which slows it), then sampled for the shares. py-spy is a
benchmark tool, not a dependency: `make bench-native` installs it into the venv; without
it this prints why it skipped.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import shapely
from rocksdict import Rdict

from aggregates import UniqueAreaLedger, normalize_geometry
from bench import engine, state
from bench.goals import report_load, verdict
from bench.postgis_peer import GOAL_ENGINE_RATE, geojson_documents
from streams.allocator import start_tuned

GOAL_PIPELINE_RATE = 1_500.0  # boundary events/s per worker, through the broker
SAMPLES_PER_S = 200
ATTACH_S = 1.0  # py-spy starts sampling well within this

# A native frame reads "function (library file)"; the first that names one of these
# libraries, from the stack's root down, takes the sample.
LIBRARIES = (
    ("GEOS", re.compile(r"\(libgeos")),
    ("GeographicLib (PROJ)", re.compile(r"\(libproj|\(pyproj/_geod")),
    ("libspatialindex", re.compile(r"\(libspatialindex")),
    ("RocksDB (rocksdict)", re.compile(r"\(rocksdict/")),
)
PYTHON = "Python"

Workload = Callable[[], int]  # runs the events on fresh state; returns how many


@dataclass(frozen=True)
class Shares:
    """Samples of one run, by who was running."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, name: str) -> float:
        return self.counts.get(name, 0) / self.total

    @property
    def libraries(self) -> float:
        return 1.0 - self.share(PYTHON)


def charge(stack: str) -> str:
    """Who a sampled stack (frames root first, `;`-separated) was working for."""
    for frame in stack.split(";"):
        for name, pattern in LIBRARIES:
            if pattern.search(frame):
                return name
    return PYTHON


def read_shares(raw: Path, within: str) -> Shares:
    """py-spy's raw output (`stack count` a line), counting only stacks that pass through
    the function `within`, so building the workload is not counted."""
    counts: collections.Counter[str] = collections.Counter()
    marker = re.compile(rf"[;.]{re.escape(within)} \(")  # qualified: a.<locals>.within
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if marker.search(stack):
            counts[charge(stack)] += int(count)
    return Shares(dict(counts))


def py_spy() -> str | None:
    """py-spy from the venv (make bench-native installs it there), else from PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def sampled(tool: str, workload: Workload, within: str) -> Shares:
    """The workload run while py-spy samples this very process."""
    with tempfile.TemporaryDirectory() as scratch:
        raw, said = Path(scratch) / "samples.raw", Path(scratch) / "py-spy.err"
        with said.open("w") as errors:  # a file, not a pipe nobody reads while it samples
            spy = subprocess.Popen(
                [tool, "record", "--native", "--format", "raw", "--rate", str(SAMPLES_PER_S),
                 "--output", str(raw), "--pid", str(os.getpid())],
                stdout=subprocess.DEVNULL, stderr=errors)
            time.sleep(ATTACH_S)
            try:
                workload()
            finally:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
        if not raw.exists():
            raise RuntimeError(f"py-spy wrote no samples: {said.read_text().strip()[-300:]}")
        return read_shares(raw, within)


def timed(workload: Workload) -> tuple[int, float]:
    started = time.perf_counter()
    count = workload()
    return count, time.perf_counter() - started


def engine_workload(args: argparse.Namespace) -> Workload:
    """bench.postgis_peer's engine side: intake then ledger, per event."""
    stream = engine.make_stream(engine.parse(["--events", str(args.events)]), args.events)
    documents = geojson_documents(stream, args.events)
    days = stream.days[: args.events].tolist()

    def engine_events() -> int:
        ledger = UniqueAreaLedger()
        for document, day in zip(documents, days, strict=True):
            ledger.add(normalize_geometry(document), day)
        return len(documents)

    return engine_events


def meter_workload(args: argparse.Namespace) -> Workload:
    """bench.state's first pass: boundary events through the Meter into RocksDB."""
    workload = state.parse(["--events", str(args.events)])
    stream = engine.make_stream(workload, args.events)
    wkbs = shapely.to_wkb(stream.geoms).tolist()
    now = state.T0 + timedelta(days=args.events // workload.events_per_day + 2)

    def meter_events() -> int:
        with tempfile.TemporaryDirectory() as directory:
            store = Rdict(directory)
            try:
                meter = state.table_meter(store)
                for i in range(len(wkbs)):
                    event = state.event(wkbs, i, workload.events_per_day)
                    state.persist(store, meter.apply(event, now, i))
            finally:
                store.close()
        return len(wkbs)

    return meter_events


def report(label: str, count: int, seconds: float, shares: Shares, goal: str) -> float:
    """Prints the split and the ceiling; returns the ceiling in events/s."""
    if not shares.total:
        raise RuntimeError(f"{label}: py-spy's samples never reached the workload")
    per_event_us = seconds / count * 1e6
    split = ", ".join(f"{name} {shares.share(name):.1%}" for name, _ in LIBRARIES)
    floor_us = per_event_us * shares.libraries
    print(f"{label}: {count:,} events in {seconds:.2f} s unsampled = {per_event_us:,.0f} "
          f"µs/event ({count / seconds:,.0f} events/s)")
    print(f"{label}: {shares.total:,} samples: {split}; {PYTHON} {shares.share(PYTHON):.1%}")
    ceiling = 1e6 / floor_us
    print(f"{label}: the libraries' work alone {floor_us:,.0f} µs/event, so with no Python "
          f"time at all at most {ceiling:,.0f} events/s ({goal})")
    return ceiling


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.native", description=__doc__)
    parser.add_argument("--events", type=int, default=5_000)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    start_tuned()
    args = parse(argv)
    tool = py_spy()
    if tool is None:
        print("native shares skipped: py-spy not found (`make bench-native` installs it)")
        return
    report_load("at start")
    for label, build, within, goal_rate, goal in (
        ("engine with intake", engine_workload, "engine_events", GOAL_ENGINE_RATE,
         "its own goal is >= 3,000, and 3x the PostGIS peer of bench.postgis_peer"),
        ("Meter", meter_workload, "meter_events", GOAL_PIPELINE_RATE,
         "the pipeline's goal is >= 1,500 through the broker, Faust and Kafka included"),
    ):
        print(f"{label}: building {args.events:,} events...", file=sys.stderr)
        workload = build(args)
        count, seconds = timed(workload)
        ceiling = report(label, count, seconds, sampled(tool, workload, within), goal)
        print(f"{label}: ceiling >= {goal_rate:,.0f} events/s: {verdict(ceiling >= goal_rate)}")
        sys.stdout.flush()
    report_load("at end")


if __name__ == "__main__":
    main()
