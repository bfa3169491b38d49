"""Fault injection on a real broker: a cluster of worker subprocesses sharing one app id, a
publisher that keeps producing while faults hit, API pollers that behave like dashboards,
a wait for metering to finish that fails with a diagnostic instead of hanging, and the
end-of-run check of every owner/product/scope against the independent oracle.

Used by tests/integration/test_fault_matrix.py and, repeatedly, by tests/soak.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import TopicAlreadyExistsError

from aggregates.contracts import OWNER_SCOPE
from schemas.codec import dumps
from schemas.events import TOPIC_TYPES
from streams.replay import TOPIC_OF_TYPE
from streams.runtime import DEAD_LETTER_TOPIC
from streams.topics import partition_of
from tests.support.kafka import Broker, Worker, read_topic, read_topic_at
from tests.support.scenario import Scenario, build
from tests.support.snapshots import last_totals

ADMIN = "fault-matrix-admin-key"
PARTITIONS = 4  # what tests.support.kafka.Worker configures
TICK_SECONDS = 0.5  # likewise
REL = 1e-6
INPUT_TOPICS = tuple(TOPIC_TYPES)
BASE_ENV = {
    "ACREAGE_ADMIN_KEY": ADMIN,
    "ACREAGE_RATE_LIMIT_PER_MIN": "1000000",
    "ACREAGE_CHECK_RATE_LIMIT_PER_MIN": "1000000",
    # A dead member's partitions move after this: small, so a kill -9 recovers quickly.
    "ACREAGE_SESSION_TIMEOUT_SECONDS": "6",
    # The stall watchdog exits (75) after this; the cluster's supervisor restarts it.
    "ACREAGE_STALL_SECONDS": "30",
}
EXIT_STALL = 75  # the stall watchdog's exit status (streams/shutdown.py): restart heals
REPORT_ENV = "ACREAGE_FAULT_REPORT"  # JSON lines of every case's Report go here (make soak)
SEED_ENV = "ACREAGE_FAULT_SEED"


def fault_seed() -> int:
    """Random timing (restart delays) per run; set ACREAGE_FAULT_SEED to replay one."""
    return int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1 << 30))


# ---- scenario ------------------------------------------------------------------------


def owners_on_distinct_partitions(n: int, partitions: int = PARTITIONS) -> list[str]:
    """Fresh owner ids whose metering partitions all differ, so owners spread over workers."""
    found: dict[int, str] = {}
    while len(found) < n:
        owner = f"owner-{uuid.uuid4().hex[:8]}@example.com"
        found.setdefault(partition_of(owner, partitions), owner)
    return list(found.values())


def fault_scenarios(owners: int = 3, boundaries: int = 180) -> list[Scenario]:
    """≈ 390 events per owner over six days (2 Leaf users each) from real fields, each owner
    on fields of its own: creates with shared and re-digitised copies, machine files,
    operations, satellite scenes (three of them metered in a thread), updates, deletes,
    10 FAILED and 30 re-deliveries.

    Operations carry no `fieldId` (they count unclipped): clipping to a boundary that
    arrives on another topic depends on the order the topics are read in, which is issue 8,
    not this suite's subject. Without it the union_all oracle is exact in any interleaving.
    """
    return [
        build(
            owner,
            boundaries=boundaries,
            seed=11 + k,
            first=k * (boundaries + 20),
            operations=40,
            clip_operations=False,
            failed=10,
            duplicates=30,
            wide_scenes=3,
        )
        for k, owner in enumerate(owners_on_distinct_partitions(owners))
    ]


def interleave(scenarios: Sequence[Scenario]) -> list[dict[str, Any]]:
    """Owners' events taken in turn, so every owner is mid-stream when a fault hits; each
    owner's own order (creates before their updates and deletes) is kept."""
    out: list[dict[str, Any]] = []
    longest = max(len(sc.events) for sc in scenarios)
    for i in range(longest):
        out += [sc.events[i] for sc in scenarios if i < len(sc.events)]
    return out


# ---- topics and consumer group -------------------------------------------------------


async def _admin_call(bootstrap: str, fn: Any) -> Any:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return await fn(admin)
    finally:
        await admin.close()


