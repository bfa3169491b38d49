"""A worker's metering state, one Meter per metering partition it owns.

A partition's Meter is built only by the metering agent, when the agent receives the
partition's first message after an assignment. Faust resumes a partition's stream only
once the table's changelog recovery has ended, and it drops buffered messages on revoke,
so receiving that message is the proof that the table is complete. (The
`on_partitions_assigned` signal comes before recovery ends: a Meter built there, or by
an API request in that window, would miss records, re-meter events and reuse ids.)
Until its Meter exists, a partition's owners get 503 from the API.

An event whose shape is cut in parts (a satellite scene: hundreds of pieces a ledger,
0.2-1.5 s each) is metered in a thread, and its thousands of writes stored a slice at a
time, so the loop keeps answering the API and the broker meanwhile (`changing`). Only
loop code starts that thread, so loop code that found the partition settled reads its
Meter undisturbed until its next await: the API waits for `settled` before it reads, and
`meter_of` refuses a partition that is changing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import rocksdict

from aggregates.journal import JOURNAL_PREFIX, repairs
from aggregates.meter import Meter, Outcome
from aggregates.state import split_key
from streams.topics import partition_of

log = logging.getLogger(__name__)


class NotReady(Exception):
    """The owner's partition is assigned here, but its state is still being recovered."""


@dataclass
class PartitionState:
    """A partition's Meter and the snapshots and alerts it still has to send.

    Snapshots and alerts wait here until their bookkeeping is durable; a rebuilt Meter
    puts back what its store says may not have reached the broker.
    """

    meter: Meter
    pending: Outcome = field(default_factory=Outcome)


