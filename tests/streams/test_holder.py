"""The holder's rebuild on a real RocksDB (rocksdict, as Faust's store uses it): a message
a crash cut short is undone in the table before the Meter is built from it."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from aggregates.contracts import OWNER_SCOPE, contract_id_for
from aggregates.journal import JOURNAL_PREFIX, applied, bracket
from aggregates.meter import Meter
from aggregates.products import Product
from aggregates.records import MeterEvent
from streams.collector import Freezer
from streams.holder import MeterHolder, NotReady
from tests.aggregates.test_meter import OWNER, area, sq
from tests.support.agents import WAIT

FILE = "providerFileProcessingFinished"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


class Store:
    """Faust's RocksDB store as the holder reads it: one database per partition, and the
    key under which Faust keeps its changelog offset there."""

    offset_key = b"__faust\0offset__"

    def __init__(self, path: Path) -> None:
        self.db = Rdict(str(path), options=Options(raw_mode=True))

    def _db_for_partition(self, partition: int) -> Rdict:
        return self.db


class Table:
    """Writes go to the store, as a Faust table's do (its changelog is not under test)."""

    def __init__(self, store: Store) -> None:
        self.data = store

    def __setitem__(self, key: str, value: bytes) -> None:
        self.data.db[key.encode()] = value

    def pop(self, key: str, default: object = None) -> object:
        raw = key.encode()
        value = self.data.db.get(raw)
        if value is not None:
            del self.data.db[raw]
        return value if value is not None else default


def write(table: Table, writes: list[tuple[str, bytes | None]]) -> None:
    for k, v in writes:
        if v is None:
            table.pop(k)
        else:
            table[k] = v


def event(event_id: str, geom: object, days: float) -> MeterEvent:
    return MeterEvent(event_id, FILE, T0 - timedelta(days=days), OWNER, "u1", geometry=geom)  # type: ignore[arg-type]


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Table]:
    store = Store(tmp_path / "state-0.db")
    yield Table(store)
    store.db.close()


async def test_a_message_cut_short_is_undone_in_the_table_and_its_replay_counts_as_before(
    table: Table,
) -> None:
    """The second event is dated earlier and moves the first one's area to its own day:
    its first writes delete the old piece. A crash keeps only those, and a Meter built on
    them counted the area again as the event's own."""
    first = Meter(grace=timedelta(0))
    write(table, bracket(first.apply(event("e1", sq(10, 50), 0), T0, 1).writes, 1, lambda _: None))
    before = {k: v for k, v in table.data.db.items()}
    moved = first.apply(event("e2", sq(10, 50), 1), T0, 2)
    cut = bracket(moved.writes, 2, lambda k: before.get(k.encode()))
    write(table, cut[:3])  # its journal and its first two writes

    holder = MeterHolder(table, partial(Meter.from_state, grace=timedelta(0)), 1)
    state = await holder.state_for(0, offset=2)
    rebuilt = state.meter
    assert state.pending.records == []  # the cut-short message's marker was not stored

    assert {k: v for k, v in table.data.db.items() if not k.startswith(JOURNAL_PREFIX.encode())} \
        == {k: v for k, v in before.items() if not k.startswith(JOURNAL_PREFIX.encode())}
    journals = [v for k, v in table.data.db.items() if k.startswith(JOURNAL_PREFIX.encode())]
    assert [applied(v) for v in journals] == [1]
    replayed = rebuilt.apply(event("e2", sq(10, 50), 1), T0, 2)
    assert replayed.records == moved.records
    cid = contract_id_for(OWNER, Product.OPERATIONS_FILE)
    assert rebuilt.total_m2(cid, 0, OWNER_SCOPE) == pytest.approx(area(sq(10, 50)), rel=1e-9)