def create_input_topics(broker: Broker, partitions: int = PARTITIONS) -> None:
    """The SPEC's input topics as the upstream platform has them, before any worker runs
    (otherwise the first produce would auto-create them with the broker's default count)."""

    async def create(admin: AIOKafkaAdminClient) -> None:
        new = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in INPUT_TOPICS]
        with contextlib.suppress(TopicAlreadyExistsError):  # a worker was first
            await admin.create_topics(new)

    asyncio.run(_admin_call(broker.bootstrap, create))


@dataclass(frozen=True)
class Member:
    url: str
    port: int | None
    partitions: dict[str, list[int]]


async def _members(admin: AIOKafkaAdminClient, group: str) -> list[Member]:
    found = (await admin.describe_consumer_groups([group]))[0].to_object()["groups"][0]
    members = []
    for m in found["members"]:
        url, port = "?", None
        try:
            meta = ConsumerProtocolMemberMetadata.decode(m["member_metadata"])
            url = json.loads(meta.user_data)["url"]
            port = int(url.rsplit(":", 1)[1].strip("/"))
        except Exception:  # noqa: BLE001 - diagnostics only
            pass
        assigned: dict[str, list[int]] = {}
        if m["member_assignment"]:
            decoded = ConsumerProtocolMemberAssignment.decode(m["member_assignment"])
            assigned = {topic: sorted(parts) for topic, parts in decoded.assignment}
        members.append(Member(url, port, assigned))
    return members


