"""How long the worker's loop was held, seen from outside: the slowest answer to a cheap
request asked at a steady pace. Every request is served on the loop that also meters,
so a loop held for a second answers a second late."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.goals import report_load
from tests.support.kafka import Broker, Worker


async def slowest_answer(url: str, done: asyncio.Event, every_s: float = 0.1) -> float:
    """The slowest of the worker's answers to `url` asked every `every_s`, from its first."""
    slowest = 0.0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        while not done.is_set():
            asked = time.monotonic()
            try:
                async with session.get(url) as resp:
                    await resp.read()
                slowest = max(slowest, time.monotonic() - asked)
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(every_s)
    return slowest


@dataclass
class Held:
    """The slowest answer seen while a `loop_held` block ran, set when it ends."""

    ms: float = 0.0


@asynccontextmanager
async def loop_held(url: str, every_s: float = 0.01) -> AsyncIterator[Held]:
    """`url` asked every `every_s` while the block runs; its slowest answer, in ms."""
    done, held = asyncio.Event(), Held()
    probing = asyncio.create_task(slowest_answer(url, done, every_s))
    try:
        yield held
    finally:
        done.set()
        held.ms = 1000 * await probing


@dataclass
class Bench:
    """A broker and the workers a benchmark started in its scratch directory, one group."""

    broker: Broker
    root: Path
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def health(self) -> str:
        return self.url("/health")

    def url(self, path: str) -> str:
        """`path` on the first worker, the one a benchmark probes."""
        return f"http://127.0.0.1:{self.workers[0].web_port}{path}"

    def join(self) -> Worker:
        """Another worker in the same group, started (blocks until it serves)."""
        data_dir = self.root / f"worker-{len(self.workers)}"
        worker = Worker(self.broker, "bench", data_dir, extra_env=self.env).start()
        self.workers.append(worker)
        return worker


def on_one_worker(
    name: str, run: Callable[[Bench], Coroutine[Any, Any, None]],
    env: dict[str, str] | None = None,
) -> None:
    """`run(bench)` against a broker and one worker started for it in a scratch
    directory, the machine's load printed before and after."""
    report_load("before")
    root = Path(tempfile.mkdtemp(prefix=f"acreage-{name}-"))
    bench = Bench(Broker(root / "kafka").start(), root, env or {})
    try:
        bench.join()
        asyncio.run(run(bench))
    finally:
        for worker in bench.workers:
            worker.stop()
        bench.broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    report_load("after")