async def test_records_of_messages_read_again_are_sent_again_as_they_were(table: Table) -> None:
    """Offset 2 was stored but not committed: its replay changes nothing, and its record,
    maybe lost with the worker, comes back from its marker with the same content."""
    first = Meter(grace=timedelta(0))
    sent = []
    for seq, geom in ((1, sq(10, 50)), (2, sq(11, 50))):
        outcome = first.apply(event(f"e{seq}", geom, 0), T0, seq)
        write(table, bracket(outcome.writes, seq, lambda _: None))
        sent += outcome.records
    holder = MeterHolder(table, partial(Meter.from_state, grace=timedelta(0)), 1)
    assert (await holder.state_for(0, offset=2)).pending.records == sent[1:]


async def test_a_meter_kept_across_a_rebalance_reads_the_database_faust_opened_again(
    table: Table, tmp_path: Path
) -> None:
    """On revoke Faust drops its handle of a partition's database and, if the partition
    comes back, opens a new one; the Meter, kept, must read its pieces from that one."""
    holder = MeterHolder(table, partial(Meter.from_state, grace=timedelta(0)), 1)
    meter = (await holder.state_for(0, offset=1)).meter
    write(table, meter.apply(event("e1", sq(10, 50), 0), T0, 1).writes)
    holder.revoked()
    table.data.db.close()
    table.data.db = Rdict(str(tmp_path / "state-0.db"), options=Options(raw_mode=True))
    holder.assigned([0])
    assert (await holder.state_for(0, offset=2)).meter is meter
    again = meter.apply(event("e2", sq(10, 50), 0), T0, 2)  # the same ground, counted once
    assert all(r.area_added_owner_m2 == 0 for r in again.records)


@pytest.mark.parametrize("let_go", ["revoked", "dropped"])
async def test_a_meter_let_go_is_freed_though_the_agent_froze_it(table: Table, let_go: str) -> None:
    """The metering agent freezes the worker's state out of the cyclic collector's sight
    (streams/collector.py); a Meter the holder lets go at a rebalance, or after a failure,
    must go by its references alone, with no full collection holding the loop."""
    first = Meter(grace=timedelta(0))
    for seq, (user, geom) in enumerate((("u1", sq(10, 50)), ("u2", sq(10.0005, 50))), 1):
        boundary = MeterEvent(f"e{seq}", "fieldBoundaryCreated", T0, OWNER, user,
                              field_id=f"f{seq}", geometry=geom)
        write(table, first.apply(boundary, T0, seq).writes)
    holder = MeterHolder(table, partial(Meter.from_state, grace=timedelta(0)), 1)
    audit = weakref.ref((await holder.state_for(0, offset=3)).meter.audit)
    await asyncio.sleep(0)  # the loop lets go of the build's future, and its result
    Freezer().between_messages()
    try:
        if let_go == "revoked":
            holder.assigned([])
        else:
            holder.drop(0)
        for _ in range(100):  # freed in a thread, so the loop runs meanwhile
            if audit() is None:
                break
            await asyncio.sleep(0.01)
        assert audit() is None
    finally:
        gc.unfreeze()


async def test_usage_history_and_event_ids_are_read_from_the_database(table: Table) -> None:
    """`/usage/details` pages and dedup read the partition's RocksDB, as Faust opens it
    (raw keys), before and after a takeover; nothing of them is kept per event."""
    build = partial(Meter.from_state, grace=timedelta(0))
    meter = (await MeterHolder(table, build, 1).state_for(0, offset=1)).meter
    for seq in range(1, 9):
        write(table, meter.apply(event(f"e{seq}", sq(10 + seq, 50), seq / 3), T0, seq).writes)
    newest_first = [f"e{seq}" for seq in range(1, 9)]
    since = (T0 - timedelta(days=1)).date()
    rebuilt = (await MeterHolder(table, build, 1).state_for(0, offset=9)).meter
    for m in (meter, rebuilt):
        assert [r.event_id for r in m.records.select(OWNER)] == newest_first
        assert [r.event_id for r in m.records.select(OWNER)[2:5]] == newest_first[2:5]
        assert [r.event_id for r in m.records.select(OWNER, start=since, end=since)] == [
            "e2", "e3", "e4"]
    again = rebuilt.apply(event("e3", sq(13, 50), 1), T0, 10)
    assert [r.reason for r in again.records] == ["duplicate"]