class MeterHolder:
    """The Meters of the metering partitions assigned to this worker."""

    def __init__(
        self, table: Any, build: Callable[..., Meter], partitions: int
    ) -> None:
        self._table = table
        self._build = build
        self._partitions = partitions
        self._states: dict[int, PartitionState] = {}
        self._assigned: set[int] = set()
        self._serving: set[int] = set()
        self._changing: dict[int, asyncio.Event] = {}  # Meters a thread is changing

    # ---- rebalance signals ----------------------------------------------------------

    def revoked(self) -> None:
        """Nothing is served while the group rebalances: a partition may be moving."""
        self._serving.clear()

    def assigned(self, partitions: Iterable[int]) -> None:
        """Partitions kept across the rebalance keep their Meter: nobody else wrote their
        table meanwhile. New ones wait for the agent to build theirs."""
        self._assigned = set(partitions)
        gone = [self._states.pop(p) for p in set(self._states) - self._assigned]
        self._serving = set(self._states)
        _let_go(gone)

    # ---- the metering agent ---------------------------------------------------------

    async def state_for(self, partition: int, offset: int) -> PartitionState:
        """Only the metering agent calls this, with the offset of the message it is
        about to meter: see the module docstring.

        The Meter is built in a thread (7.5 s at 200,000 events of state), so the
        worker's loop answers the API meanwhile: 503 for this partition's owners, figures
        for the others'. Nothing writes the partition's table during the build: only this
        agent does, and it awaits the build; a rebalance waits for the message too."""
        state = self._states.get(partition)
        if state is None:
            self._repair(partition)
            state = await asyncio.to_thread(self._rebuild, partition, offset)
            self._states[partition] = state
            self._assigned.add(partition)
            self._serving.add(partition)
        return state

    @asynccontextmanager
    async def changing(self, partition: int) -> AsyncIterator[None]:
        """While the agent meters one message into the partition's Meter in a thread and
        stores its writes a slice at a time, readers wait on `settled`. A change stopped
        halfway (the worker stopping) leaves the Meter ahead of its table: it is dropped,
        as a failed one is, and the next message rebuilds it after undoing the cut
        message's writes (`_repair`)."""
        done = self._changing[partition] = asyncio.Event()
        try:
            yield
        except asyncio.CancelledError:
            self.drop(partition)
            raise
        finally:
            del self._changing[partition]
            done.set()

    async def settled(self, api_owner: str | None = None) -> None:
        """Returns once no thread changes the owner's Meter (every Meter if None)."""
        only = None if api_owner is None else partition_of(api_owner, self._partitions)
        while waits := [done.wait() for p, done in list(self._changing.items())
                        if only in (None, p)]:
            await asyncio.gather(*waits)

    def drop(self, partition: int) -> None:
        """Forget a Meter whose memory may be ahead of its table (an event failed
        half-way); the next message rebuilds it from what was persisted."""
        gone = self._states.pop(partition, None)
        self._serving.discard(partition)
        _let_go([gone] if gone is not None else [])

    # ---- readers (API, health) ------------------------------------------------------

    def meter_of(self, api_owner: str) -> Meter:
        partition = partition_of(api_owner, self._partitions)
        if partition not in self._readable():
            raise NotReady(partition)
        return self._states[partition].meter

    def meter_with_contract(self, contract_id: str) -> Meter | None:
        """The local Meter holding a contract; NotReady when it may be in one still
        recovering, None when it is on no partition of this worker."""
        for partition in self._readable():
            meter = self._states[partition].meter
            if contract_id in meter.contracts:
                return meter
        if unread := self._assigned - self._readable():
            raise NotReady(min(unread))
        return None

    def readiness(self) -> dict[int, bool]:
        """Each assigned metering partition: is its state built from a recovered table."""
        return {p: p in self._serving for p in sorted(self._assigned)}

    def serving(self) -> list[int]:
        """The metering partitions whose state is built from a recovered table and whose
        table holds no message half-stored (a scene's writes go in slices)."""
        return sorted(self._readable())

    def meters(self) -> list[Meter]:
        return [self._states[p].meter for p in sorted(self._serving)]

    def all_served(self) -> dict[int, Meter]:
        """The Meter of every partition assigned here, for a read across all owners;
        NotReady while any of them recovers, as the read would miss its owners."""
        if unread := self._assigned - self._readable():
            raise NotReady(min(unread))
        return {p: self._states[p].meter for p in sorted(self._serving)}

    def _readable(self) -> set[int]:
        """Partitions whose Meter the loop may read now: built, and no thread changing it."""
        return self._serving - self._changing.keys()

    # ---- building -------------------------------------------------------------------

    def _rebuild(self, partition: int, offset: int) -> PartitionState:
        """Records of messages from `offset` on are sent again (Meter.unsent): their
        replay changes nothing, and nothing proves they reached the broker. It only
        reads the table: `_repair`, which writes through Faust's table, ran before."""
        started = time.perf_counter()
        items = ((_text(k), v) for k, v in self._partition_items(partition))
        meter = self._build(items, resend_from=offset, read=self.reader(partition),
                            scan=partial(self.scan, partition))
        log.info(
            "partition %d rebuilt: %d owners, %d scopes in %.2fs",
            partition,
            len(meter.owners()),
            len(meter.bounded.items()),
            time.perf_counter() - started,
        )
        return PartitionState(meter, meter.unsent())

    def _repair(self, partition: int) -> None:
        """Undo the writes of a message a crash cut short, in the table itself, so the
        Meter and any later rebuild start from the state its replay must see. Called
        on the loop while the partition's first message is processed, before the build:
        the writes go to its changelog partition and that message's ack waits for them."""
        undo = repairs(self.prefixed(partition, JOURNAL_PREFIX))
        for k, v in undo:
            if v is None:
                self._table.pop(k, None)
            else:
                self._table[k] = v
        if undo:
            log.warning("partition %d: undid %d writes of messages a crash cut short",
                        partition, len(undo))

    def prefixed(self, partition: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        """The records of one kind sort together (journals, webhook deliveries): RocksDB
        seeks to them."""
        store = self._table.data
        if hasattr(store, "_db_for_partition"):
            start = prefix.encode()
            for raw, value in store._db_for_partition(partition).items(from_key=start):
                if not raw.startswith(start):
                    return
                yield _text(raw), value
            return
        for raw, value in self._partition_items(partition):
            if _text(raw).startswith(prefix):
                yield _text(raw), value

    def reader(self, partition: int) -> Callable[[str], bytes | None]:
        """Reads of the partition's own store, the one its writes go to: RocksDB's get
        on that partition's database, without Faust's search of every partition.

        The database is looked up at each read, never kept: on revoke Faust drops its
        handle and opens a new one if the partition comes back, and a handle held here
        would keep RocksDB's lock, so the reopening of a partition this worker keeps
        across a rebalance would fail."""
        store = self._table.data
        if hasattr(store, "_db_for_partition"):
            return lambda k: _value(store._db_for_partition(partition).get(k.encode()))
        return lambda k: _value(store.get(k))

    def scan(self, partition: int, lo: str, hi: str) -> Iterator[str]:
        """Keys in [lo, hi) of the partition's store, last first: RocksDB seeks, so a
        page of `/usage/details` costs its own records, not the owner's history."""
        store = self._table.data
        if not hasattr(store, "_db_for_partition"):
            found = (_text(k) for k, _ in self._partition_items(partition))
            yield from sorted((k for k in found if lo <= k < hi), reverse=True)
            return
        yield from scan_back(store._db_for_partition(partition), lo, hi)

    def _partition_items(self, partition: int) -> Iterator[tuple[Any, bytes]]:
        """RocksDB keeps one database per partition; other stores are filtered by owner."""
        store = self._table.data
        if hasattr(store, "_db_for_partition"):
            offset_key = store.offset_key  # Faust's own record of its changelog offset
            for raw, value in full_scan(store._db_for_partition(partition)):
                if raw != offset_key:
                    yield raw, value
            return
        for raw, value in store.items():
            if partition_of(split_key(_text(raw))[1], self._partitions) == partition:
                yield raw, value


def _let_go(states: list[PartitionState]) -> None:
    """Frees Meters in a thread of their own. A Meter holds no reference cycle, so it is
    freed when its last reference goes, whatever the collector froze
    (streams/collector.py), but freeing destroys its R-trees, one libspatialindex call
    an index: 410 ms on the loop when a rebalance took 1,500 owners away. ctypes lets go
    of the GIL in each call, so from a thread the loop runs meanwhile. (A Meter dropped
    after a failure may still be referred to by the message's frames; it is then freed
    when they end, on the loop.)"""
    if states:
        threading.Thread(target=states.clear, name="acreage-let-go", daemon=True).start()


def full_scan(db: Any) -> Iterator[tuple[bytes, bytes]]:
    """Every item of a RocksDB, as a rebuild reads them: in order, with readahead, and
    without filling the block cache, which the metering path reads through and a
    single pass over the whole partition would only churn. At 200,000 events of state
    (1.6M records) this pass takes 1.5 s instead of 2.3-3.0 s."""
    options = rocksdict.ReadOptions()
    options.fill_cache(False)  # type: ignore[call-arg]  # the stub lacks the flag it takes
    options.set_readahead_size(_READAHEAD)
    yield from db.items(read_opt=options)


_READAHEAD = 4 * 2**20


def scan_back(db: Any, lo: str, hi: str) -> Iterator[str]:
    """Keys in [lo, hi) of a RocksDB opened with raw keys (as Faust opens it), last first;
    values are left where they are, most keys scanned are not wanted."""
    it = db.iter()
    end, start = hi.encode(), lo.encode()
    it.seek_for_prev(end)
    if it.valid() and it.key() == end:
        it.prev()
    while it.valid() and it.key() >= start:
        yield it.key().decode()
        it.prev()


def _value(found: Any) -> bytes | None:
    return None if found is None else bytes(found)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
