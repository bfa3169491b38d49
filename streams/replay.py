"""`acreage replay`: publish events from a GeoJSON FeatureCollection or a JSONL file."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.codec import dumps, loads
from schemas.events import TOPIC_TYPES
from streams.cli_errors import CliError, broker_error
from streams.settings import Settings

TOPIC_OF_TYPE = {t: topic for topic, types in TOPIC_TYPES.items() for t in types}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="GeoJSON FeatureCollection or JSONL of events")
    parser.add_argument("--owner", default="owner@example.com", help="apiOwner for GeoJSON")
    parser.add_argument("--users", default="user-a,user-b", help="Leaf users for GeoJSON")
    parser.add_argument(
        "--shared-every",
        type=int,
        default=4,
        help="GeoJSON: every Nth field is connected under the next user too (overlap)",
    )
    parser.add_argument("--limit", type=int, default=0, help="publish at most N features")
    parser.add_argument("--timestamp", default=None, help="event time for GeoJSON (default now)")


def boundary_events(
    collection: dict[str, Any],
    owner: str,
    users: list[str],
    shared_every: int,
    timestamp: str,
    source: str,
) -> Iterator[dict[str, Any]]:
    """Each field goes to one user in turn; every Nth also to the next, as farms share land."""
    for i, feature in enumerate(collection["features"]):
        if not isinstance(feature, dict) or "geometry" not in feature:
            raise CliError(f"{source}: feature {i} has no geometry")
        owners_of = [users[i % len(users)]]
        if shared_every and len(users) > 1 and i % shared_every == 0:
            owners_of.append(users[(i + 1) % len(users)])
        for user in owners_of:
            yield {
                "id": f"replay:{source}:{i}:{user}",
                "type": "fieldBoundaryCreated",
                "timestamp": timestamp,
                "apiOwner": owner,
                "leafUserId": user,
                "fieldId": f"{source}:{i}",
                "geometry": feature["geometry"],
            }


def load_events(args: argparse.Namespace) -> list[dict[str, Any]]:
    try:
        text = args.path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{args.path}: not UTF-8 text") from exc
    if args.path.suffix in (".jsonl", ".ndjson"):
        events = list(_jsonl_events(args.path, text))
    else:
        timestamp = args.timestamp or datetime.now(UTC).isoformat()
        events = list(
            boundary_events(
                _feature_collection(args.path, text),
                args.owner,
                args.users.split(","),
                args.shared_every,
                timestamp,
                args.path.stem,
            )
        )
    return events[: args.limit] if args.limit else events


def _jsonl_events(path: Path, text: str) -> Iterator[dict[str, Any]]:
    """Checked before anything is sent: a bad line found halfway would leave half a
    file published, and a rerun would publish that half twice."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = loads(line)
        except ValueError as exc:
            raise CliError(f"{path} line {number}: not JSON ({exc})") from exc
        if not isinstance(event, dict):
            raise CliError(f"{path} line {number}: not a JSON object")
        yield event


def _feature_collection(path: Path, text: str) -> dict[str, Any]:
    try:
        collection = loads(text)
    except ValueError as exc:
        raise CliError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(collection, dict) or not isinstance(collection.get("features"), list):
        raise CliError(f"{path}: not a GeoJSON FeatureCollection (no features list)")
    return collection


IN_FLIGHT = 500  # sends not yet acknowledged by the broker before the replay waits
PROGRESS_SECONDS = 10.0  # a log line this often when stderr is not a terminal


async def publish(events: list[dict[str, Any]], bootstrap: list[str]) -> None:
    """Waits for the broker every IN_FLIGHT sends: memory stays bounded and a replay
    goes only as fast as the broker takes it (what the worker then does with the
    burst is its own backpressure)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    progress = Progress(len(events))
    try:
        pending: list[asyncio.Future[Any]] = []
        for n, event in enumerate(events, 1):
            topic = TOPIC_OF_TYPE.get(str(event.get("type")), "events.field-boundaries")
            key = str(event.get("apiOwner", "")).encode()
            pending.append(await producer.send(topic, dumps(event), key=key))
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending = []
            progress.show(n)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    progress.done()


class Progress:
    """A bar on a terminal; in a log, one line every PROGRESS_SECONDS, since a bar there
    is noise and an error after it would not start a line of its own."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self._tty = sys.stderr.isatty()
        self._clock = clock
        self._last = clock()
        self._step = max(1, total // 50)

    def show(self, done: int) -> None:
        if self._tty:
            if done % self._step == 0 or done == self.total:
                width = 40
                filled = width * done // self.total
                sys.stderr.write(
                    f"\rreplay [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}"
                )
                sys.stderr.flush()
        elif self._clock() - self._last >= PROGRESS_SECONDS:
            self._last = self._clock()
            print(f"replay: {done}/{self.total} events sent", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._tty:
            sys.stderr.write("\n")


def run(args: argparse.Namespace, settings: Settings) -> int:
    servers = settings.bootstrap_servers()
    events = load_events(args)
    try:
        asyncio.run(publish(events, servers))
    except (KafkaError, OSError) as exc:
        raise broker_error(servers, exc) from exc
    print(f"published {len(events)} events to {','.join(servers)}")
    return 0
