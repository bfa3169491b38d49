"""The commit guard of streams/faust_guards.py against Faust's own `_new_offset`, on the
ack patterns that lost events in the fault matrix."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams import faust_guards
from streams.faust_guards import _new_offset

P = TP("events.provider-files", 2)
FAUST_NEW_OFFSET = Consumer._new_offset  # the guard patches the class only when registered


def consumer(
    acked: list[int], committed: int | None, start: int | None = None,
    processed: list[int] | None = None,
) -> Any:
    """Faust's ack bookkeeping; every ack is one our agents processed unless told."""
    sought: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        sought.append((tp, offset))

    return SimpleNamespace(
        _acked=defaultdict(list, {P: list(acked)}),
        _acked_index=defaultdict(set, {P: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {P: committed}),
        _gap=defaultdict(IntervalTree),
        _acreage_starts={} if start is None else {P: start},
        _unacked_messages=set(),
        _acreage_processed={P: set(acked if processed is None else processed)},
        log=logging.getLogger("test"),
        seek=seek,
        sought=sought,
    )


def ack(c: Any, offset: int) -> None:
    """What `processed_ack` and then Faust's `Consumer.ack` do."""
    c._acreage_processed[P].add(offset)
    c._acked[P].append(offset)
    c._acked_index[P].add(offset)


@pytest.mark.parametrize(
    ("acked", "committed", "start", "faust", "guarded"),
    [
        # the ack of committed+1 arrives first: Faust commits past `committed` (#312/#313)
        ([9, 10], 8, None, 11, None),
        # a partition never committed, first acks at 8: Faust trusts them
        ([8, 9, 10, 11], None, 0, 12, None),
        # committed offset 0 is falsy in Faust: no head check either
        ([2, 3], 0, 0, 4, None),
        # the normal case is unchanged
        ([8, 9, 10, 12], 8, None, 11, 11),
        ([0, 1, 2], None, 0, 3, 3),
    ],
)
async def test_commits_only_a_run_that_starts_where_reading_started(
    acked: list[int], committed: int | None, start: int | None, faust: int, guarded: int | None
) -> None:
    assert FAUST_NEW_OFFSET(consumer(acked, committed, start), P) == faust
    assert _new_offset(consumer(acked, committed, start), P) == guarded


def test_no_commit_before_the_start_is_known() -> None:
    """Between an assignment and the seek after recovery, nothing may be committed."""
    assert _new_offset(consumer([0, 1, 2], None, None), P) is None


def test_acks_below_the_committed_offset_are_dropped_not_committed() -> None:
    c = consumer([3, 4, 8, 9], 8)
    assert _new_offset(c, P) == 10
    assert c._acked[P] == [] and c._acked_index[P] == set()


async def test_a_hole_stops_commits_until_it_is_filled() -> None:
    c = consumer([8, 9, 11], 8)
    assert _new_offset(c, P) == 10
    c._committed_offset[P] = 10
    assert _new_offset(c, P) is None
    ack(c, 10)
    assert _new_offset(c, P) == 12


async def test_an_ack_faust_made_for_a_message_nobody_processed_is_not_committed() -> None:
    """16 and 17 were acked by Faust (a skipped or undecodable message), not by an agent
    that processed them: Faust commits past them, the guard stops at 16 and reads them
    again."""
    acked = [14, 15, 16, 17, 18]
    c = consumer(acked, 14, processed=[14, 15, 18])
    assert FAUST_NEW_OFFSET(consumer(acked, 14, processed=[14, 15, 18]), P) == 19
    assert _new_offset(c, P) == 16
    c._committed_offset[P] = 16
    assert _new_offset(c, P) is None
    assert c._acked[P] == [18] and c._acked_index[P] == {18}
    await asyncio.sleep(0)
    assert c.sought == [(P, 16)]
    ack(c, 16)
    ack(c, 17)
    assert _new_offset(c, P) == 19
    assert c._acreage_processed[P] == set()


async def test_a_hole_nothing_is_filling_is_read_again_once() -> None:
    """Messages 8 and 9 were never delivered: the partition goes back to 8, once; not
    while 8 is still being processed."""
    c = consumer([10, 11], 8)
    c._unacked_messages = [SimpleNamespace(tp=P, offset=8)]
    assert _new_offset(c, P) is None
    await asyncio.sleep(0)
    assert c.sought == []
    c._unacked_messages = [SimpleNamespace(tp=P, offset=12)]
    assert _new_offset(c, P) is None
    assert _new_offset(c, P) is None
    await asyncio.sleep(0)
    assert c.sought == [(P, 8)]
    # 8 comes back and is committed; 9 is still on its way: no second rewind
    ack(c, 8)
    assert _new_offset(c, P) == 9
    c._committed_offset[P] = 9
    assert _new_offset(c, P) is None
    await asyncio.sleep(0)
    assert c.sought == [(P, 8)]


async def test_a_partition_never_committed_is_read_again_from_its_beginning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust's seek leaves it where the client last fetched, which can lie past records
    dropped while the partition was paused; committed partitions stay where Faust put
    them, and changelogs (no acks) are not touched."""
    fresh, committed, changelog = P, TP("events.satellite", 0), TP("app-state-changelog", 0)
    c, sought = _seekable(monkeypatch, fresh, committed, changelog, fetched_after_seek=0)
    await faust_guards._seek_and_note_starts(c)
    assert sought == [fresh]
    assert c._acreage_starts == {fresh: 0, committed: 40}


async def test_records_drained_and_dropped_after_the_seek_do_not_move_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The consumer thread fetches between the seek and the reading of the start. Faust
    drained offsets 0-5 and dropped 4 and 5 (its partition was paused), so the position is
    6: a start taken there let a run from 6 commit past them (soak run 4, seed 662132789:
    two boundaries never forwarded). From the log's beginning, the hole is read again."""
    fresh, committed, changelog = P, TP("events.satellite", 0), TP("app-state-changelog", 0)
    c, _ = _seekable(monkeypatch, fresh, committed, changelog, fetched_after_seek=6)
    await faust_guards._seek_and_note_starts(c)
    for offset in (0, 1, 2, 3, 6, 7):
        ack(c, offset)
    assert _new_offset(c, fresh) == 4
    c._committed_offset[fresh] = 4
    assert _new_offset(c, fresh) is None
    await asyncio.sleep(0)
    assert c.sought == [(fresh, 4)]


def _seekable(
    monkeypatch: pytest.MonkeyPatch, fresh: TP, committed: TP, changelog: TP,
    fetched_after_seek: int,
) -> tuple[Any, list[TP]]:
    """A consumer whose fresh partition the client fetches `fetched_after_seek` records of
    as soon as it is seeked to its beginning (offset 0)."""
    positions = {fresh: 8, committed: 40, changelog: 99}
    sought: list[TP] = []

    async def faust_seek(self: Any) -> None:
        self._committed_offset.update({committed: 40})

    async def seek_to_beginning(*tps: TopicPartition) -> None:
        # aiokafka's own seek: it raises on Faust's TP tuples (the worker crashed on it)
        assert all(isinstance(tp, TopicPartition) for tp in tps)
        sought.extend(TP(*tp) for tp in tps)
        positions.update({TP(*tp): fetched_after_seek for tp in tps})

    async def position(tp: TP) -> int:
        return positions[tp]

    async def earliest_offsets(*tps: TopicPartition) -> dict[TopicPartition, int]:
        assert all(isinstance(tp, TopicPartition) for tp in tps)
        return {tp: 0 for tp in tps}

    monkeypatch.setattr(faust_guards, "_perform_seek", faust_seek)
    c = consumer([], None)
    c.assignment = lambda: {fresh, committed, changelog}
    c.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: "changelog" not in t))
    c._thread = SimpleNamespace(seek_to_beginning=seek_to_beginning)
    c.position = position
    c.earliest_offsets = earliest_offsets
    return c, sought
