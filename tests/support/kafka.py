"""Real-broker plumbing for tests and benchmarks: start a broker, run workers, read topics."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.codec import dumps, loads
from streams.replay import TOPIC_OF_TYPE

ROOT = Path(__file__).resolve().parents[2]
BROKER_SH = ROOT / "deploy" / "kafka" / "broker.sh"


_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_BELOW_EPHEMERAL = 10_000  # how far below the kernel's ephemeral range ports are drawn
_handed_out: set[int] = set()


def free_port(span: int = 1) -> int:
    """A port, and the `span - 1` after it, that nothing holds now and no outgoing
    connection can take later: drawn below the kernel's ephemeral range. A port the
    kernel picks for `bind(0)` is ephemeral, so any process's next connection may take it
    (or the port after it, which `make run` gives the broker's controller) before the
    broker binds it: CI failed so once (2026-12-06, "Address already in use" on the
    controller's port). None is handed out twice in one run, so a broker's two ports
    never coincide."""
    low = int(_EPHEMERAL.read_text().split()[0]) if _EPHEMERAL.exists() else 32_768
    first = max(1_024, low - _BELOW_EPHEMERAL)
    for _ in range(1_000):
        port = random.randrange(first, low - span + 1)
        ports = range(port, port + span)
        if _handed_out.isdisjoint(ports) and all(_bindable(p) for p in ports):
            _handed_out.update(ports)
            return port
    raise RuntimeError(f"no {span} free port(s) in [{first}, {low})")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Broker:
    """A real single-node KRaft broker from the Maven jars, in its own data dir."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Broker:
        subprocess.run(
            [
                "bash",
                str(BROKER_SH),
                "start",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--controller-port",
                str(self.controller_port),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return self

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(BROKER_SH), "stop", "--data-dir", str(self.data_dir)],
            check=False,
            capture_output=True,
        )


@dataclass
class Worker:
    """`acreage worker` in a subprocess, so it can be killed with SIGKILL like a crash."""

    broker: Broker
    app_id: str
    data_dir: Path
    web_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ACREAGE_BROKER=f"kafka://{self.broker.bootstrap}",
            ACREAGE_APP_ID=self.app_id,
            ACREAGE_DATA_DIR=str(self.data_dir),
            ACREAGE_WEB_PORT=str(self.web_port),
            ACREAGE_TICK_SECONDS="0.5",
            ACREAGE_PARTITIONS="4",
            ACREAGE_LOG_LEVEL="warn",
            # Operations wait this long for boundaries published with them (the default is
            # the 30 min grace); long enough for a test's burst to reach the metering topic.
            ACREAGE_FIELD_WAIT_SECONDS="10",
        )
        env.update(self.extra_env)
        return env

    def start(self, wait: float = 90.0) -> Worker:
        log = open(self.data_dir.with_suffix(".log"), "ab")  # noqa: SIM115
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=self.env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=1)
                return self
            except OSError:
                time.sleep(0.3)
        raise TimeoutError("worker did not start serving")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


async def _produce(
    bootstrap: str,
    records: Iterable[tuple[str, bytes | None, bytes]],
    max_request_size: int = 1_048_576,
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=max_request_size
    )
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def produce_events(bootstrap: str, events: Iterable[dict[str, Any]]) -> None:
    asyncio.run(
        _produce(
            bootstrap,
            ((TOPIC_OF_TYPE[e["type"]], e["apiOwner"].encode(), dumps(e)) for e in events),
        )
    )


def produce_raw(
    bootstrap: str,
    records: Iterable[tuple[str, bytes | None, bytes]],
    max_request_size: int = 1_048_576,
) -> None:
    """`max_request_size` above the default lets a test send what the broker's topic
    accepts but a default producer would refuse (poison records)."""
    asyncio.run(_produce(bootstrap, list(records), max_request_size))


async def _read_all(bootstrap: str, topic: str) -> list[tuple[int, int, bytes | None, Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[int, int, bytes | None, Any]] = []
        for tp in tps:
            while await consumer.position(tp) < end[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for msg in batch.get(tp, []):
                    value = loads(msg.value) if msg.value else None
                    out.append((tp.partition, msg.offset, msg.key, value))
        return out
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, Any]]:
    """Everything on a topic right now, decoded; values keep partition order."""
    return [(key, value) for _, _, key, value in asyncio.run(_read_all(bootstrap, topic))]


def read_topic_at(bootstrap: str, topic: str) -> list[tuple[int, int, Any]]:
    """Everything on a topic right now as (partition, offset, decoded value)."""
    return [(p, offset, value) for p, offset, _, value in asyncio.run(_read_all(bootstrap, topic))]


async def _group_state(bootstrap: str, group: str) -> tuple[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = (await admin.describe_consumer_groups([group]))[0]
        found = response.to_object()["groups"][0]
        return str(found["state"]), len(found["members"])
    finally:
        await admin.close()


def wait_for_group(broker: Broker, group: str, members: int, timeout: float = 90.0) -> None:
    """Produce only once every worker has joined: a rebalance in the middle of the first
    burst is what Faust handles worst (a partition was seen never to resume)."""

    def stable() -> bool:
        try:
            return asyncio.run(_group_state(broker.bootstrap, group)) == ("Stable", members)
        except Exception:  # noqa: BLE001 - the coordinator may not exist yet
            return False

    assert wait_until(stable, timeout, interval=0.5), f"group {group} never stable"


def wait_until(predicate: Any, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)