async def _offsets(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str, topics: Sequence[str]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """(committed, end) for every partition of `topics`; never-committed counts as 0."""
    tps = []
    for topic in topics:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(topic) or set()
        tps += [TopicPartition(topic, p) for p in sorted(parts)]
    end = await consumer.end_offsets(tps) if tps else {}
    got = await admin.list_consumer_group_offsets(group)
    committed = {tp: (got[tp].offset if tp in got and got[tp].offset >= 0 else 0) for tp in tps}
    return committed, dict(end)


class _Clients:
    """An admin client and a consumer, made again after the broker went away."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin: AIOKafkaAdminClient | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def get(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self.admin is None:
            self.admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap, request_timeout_ms=10_000
            )
            await self.admin.start()
        if self.consumer is None:
            self.consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False
            )
            await self.consumer.start()
        return self.admin, self.consumer

    async def close(self) -> None:
        admin, consumer, self.admin, self.consumer = self.admin, self.consumer, None, None
        try:
            if admin is not None:
                await admin.close()
            if consumer is not None:
                await consumer.stop()
        except Exception:  # noqa: BLE001 - closing clients of a broker that went away
            pass


class Stalled(AssertionError):
    """Metering did not reach the end of its topics: the message says where and why."""


def wait_metered(
    broker: Broker,
    group: str,
    *,
    timeout: float = 240.0,
    stall_after: float = 100.0,
    settle: float = 1.0,
    tick: bool = True,
) -> float:
    """Wait until metering is done, in three steps:

    1. the group's committed offsets reach the end offsets of every input partition;
    2. every metering partition receives a message after that (the leader's tick), so a
       tick is queued behind every event of every owner;
    3. the committed offsets of every metering partition reach the end offsets taken then:
       that tick, which sends the snapshots of the days it changed, has been processed.

    With `tick=False` step 2 is left out: step 3 waits for the end offsets as they are once
    the inputs are done. Then `settle` seconds. Raises Stalled, naming every partition
    behind, its lag and the member it is assigned to, when a partition made no progress for
    `stall_after` seconds (or received no tick for that long), or `timeout` ran out.
    Returns the seconds waited.
    """
    started = time.monotonic()
    metering = f"{group}-metering"

    async def run(clients: _Clients) -> None:
        deadline = started + timeout
        last: dict[TopicPartition, tuple[int, float]] = {}
        targets: dict[TopicPartition, int] = {}
        phase, phase_started = "input", time.monotonic()
        while True:
            try:
                admin, consumer = await clients.get()
                topics = INPUT_TOPICS if phase == "input" else (metering,)
                committed, end = await _offsets(admin, consumer, group, topics)
            except Exception:  # noqa: BLE001 - the broker may be restarting
                if time.monotonic() > deadline:
                    raise
                await clients.close()
                await asyncio.sleep(1.0)
                continue
            now = time.monotonic()
            if phase == "input":
                targets = end
            elif not targets:  # the metering end offsets once the inputs were done
                targets = end
                continue
            if phase == "tick":
                waiting = {tp for tp, n in end.items() if n <= targets.get(tp, 0)}
                if end and not waiting:
                    phase, targets, last = "metering", end, {}
                    continue
                if now - phase_started > stall_after or now > deadline:
                    raise Stalled(
                        f"no tick reached {len(waiting)} metering partition(s) in "
                        f"{now - phase_started:.0f}s: "
                        + ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(waiting))
                    )
                await asyncio.sleep(TICK_SECONDS)
                continue
            behind = {tp: n for tp, n in committed.items() if n < targets.get(tp, 0)}
            if not behind and targets:
                if phase == "metering":
                    return
                phase = "tick" if tick else "metering"
                phase_started, last, targets = now, {}, {}
                continue
            for tp, n in committed.items():
                if tp not in last or last[tp][0] != n:
                    last[tp] = (n, now)
            stuck = {tp for tp in behind if now - last[tp][1] > stall_after}
            if stuck or now > deadline:
                try:
                    members = await _members(admin, group)
                except Exception:  # noqa: BLE001 - diagnostics only
                    members = []
                raise Stalled(
                    _stall_text(phase, committed, targets, last, stuck or set(behind), members, now)
                )
            await asyncio.sleep(1.0)

    async def main() -> None:
        clients = _Clients(broker.bootstrap)
        try:
            await run(clients)
        finally:
            await clients.close()

    asyncio.run(main())
    time.sleep(settle)
    return time.monotonic() - started


def _stall_text(
    phase: str,
    committed: dict[TopicPartition, int],
    targets: dict[TopicPartition, int],
    last: dict[TopicPartition, tuple[int, float]],
    stuck: Iterable[TopicPartition],
    members: list[Member],
    now: float,
) -> str:
    owner_of: dict[tuple[str, int], str] = {}
    for m in members:
        for topic, parts in m.partitions.items():
            for p in parts:
                owner_of[(topic, p)] = f"worker :{m.port}"
    lines = [f"metering stalled ({phase} topics); group members: {len(members)}"]
    for tp in sorted(stuck, key=lambda t: (t.topic, t.partition)):
        lag = targets.get(tp, 0) - committed.get(tp, 0)
        idle = now - last[tp][1] if tp in last else float("nan")
        lines.append(
            f"  {tp.topic}[{tp.partition}]: committed {committed.get(tp, 0)}, "
            f"end {targets.get(tp, 0)}, lag {lag}, no progress for {idle:.0f}s, "
            f"assigned to {owner_of.get((tp.topic, tp.partition), 'nobody')}"
        )
    return "\n".join(lines)


# ---- the cluster ---------------------------------------------------------------------


@dataclass
class Cluster:
    """2–3 `acreage worker` subprocesses with one app id on one broker, and the supervisor
    a deployment has: a worker that exits without being told to is started again (the
    stall watchdog exits 75 precisely to be restarted); every such exit is recorded."""

    broker: Broker
    root: Path
    app_id: str = "fault-matrix"
    env: dict[str, str] = field(default_factory=lambda: dict(BASE_ENV))
    workers: list[Worker] = field(default_factory=list)  # every worker ever added
    events: list[str] = field(default_factory=list)  # what was done when, for the report
    exits: list[tuple[str, int]] = field(default_factory=list)  # exits nobody asked for
    t0: float = field(default_factory=time.monotonic)
    wanted: set[int] = field(default_factory=set)  # workers meant to be running
    lock: threading.RLock = field(default_factory=threading.RLock)
    closing: threading.Event = field(default_factory=threading.Event)
    supervisor: threading.Thread | None = None

    def log(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.t0:6.1f}s {what}")

    def new_worker(self, **env: str) -> Worker:
        w = Worker(
            self.broker,
            self.app_id,
            self.root / f"w{len(self.workers)}",
            extra_env={**self.env, **env},
        )
        self.workers.append(w)
        return w

    def start(self, n: int, **env: str) -> list[Worker]:
        """`n` new workers, launched at the same moment (threads), each waited for."""
        new = [self.new_worker(**env) for _ in range(n)]
        self.start_existing(new)
        return new

    def start_existing(self, workers: Sequence[Worker]) -> None:
        self.log("start " + ", ".join(self.name(w) for w in workers))
        with ThreadPoolExecutor(len(workers)) as pool:
            list(pool.map(lambda w: w.start(), workers))
        self.log("serving " + ", ".join(self.name(w) for w in workers))
        with self.lock:
            self.wanted.update(self.workers.index(w) for w in workers)
            if self.supervisor is None:
                self.supervisor = threading.Thread(
                    target=self._supervise, daemon=True, name="supervisor"
                )
                self.supervisor.start()

    def _supervise(self) -> None:
        while not self.closing.wait(0.5):
            with self.lock:
                for i, w in enumerate(self.workers):
                    if i not in self.wanted or w.proc is None or w.proc.poll() is None:
                        continue
                    code = int(w.proc.returncode)
                    self.exits.append((self.name(w), code))
                    self.log(f"{self.name(w)} exited {code} by itself: supervisor restarts it")
                    for text in log_tail(w, 3):
                        self.log(f"  {self.name(w)} log: {text[:300]}")
                    try:
                        w.start()
                        self.log(f"serving {self.name(w)}")
                    except Exception as exc:  # noqa: BLE001 - recorded, and it stays down
                        self.wanted.discard(i)
                        self.log(f"{self.name(w)} did not come back: {exc}")

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.proc is not None and w.proc.poll() is None]

    def name(self, w: Worker) -> str:
        return f"w{self.workers.index(w)}(:{w.web_port})"

    def kill9(self, w: Worker) -> None:
        with self.lock:
            self.wanted.discard(self.workers.index(w))
            self.log(f"kill -9 {self.name(w)}")
            w.kill9()

    def sigterm(self, w: Worker, timeout: float = 60.0) -> tuple[int, float]:
        """(exit status, seconds to exit); killed after `timeout`."""
        with self.lock:
            self.wanted.discard(self.workers.index(w))
        self.log(f"SIGTERM {self.name(w)}")
        started = time.monotonic()
        rc = w.stop(timeout)
        took = time.monotonic() - started
        self.log(f"{self.name(w)} exited {rc} after {took:.1f}s")
        return rc, took

    def restart(self, w: Worker, **env: str) -> None:
        w.extra_env.update(env)
        self.start_existing([w])

    def members(self) -> list[Member]:
        return list(
            asyncio.run(_admin_call(self.broker.bootstrap, lambda a: _members(a, self.app_id)))
        )

    def owner_worker(self, owner: str, timeout: float = 60.0) -> Worker:
        """The live worker whose assignment holds the owner's metering partition."""
        topic, p = f"{self.app_id}-metering", partition_of(owner, PARTITIONS)
        deadline = time.monotonic() + timeout
        while True:
            try:
                for m in self.members():
                    if p in m.partitions.get(topic, []):
                        for w in self.live():
                            if w.web_port == m.port:
                                return w
            except Exception:  # noqa: BLE001 - the coordinator may be moving
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no live worker holds {topic}[{p}]")
            time.sleep(0.5)

    def close(self) -> None:
        self.closing.set()
        if self.supervisor is not None:
            self.supervisor.join(120)
        for w in self.live():
            w.stop(30)

    def log_errors(self) -> dict[str, int]:
        """Traceback lines per worker log, for the report."""
        out = {}
        for i, w in enumerate(self.workers):
            path = w.data_dir.with_suffix(".log")
            if path.exists():
                out[f"w{i}"] = path.read_text(errors="replace").count("Traceback")
        return out

    def log_findings(self, limit: int = 8) -> list[str]:
        """Worker log lines an operator would look at first: unhandled API errors, crashed
        agents, critical exits, records ingest could not forward and the commit guard's
        holes (the first few of each worker, shortened)."""
        marks = ("unhandled error", "Crashed", "level=critical", "stall:", "internal error",
                 "not sent", "never processed")
        out = []
        for w in self.workers:
            path = w.data_dir.with_suffix(".log")
            if not path.exists():
                continue
            found = [
                ln
                for ln in path.read_text(errors="replace").splitlines()
                if any(m in ln for m in marks)
            ]
            out += [f"{self.name(w)}: {_short(ln)}" for ln in found[:limit]]
        return out


def _short(line: str) -> str:
    """A logfmt line with its traceback cut to the message and the exception raised."""
    head, _, exc = line.partition(' exc="')
    if not exc:
        return line[:300]
    last = [part.strip() for part in exc.rstrip('"').split("\\n") if part.strip()]
    return f"{head[:200]} -> {last[-1][:200] if last else ''}"


def log_tail(w: Worker, n: int) -> list[str]:
    path = w.data_dir.with_suffix(".log")
    if not path.exists():
        return []
    return path.read_text(errors="replace").splitlines()[-n:]


# ---- producing while faults hit ------------------------------------------------------


class Publisher(threading.Thread):
    """Produces the events in chunks from a background thread, so faults land mid-stream.
    A chunk the broker did not acknowledge is sent again: ids make that a re-delivery."""

    def __init__(
        self, bootstrap: str, events: list[dict[str, Any]], chunk: int = 40, pause: float = 0.4
    ) -> None:
        super().__init__(daemon=True, name="publisher")
        self.bootstrap = bootstrap
        self.events = events
        self.chunk = chunk
        self.pause = pause
        self.sent = 0
        self.resent_chunks = 0
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.seconds = 0.0

    @property
    def fraction(self) -> float:
        return self.sent / max(1, len(self.events))

    def run(self) -> None:
        started = time.monotonic()
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by wait_done
            self.error = exc
        finally:
            self.seconds = time.monotonic() - started
            self.finished.set()

    async def _run(self) -> None:
        producer: AIOKafkaProducer | None = None
        deadline = time.monotonic() + 300
        i = 0
        while i < len(self.events):
            part = self.events[i : i + self.chunk]
            try:
                if producer is None:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=self.bootstrap,
                        acks="all",
                        linger_ms=5,
                        request_timeout_ms=15_000,
                    )
                    await producer.start()
                futures = [
                    await producer.send(
                        TOPIC_OF_TYPE[e["type"]], dumps(e), key=e["apiOwner"].encode()
                    )
                    for e in part
                ]
                await asyncio.gather(*futures)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.resent_chunks += 1
                if producer is not None:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                producer = None
                await asyncio.sleep(1.0)
                continue
            i += len(part)
            self.sent = i
            await asyncio.sleep(self.pause)
        if producer is not None:
            await producer.stop()

    def wait_fraction(self, fraction: float, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.fraction < fraction and not self.finished.is_set():
            if time.monotonic() > deadline:
                raise AssertionError(f"publisher stuck at {self.sent}/{len(self.events)}")
            time.sleep(0.1)

    def wait_done(self, timeout: float = 300.0) -> None:
        assert self.finished.wait(timeout), f"publisher stuck at {self.sent}/{len(self.events)}"
        if self.error is not None:
            raise AssertionError(f"publisher failed: {self.error!r}") from self.error


# ---- dashboards polling the API ------------------------------------------------------


class ApiPoller(threading.Thread):
    """What dashboards do during the run: every live worker, in turn, is asked for an
    owner's contracts and usage summary with the admin key. 503 (with Retry-After) is
    allowed while a worker recovers; any other 5xx is a failure."""

    PATHS = ("/billing/contracts", "/usage/summary")

    def __init__(self, cluster: Cluster, owners: Sequence[str], pause: float = 0.2) -> None:
        super().__init__(daemon=True, name="api-poller")
        self.cluster = cluster
        self.owners = list(owners)
        self.pause = pause
        self.statuses: Counter[str] = Counter()
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        n = 0
        while not self._halt.is_set():
            for w in self.cluster.live():
                owner = self.owners[n % len(self.owners)]
                path = self.PATHS[n % len(self.PATHS)]
                n += 1
                self._one(session, w, path, owner)
            self._halt.wait(self.pause)

    def _one(self, session: requests.Session, w: Worker, path: str, owner: str) -> None:
        url = f"http://127.0.0.1:{w.web_port}{path}"
        try:
            resp = session.get(
                url,
                params={"apiOwner": owner, "unit": "m2"},
                headers={"Authorization": f"Bearer {ADMIN}"},
                timeout=15,
            )
        except requests.Timeout:
            self.statuses["timeout"] += 1
            return
        except requests.ConnectionError:
            self.statuses["refused"] += 1  # the worker is down or not serving yet
            return
        self.statuses[str(resp.status_code)] += 1
        if resp.status_code >= 500 and resp.status_code != 503:
            when = time.monotonic() - self.cluster.t0
            self.failures.append(
                f"{when:.1f}s {resp.status_code} {path} on :{w.web_port}: {resp.text[:200]}"
            )
        elif resp.status_code == 503 and "Retry-After" not in resp.headers:
            self.failures.append(f"503 without Retry-After: {path} on :{w.web_port}")

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    @property
    def server_errors(self) -> int:
        return len(self.failures)


# ---- the verdict ---------------------------------------------------------------------


@dataclass
class Report:
    """Everything a case found, numbers first; `problems()` is empty when it passed."""

    case: str
    seed: int
    seconds: float = 0.0
    metered_seconds: float = 0.0
    stall: str | None = None
    losses: list[str] = field(default_factory=list)  # scopes below the oracle, or missing
    duplicates: list[str] = field(default_factory=list)  # scopes above the oracle
    revision_conflicts: list[str] = field(default_factory=list)
    missing_records: list[str] = field(default_factory=list)
    double_counted: list[str] = field(default_factory=list)  # different records adding area
    repeated_records: int = 0  # identical re-sends after a crash: allowed (README)
    api_mismatches: list[str] = field(default_factory=list)
    api_5xx: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # case-specific findings, crashes
    healed: list[str] = field(default_factory=list)  # watchdog exits (75), restarted
    diagnostics: list[str] = field(default_factory=list)  # worker log lines worth reading
    statuses: dict[str, int] = field(default_factory=dict)
    scopes: int = 0
    events: int = 0
    extra_records: int = 0
    timeline: list[str] = field(default_factory=list)
    tracebacks: dict[str, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        out = []
        if self.stall:
            out.append(self.stall)
        for name in (
            "losses",
            "duplicates",
            "revision_conflicts",
            "missing_records",
            "double_counted",
            "api_mismatches",
            "api_5xx",
            "other",
        ):
            items: list[str] = getattr(self, name)
            if items:
                out.append(f"{name} ({len(items)}):\n    " + "\n    ".join(items[:25]))
        return out

    def summary(self) -> str:
        return (
            f"[{self.case}] {self.seconds:.0f}s seed={self.seed} "
            f"stall={'yes' if self.stall else 'no'} losses={len(self.losses)} "
            f"duplicates={len(self.duplicates)} 5xx={len(self.api_5xx)} "
            f"revision_conflicts={len(self.revision_conflicts)} "
            f"missing_records={len(self.missing_records)} "
            f"double_counted={len(self.double_counted)} repeated={self.repeated_records} "
            f"api_mismatches={len(self.api_mismatches)} other={len(self.other)} "
            f"healed={len(self.healed)} "
            f"api={dict(sorted(self.statuses.items()))}"
        )

    def save(self) -> None:
        target = os.environ.get(REPORT_ENV)
        if target:
            with open(target, "a") as f:
                f.write(json.dumps(asdict(self)) + "\n")

    def assert_ok(self) -> None:
        self.save()
        print("\n" + self.summary())
        problems = self.problems()
        assert not problems, (
            self.summary()
            + "\n"
            + "\n".join(problems)
            + "\ntimeline:\n  "
            + "\n  ".join(self.timeline)
            + "\nworker logs:\n  "
            + "\n  ".join(self.diagnostics or ["(nothing notable)"])
        )


def _rel(got: float, want: float) -> float:
    return (got - want) / max(abs(want), 1.0)


def _compare(
    snaps: list[tuple[bytes | None, Any]], scenarios: Sequence[Scenario]
) -> tuple[list[str], list[str]]:
    """(losses, duplicates) of the latest totals against each owner's oracle."""
    latest: dict[str, dict[str, Any]] = {}
    for key, value in snaps:
        if value is None:
            continue
        k = (key or b"").decode()
        if k not in latest or value["revision"] > latest[k]["revision"]:
            latest[k] = value
    losses, dups = [], []
    for sc in scenarios:
        mine = {k: v for k, v in latest.items() if v["apiOwner"] == sc.owner}
        got = last_totals(mine)
        for (product, scope), want in sorted(sc.oracle().items()):
            name = f"{sc.owner} {product} {scope}"
            if (product, scope) not in got:
                losses.append(f"{name}: missing (oracle {want:.1f} m²)")
                continue
            r = _rel(got[(product, scope)], want)
            line = f"{name}: {got[(product, scope)]:.1f} vs oracle {want:.1f} m² ({r:+.4%})"
            if r < -REL:
                losses.append(line)
            elif r > REL:
                dups.append(line)
    return losses, dups


def _revision_conflicts(snaps: list[tuple[bytes | None, Any]], owners: set[str]) -> list[str]:
    """A key sent twice with one revision must say the same (emittedAt aside)."""
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    for key, value in snaps:
        if value is None or value["apiOwner"] not in owners:
            continue
        body = {k: v for k, v in value.items() if k != "emittedAt"}
        seen[((key or b"").decode(), value["revision"])].add(json.dumps(body, sort_keys=True))
    return [
        f"{key} revision {rev}: {len(bodies)} different contents"
        for (key, rev), bodies in sorted(seen.items())
        if len(bodies) > 1
    ]


def _records(
    broker: Broker, scenarios: Sequence[Scenario]
) -> tuple[list[str], list[str], int, int]:
    """(events with no usage record, events with two *different* records adding area,
    extra records, identical records re-sent). After a crash a record may be sent again
    with the same content (README, delivery guarantee: consumers dedupe on eventId);
    two records of one event that disagree, or both add area differently, are a bug."""
    by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    owners = {sc.owner for sc in scenarios}
    for _, v in read_topic(broker.bootstrap, "usage.records"):
        if v is not None and v["apiOwner"] in owners:
            by_event[v["eventId"]].append(v)
    ids = {e["id"] for sc in scenarios for e in sc.events}
    missing = sorted(ids - set(by_event))
    double = []
    repeated = 0
    for eid, recs in sorted(by_event.items()):
        adding = [r for r in recs if r["areaAddedUserM2"] > 0 or r["areaAddedOwnerM2"] > 0]
        if len(adding) > 1 and all(r == adding[0] for r in adding):
            repeated += len(adding) - 1
        elif len(adding) > 1:
            double.append(
                f"{eid}: {len(adding)} different records adding area "
                f"(user/owner m²: {', '.join(_areas(r) for r in adding)}; "
                f"{_differences(adding)})"
            )
    sent = sum(1 for sc in scenarios for _ in sc.events)
    extra = sum(len(r) for r in by_event.values()) - sent
    return missing, double, extra, repeated


def _differences(records: list[dict[str, Any]]) -> str:
    """Which fields the records disagree on, with each record's value: what a reader needs
    to tell a replay computed in another order from a field rebuilt differently."""
    keys = sorted({k for r in records for k in r if any(r.get(k) != o.get(k) for o in records)})
    return "; ".join(f"{k}: {' | '.join(json.dumps(r.get(k)) for r in records)}" for k in keys)


def _areas(record: dict[str, Any]) -> str:
    return f"{record['areaAddedUserM2']:.3f}/{record['areaAddedOwnerM2']:.3f}"


def _api_totals(cluster: Cluster, scenarios: Sequence[Scenario]) -> list[str]:
    """GET /billing/contracts/{id} on every live worker against the oracle: `used` is the
    billable area, the sum of the Leaf-user totals (SPEC §3), and `footprint` the owner
    scope (overlaps removed)."""
    bad: list[str] = []
    headers = {"Authorization": f"Bearer {ADMIN}"}

    def get(w: Worker, path: str, owner: str, **params: Any) -> requests.Response:
        deadline = time.monotonic() + 30
        while True:
            resp = requests.get(
                f"http://127.0.0.1:{w.web_port}{path}",
                params={"apiOwner": owner, "unit": "m2", **params},
                headers=headers,
                timeout=30,
            )
            if resp.status_code != 503 or time.monotonic() > deadline:
                return resp
            time.sleep(1)

    for w in cluster.live():
        for sc in scenarios:
            oracle = sc.oracle()
            listed = get(w, "/billing/contracts", sc.owner, size=100)
            if listed.status_code != 200:
                bad.append(f":{w.web_port} contracts of {sc.owner}: {listed.status_code}")
                continue
            contracts = {c["product"]: c["contractId"] for c in listed.json()}
            for product in sorted({p for p, s in oracle if s == OWNER_SCOPE}):
                want = oracle[(product, OWNER_SCOPE)]
                if product not in contracts:
                    bad.append(f":{w.web_port} {sc.owner} {product}: no contract")
                    continue
                resp = get(w, f"/billing/contracts/{contracts[product]}", sc.owner)
                if resp.status_code != 200:
                    bad.append(f":{w.web_port} {sc.owner} {product}: {resp.status_code}")
                    continue
                body = resp.json()
                billable = sum(
                    v for (p, scope), v in oracle.items() if p == product and scope != OWNER_SCOPE
                )
                for name, got, expected in (
                    ("used", body["used"], billable),
                    ("footprint", body.get("footprint"), want),
                ):
                    if got is None or abs(_rel(got, expected)) > REL:
                        shown = "absent" if got is None else f"{got:.1f}"
                        rel = "" if got is None else f" ({_rel(got, expected):+.4%})"
                        bad.append(
                            f":{w.web_port} {sc.owner} {product}: {name} {shown} vs oracle "
                            f"{expected:.1f} m²{rel}"
                        )
    return bad


def verify(
    report: Report,
    cluster: Cluster,
    scenarios: Sequence[Scenario],
    *,
    poller: ApiPoller | None = None,
    converge: float = 20.0,
    metered_timeout: float = 240.0,
) -> Report:
    """The end of every case: metering finished (or a stall diagnosed), then every
    owner/product/scope against the oracle, snapshot revisions, usage records, the API."""
    report.events = sum(len(sc.events) for sc in scenarios)
    report.scopes = sum(len(sc.oracle()) for sc in scenarios)
    try:
        report.metered_seconds = wait_metered(
            cluster.broker, cluster.app_id, timeout=metered_timeout
        )
        cluster.log(f"metered after {report.metered_seconds:.0f}s of waiting")
    except Stalled as exc:
        report.stall = str(exc)
        cluster.log("stalled")
    deadline = time.monotonic() + (converge if report.stall is None else 0)
    while True:
        snaps = read_topic(cluster.broker.bootstrap, "usage.consumption-daily")
        report.losses, report.duplicates = _compare(snaps, scenarios)
        if not (report.losses or report.duplicates) or time.monotonic() > deadline:
            break
        time.sleep(2)
    report.revision_conflicts = _revision_conflicts(snaps, {sc.owner for sc in scenarios})
    (
        report.missing_records,
        report.double_counted,
        report.extra_records,
        report.repeated_records,
    ) = _records(
        cluster.broker, scenarios
    )
    if poller is not None:
        poller.stop()
        report.api_5xx = list(poller.failures)
        report.statuses = dict(poller.statuses)
    if report.stall is None:
        report.api_mismatches = _api_totals(cluster, scenarios)
    for name, code in cluster.exits:
        if code == EXIT_STALL:
            report.healed.append(f"{name} exited {code} (stall watchdog) and was restarted")
        else:
            report.other.append(f"{name} exited {code} by itself (crash) and was restarted")
    report.timeline = list(cluster.events)
    report.tracebacks = cluster.log_errors()
    report.diagnostics = cluster.log_findings() + _trace(cluster, report.missing_records)
    _keep_logs(cluster, report)
    return report


def _keep_logs(cluster: Cluster, report: Report) -> None:
    """A failing case's worker logs go beside the soak's reports: pytest's own temporary
    directories are rotated away long before a 70-minute soak ends."""
    target = os.environ.get(REPORT_ENV)
    if not target or not report.problems():
        return
    folder = Path(target).with_suffix(".logs")
    folder.mkdir(exist_ok=True)
    for w in cluster.workers:
        log = w.data_dir.with_suffix(".log")
        if log.exists():
            shutil.copy(log, folder / f"{report.case}-{report.seed}-{cluster.name(w)}.log")


def _traced(topic: str, metering: str, value: Any) -> Any:
    """The event a record of `topic` carries: a dead letter holds it as text."""
    if topic == metering:
        return (value or {}).get("event", value)
    if topic == DEAD_LETTER_TOPIC:
        with contextlib.suppress(ValueError, TypeError):
            return json.loads((value or {}).get("payload", ""))
        return None
    return value


def _trace(cluster: Cluster, missing: Sequence[str], limit: int = 12) -> list[str]:
    """Where each event without a usage record got to: its input record and, if ingest
    forwarded it, its metering message(s) — which side lost it."""
    if not missing:
        return []
    wanted = set(missing[:limit])
    found: dict[str, list[str]] = defaultdict(list)
    metering = f"{cluster.app_id}-metering"
    for topic in (*TOPIC_TYPES, metering, DEAD_LETTER_TOPIC):
        for partition, offset, value in read_topic_at(cluster.broker.bootstrap, topic):
            event, place = _traced(topic, metering, value), f"{topic}[{partition}]@{offset}"
            if isinstance(event, dict) and event.get("id") in wanted:
                reason = (value or {}).get("reason") if topic == DEAD_LETTER_TOPIC else None
                found[event["id"]].append(f"{place} ({reason})" if reason else place)
    return [
        f"missing {eid}: " + (" -> ".join(found[eid]) or "not on any topic")
        + ("" if any(metering in place for place in found[eid]) else " (never forwarded)")
        for eid in sorted(wanted)
    ]