async def test_fausts_offset_record_is_not_read_as_metering_state(table: Table) -> None:
    """A rebuild scans the partition's whole database, where Faust also keeps the
    changelog offset it recovered to."""
    first = Meter(grace=timedelta(0))
    write(table, first.apply(event("e1", sq(10, 50), 0), T0, 1).writes)
    table.data.db[Store.offset_key] = b"41"
    holder = MeterHolder(table, partial(Meter.from_state, grace=timedelta(0)), 1)
    rebuilt = (await holder.state_for(0, offset=2)).meter
    cid = contract_id_for(OWNER, Product.OPERATIONS_FILE)
    assert rebuilt.total_m2(cid, 0, OWNER_SCOPE) == first.total_m2(cid, 0, OWNER_SCOPE)


async def test_the_loop_answers_while_a_partition_is_rebuilt(table: Table) -> None:
    """A takeover's build (7.5 s at 200,000 events) ran on the worker's loop, so every
    API request and timer of the worker waited for it: the loop must get turns while it
    runs, and the partition be served only once it is built."""
    first = Meter(grace=timedelta(0))
    for seq in range(1, 301):
        write(table, first.apply(event(f"e{seq}", sq(10 + seq / 100, 50), 0), T0, seq).writes)
    holder = MeterHolder(table, partial(Meter.from_state, grace=timedelta(0)), 1)
    holder.assigned([0])
    build = asyncio.ensure_future(holder.state_for(0, offset=301))
    turns, served_meanwhile = 0, set()
    while not build.done():
        turns += 1
        served_meanwhile |= set(holder.serving())
        await asyncio.sleep(0)
    rebuilt = (await build).meter
    assert turns > 10 and served_meanwhile == set() and holder.serving() == [0]
    cid = contract_id_for(OWNER, Product.OPERATIONS_FILE)
    assert rebuilt.total_m2(cid, 0, OWNER_SCOPE) == first.total_m2(cid, 0, OWNER_SCOPE)


async def test_a_changing_meter_is_read_once_the_change_settles(table: Table) -> None:
    """A scene metered off the loop: meanwhile a reader of its owner is refused (503) or
    waits on `settled`, and gets the Meter back once the change is done; the webhook
    sweep skips the partition."""
    holder = MeterHolder(table, partial(Meter.from_state, grace=timedelta(0)), 1)
    meter = (await holder.state_for(0, offset=1)).meter
    release = asyncio.Event()
    change = asyncio.ensure_future(_change(holder, release))
    await asyncio.sleep(0.01)
    with pytest.raises(NotReady):
        holder.meter_of(OWNER)
    with pytest.raises(NotReady):
        holder.all_served()
    assert holder.serving() == []  # the webhook sweep reads no half-stored message
    waiting = asyncio.ensure_future(holder.settled(OWNER))
    await asyncio.sleep(0.05)
    assert not waiting.done() and not change.done()
    release.set()
    await asyncio.wait_for(change, WAIT)
    await asyncio.wait_for(waiting, WAIT)
    assert holder.meter_of(OWNER) is meter and holder.all_served() == {0: meter}


async def test_a_change_stopped_halfway_drops_the_meter(table: Table) -> None:
    """A worker stopping while a scene is metered or stored: the Meter may be ahead of
    its table, so the next message rebuilds it."""
    holder = MeterHolder(table, partial(Meter.from_state, grace=timedelta(0)), 1)
    meter = (await holder.state_for(0, offset=1)).meter
    change = asyncio.ensure_future(_change(holder, asyncio.Event()))
    await asyncio.sleep(0.01)
    change.cancel()
    with pytest.raises(asyncio.CancelledError):
        await change
    await asyncio.wait_for(holder.settled(), WAIT)
    with pytest.raises(NotReady):
        holder.meter_of(OWNER)
    assert (await holder.state_for(0, offset=2)).meter is not meter


async def _change(holder: MeterHolder, release: asyncio.Event) -> None:
    async with holder.changing(0):
        await release.wait()
