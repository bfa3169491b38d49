"""The engine with intake against an incremental PostGIS peer, on the same workload.

Issue 9's goals: the engine with intake (normalize_geometry, the door every ingested shape
goes through, then UniqueAreaLedger.add) takes >= 3,000 events/s on the 64-vertex
workload of bench.engine, and >= 3x what an incremental PostGIS peer does on the same
stream in the same run. The peer is what one would write without this engine: a table
of disjoint pieces with a GiST index, and per event one statement that unions the
pieces the new shape meets, subtracts that union, measures the rest on the spheroid and
stores it. Both are measured here, one after the other, in one process, so they see the
same machine load; the totals must agree, or the comparison would not be like for like.

PostgreSQL 15 and PostGIS come from Debian's packages. The benchmark installs PostGIS
with apt-get when it is missing, runs a throwaway cluster in a temporary directory
(as the `postgres` system user when run as root, since PostgreSQL refuses to run as
root), and removes it at the end. Where any of that cannot be done, it says why in one
"PostGIS peer skipped: ..." line and still reports the engine.

The peer is given every advantage the engine does not need, so that a ratio above the
goal is not an artefact of a handicapped peer: shapes arrive as WKB already valid (no
repair), the cluster runs with fsync and synchronous_commit off (the engine does not
persist anything here either), the statement is prepared once, and sequential scans are
disabled so the planner can never choose a full scan from the statistics of a table that
was empty when the plan was made.
"""

import argparse
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely

from aggregates import UniqueAreaLedger, normalize_geometry
from bench import engine
from bench.engine import VERTICES, Stream, make_stream
from bench.goals import report_load, verdict
from streams.allocator import start_tuned

GOAL_ENGINE_RATE = 3_000.0  # events/s, engine with intake
GOAL_RATIO = 3.0  # engine with intake / PostGIS peer
AGREE_REL = 1e-6  # relative difference allowed between the two totals
PROGRESS_EVERY = 1_000

PG_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
POSTGIS_PACKAGE = "postgresql-15-postgis-3"
SERVER_USER = "postgres"
PORT = 5432  # only names the socket file: the cluster listens on a private directory
APT_TIMEOUT_S = 1_200.0

SETUP_SQL = """
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE pieces (
    id serial PRIMARY KEY,
    day integer NOT NULL,
    geom geometry(MultiPolygon, 4326) NOT NULL
);
CREATE INDEX pieces_geom ON pieces USING gist (geom);
"""

# One round-trip per event: candidates by the index (&&) and ST_Intersects, the union of
# the hits, the new shape minus that union, its area on the spheroid (geography), and the
# difference stored as a new piece when it is not empty. Returns the area added, in m².
ADD_SQL = """
WITH new AS (
    SELECT ST_GeomFromWKB(%(wkb)s, 4326) AS geom
), hits AS (
    SELECT ST_Union(p.geom) AS geom
    FROM pieces AS p, new
    WHERE p.geom && new.geom AND ST_Intersects(p.geom, new.geom)
), fresh AS (
    SELECT CASE
        WHEN hits.geom IS NULL THEN new.geom
        ELSE ST_CollectionExtract(ST_Difference(new.geom, hits.geom), 3)
    END AS geom
    FROM new, hits
), stored AS (
    INSERT INTO pieces (day, geom)
    SELECT %(day)s, ST_Multi(geom) FROM fresh WHERE NOT ST_IsEmpty(geom)
)
SELECT COALESCE(ST_Area(geom::geography, true), 0.0) FROM fresh
"""


class PeerSkipped(Exception):
    """The peer cannot run here; args[0] says why, for the one line the user sees."""


@dataclass(frozen=True)
class Run:
    """One side's result over the stream."""

    events: int
    seconds: float
    total_m2: float
    pieces: int
    cpu_seconds: float | None  # every process's CPU on the events; None if unreadable

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_note(self) -> str:
        """Wall-clock rates move with whatever else the machine runs; CPU time per event
        much less, so it is printed beside them."""
        if self.cpu_seconds is None:
            return "CPU time not readable"
        per_cpu_s = self.events / self.cpu_seconds
        return f"{self.cpu_seconds:.2f} CPU s = {per_cpu_s:,.0f} events per CPU s"


def geojson_documents(stream: Stream, count: int) -> list[dict[str, Any]]:
    """The events as the ingest decoder hands them to normalize_geometry: parsed JSON.

    Built before the clock starts: JSON decoding belongs to the transport, not to the
    intake this benchmark measures.
    """
    texts = shapely.to_geojson(stream.geoms[:count])
    return [json.loads(text) for text in texts.tolist()]


