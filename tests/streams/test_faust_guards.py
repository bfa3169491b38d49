"""The commit guard of streams/faust_guards.py against Faust's own `_new_offset`, on the
ack patterns that lost events in the fault matrix."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams.faust_guards import _new_offset

P = TP("events.provider-files", 2)
FAUST_NEW_OFFSET = Consumer._new_offset  # the guard patches the class only when registered


def consumer(acked: list[int], committed: int | None, start: int | None = None) -> Any:
    return SimpleNamespace(
        _acked=defaultdict(list, {P: list(acked)}),
        _acked_index=defaultdict(set, {P: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {P: committed}),
        _gap=defaultdict(IntervalTree),
        _acreage_starts={} if start is None else {P: start},
    )


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
def test_commits_only_a_run_that_starts_where_reading_started(
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


def test_a_hole_stops_commits_until_it_is_filled() -> None:
    c = consumer([8, 9, 11], 8)
    assert _new_offset(c, P) == 10
    c._committed_offset[P] = 10
    assert _new_offset(c, P) is None
    c._acked[P].append(10)
    c._acked_index[P].add(10)
    assert _new_offset(c, P) == 12