def run_engine(stream: Stream, count: int) -> Run:
    """Intake and ledger per event, as the worker runs them: normalize, then add."""
    documents = geojson_documents(stream, count)
    days = stream.days[:count].tolist()
    ledger = UniqueAreaLedger()
    total = 0.0
    clock = time.perf_counter
    cpu0 = time.process_time()
    t0 = clock()
    for i in range(count):
        geom = normalize_geometry(documents[i])
        total += ledger.add(geom, days[i])
        if (i + 1) % PROGRESS_EVERY == 0:
            rate = (i + 1) / (clock() - t0)
            print(f"  engine: {i + 1:,} events, {rate:,.0f} events/s", file=sys.stderr)
    elapsed = clock() - t0
    cpu = time.process_time() - cpu0
    return Run(count, elapsed, total, ledger.piece_count, cpu)


def ensure_postgis(install: bool) -> None:
    """PostgreSQL 15 and PostGIS from Debian's packages, installed only when missing.

    Raises PeerSkipped with the reason when they are missing and cannot be installed.
    """
    if POSTGIS_CONTROL.exists() and (PG_BIN / "initdb").exists():
        return
    if not install:
        raise PeerSkipped(
            f"PostGIS is not installed and --no-install was given ({POSTGIS_PACKAGE})"
        )
    if os.geteuid() != 0:
        raise PeerSkipped(
            f"PostGIS is not installed and installing it needs root: "
            f"run `apt-get install -y {POSTGIS_PACKAGE}` as root, then rerun"
        )
    if shutil.which("apt-get") is None:
        raise PeerSkipped("PostGIS is not installed and there is no apt-get (not Debian?)")
    print(f"installing {POSTGIS_PACKAGE} with apt-get (once)...", file=sys.stderr)
    error = _apt_install()
    if error is not None:
        # Stale package lists are the usual cause: refresh them once and retry.
        _apt(["update", "-q"])
        error = _apt_install()
    if error is not None:
        raise PeerSkipped(f"apt-get install {POSTGIS_PACKAGE} failed: {error}")
    if not (POSTGIS_CONTROL.exists() and (PG_BIN / "initdb").exists()):
        raise PeerSkipped(f"{POSTGIS_PACKAGE} installed, but {POSTGIS_CONTROL} is still missing")


def _apt_install() -> str | None:
    """None on success, else the last line apt-get printed."""
    return _apt(["install", "-y", "-q", "--no-install-recommends", POSTGIS_PACKAGE])


def _apt(arguments: list[str]) -> str | None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", *arguments],
            env=env,
            capture_output=True,
            text=True,
            timeout=APT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def _server_prefix(root: Path) -> list[str]:
    """How to run the server binaries: as `postgres` when we are root (PostgreSQL refuses
    to run as root), which then has to own the cluster's directory; else as ourselves."""
    if os.geteuid() != 0:
        return []
    try:
        account = pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise PeerSkipped(f"running as root and there is no {SERVER_USER!r} user") from exc
    if shutil.which("runuser") is None:
        raise PeerSkipped("running as root and there is no runuser to drop to postgres")
    os.chown(root, account.pw_uid, account.pw_gid)
    return ["runuser", "-u", SERVER_USER, "--"]


def _server(prefix: list[str], root: Path, command: list[str]) -> None:
    """Run one server binary; a failure becomes PeerSkipped with its output's tail."""
    done = subprocess.run(
        [*prefix, *command], cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        log = root / "server.log"
        tail = log.read_text(errors="replace") if log.exists() else ""
        output = (done.stderr + done.stdout + tail).strip().splitlines()
        reason = output[-1] if output else f"exit status {done.returncode}"
        raise PeerSkipped(f"{Path(command[0]).name} failed: {reason}")


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A PostgreSQL cluster in a temporary directory, reachable only through a Unix socket
    in that directory (no TCP port to collide with); yields the socket directory, and
    stops and deletes the cluster however the block ends."""
    root = Path(tempfile.mkdtemp(prefix="acreage-pg-"))
    data = root / "data"
    started = False
    try:
        prefix = _server_prefix(root)
        print(f"starting a throwaway PostgreSQL cluster in {root}...", file=sys.stderr)
        _server(
            prefix,
            root,
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                SERVER_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-k {shlex.quote(str(root))}",
                f"-p {PORT}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c shared_buffers=256MB",
            ]
        )
        log = root / "server.log"
        pg_ctl = str(PG_BIN / "pg_ctl")
        _server(
            prefix,
            root,
            [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"],
        )
        started = True
        yield str(root)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                cwd=root,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


def run_peer(stream: Stream, count: int, socket_dir: str) -> tuple[Run, str]:
    """The incremental PostGIS peer over the same events; returns its run and versions."""
    try:
        import psycopg  # a dev extra; imported here so the engine half runs without it
    except ImportError as exc:
        raise PeerSkipped("psycopg is not installed (pip install -e '.[dev]')") from exc
    try:
        return _run_peer(psycopg, stream, count, socket_dir)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()
        raise PeerSkipped(f"the database failed: {reason[0] if reason else exc!r}") from exc


def _run_peer(psycopg: Any, stream: Stream, count: int, socket_dir: str) -> tuple[Run, str]:
    """Shapes go over as WKB prepared before the clock starts (the engine's intake input,
    parsed JSON, is prepared the same way); the clock covers only the per-event trips."""
    wkbs = shapely.to_wkb(stream.geoms[:count]).tolist()
    days = stream.days[:count].tolist()
    with psycopg.connect(
        host=socket_dir, port=PORT, user=SERVER_USER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(SETUP_SQL)
        conn.execute("SET enable_seqscan = off")
        row = conn.execute(
            "SELECT current_setting('server_version'), postgis_lib_version(), "
            "postgis_geos_version(), postgis_proj_version()"
        ).fetchone()
        assert row is not None
        versions = f"PostgreSQL {row[0]}, PostGIS {row[1]}, GEOS {row[2]}, PROJ {row[3]}"
        backend = conn.info.backend_pid
        cursor = conn.cursor()
        total = 0.0
        clock = time.perf_counter
        server0 = _process_cpu_seconds(backend)
        cpu0 = time.process_time()
        t0 = clock()
        for i in range(count):
            cursor.execute(ADD_SQL, {"wkb": wkbs[i], "day": days[i]}, prepare=True)
            added = cursor.fetchone()
            assert added is not None
            total += float(added[0])
            if (i + 1) % PROGRESS_EVERY == 0:
                rate = (i + 1) / (clock() - t0)
                print(f"  PostGIS peer: {i + 1:,} events, {rate:,.0f} events/s", file=sys.stderr)
        elapsed = clock() - t0
        client = time.process_time() - cpu0
        server1 = _process_cpu_seconds(backend)
        pieces = conn.execute("SELECT count(*) FROM pieces").fetchone()
        assert pieces is not None
    cpu = None if server0 is None or server1 is None else client + server1 - server0
    return Run(count, elapsed, total, int(pieces[0]), cpu), versions


def _process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (the peer's server backend) from /proc, or None.

    The peer's work is split between this client and the backend, which run on different
    cores; counting both keeps its CPU figure comparable with the single-process engine.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"; fields 14, 15 = utime, stime
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """This benchmark's options, and the workload's: any other option goes to
    bench.engine's parser, so the stream is by construction the one bench.engine runs."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.postgis_peer",
        description=__doc__.splitlines()[0],
        epilog="Workload options (--seed, --overlap, --late, --region-deg, ...) are "
        "bench.engine's.",
    )
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument(
        "--no-install", action="store_true", help="do not apt-get install PostGIS if missing"
    )
    args, rest = parser.parse_known_args(argv)
    workload = engine.parse([*rest, "--events", str(args.events)])
    return args, workload


def main(argv: Sequence[str] | None = None) -> None:
    start_tuned()
    args, workload = parse(argv)
    count = args.events
    print(f"generating {count:,} fields of {VERTICES} vertices...", file=sys.stderr)
    stream = make_stream(workload, count)
    print(
        f"workload: {count:,} events, {VERTICES}-vertex fields, {workload.overlap:.0%} "
        f"overlapping an earlier one, {workload.late:.0%} late, "
        f"{workload.region_deg:g}° region, seed {workload.seed}"
    )
    report_load("at start")
    mine = run_engine(stream, count)
    print(
        f"engine with intake: {count:,} events in {mine.seconds:.2f} s = {mine.rate:,.0f} "
        f"events/s (goal >= {GOAL_ENGINE_RATE:,.0f}: {verdict(mine.rate >= GOAL_ENGINE_RATE)})"
    )
    print(f"engine with intake: {mine.cpu_note()}")
    sys.stdout.flush()
    try:
        ensure_postgis(install=not args.no_install)
        with throwaway_cluster() as socket_dir:
            peer, versions = run_peer(stream, count, socket_dir)
    except PeerSkipped as exc:
        print(f"PostGIS peer skipped: {exc}")
        print(f"engine / peer: n/a (goal >= {GOAL_RATIO:g}x: not measured)")
        report_load("at end")
        return
    print(f"PostGIS peer: {versions}")
    print(f"PostGIS peer: {count:,} events in {peer.seconds:.2f} s = {peer.rate:,.0f} events/s")
    print(f"PostGIS peer: {peer.cpu_note()} (client + server backend)")
    ratio = mine.rate / peer.rate
    print(f"engine / peer: {ratio:.2f}x (goal >= {GOAL_RATIO:g}x: {verdict(ratio >= GOAL_RATIO)})")
    if mine.cpu_seconds and peer.cpu_seconds:
        cpu_ratio = peer.cpu_seconds / mine.cpu_seconds
        print(f"engine / peer per CPU second: {cpu_ratio:.2f}x (for reference; goal is wall)")
    rel = abs(mine.total_m2 - peer.total_m2) / max(abs(peer.total_m2), 1e-300)
    print(
        f"totals: engine {mine.total_m2 / 1e4:,.4f} ha ({mine.pieces:,} pieces), peer "
        f"{peer.total_m2 / 1e4:,.4f} ha ({peer.pieces:,} pieces), relative difference "
        f"{rel:.1e} (within {AGREE_REL:g}: {'yes' if rel <= AGREE_REL else 'NO'})"
    )
    report_load("at end")


if __name__ == "__main__":
    main()
