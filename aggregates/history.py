"""Usage records per owner, kept in event-time order so a read costs a page, not a history.

`/usage/details` asks for an owner's records newest first, of one user and/or one event
type, within a range of days, and for their count. Scanning and sorting every record on
each request cost ~1 s per 1M records on the loop that also heartbeats Kafka. Each filter
combination has its own list sorted by (event time, event id) instead: a range of days is
two bisections, its count a subtraction and a page a slice, so a read is O(page + log n).
Records mostly arrive in event-time order, so an insert moves only the few newer entries.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import overload

from aggregates.records import UsageRecord

_Key = tuple[datetime, str]
_Index = tuple[str, str | None, str | None]  # owner, Leaf user, event type


class _Ordered:
    """Records in (event time, event id) order, with their keys beside them for bisect."""

    __slots__ = ("keys", "items")

    def __init__(self) -> None:
        self.keys: list[_Key] = []
        self.items: list[UsageRecord] = []

    def add(self, at: _Key, record: UsageRecord) -> None:
        i = bisect_right(self.keys, at)
        self.keys.insert(i, at)
        self.items.insert(i, record)

    def between(self, start: datetime | None, end: datetime | None) -> Newest:
        """Records with start <= event time < end."""
        lo = 0 if start is None else bisect_left(self.keys, (start, ""))
        hi = len(self.keys) if end is None else bisect_left(self.keys, (end, ""))
        return Newest(self.items, lo, max(lo, hi))


class Newest(Sequence[UsageRecord]):
    """A window of an ordered list, read newest first, without copying it."""

    __slots__ = ("_items", "_lo", "_hi")

    def __init__(self, items: list[UsageRecord], lo: int, hi: int) -> None:
        self._items, self._lo, self._hi = items, lo, hi

    def __len__(self) -> int:
        return self._hi - self._lo

    @overload
    def __getitem__(self, index: int) -> UsageRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[UsageRecord]: ...

    def __getitem__(self, index: int | slice) -> UsageRecord | list[UsageRecord]:
        if isinstance(index, slice):
            return [self._items[self._hi - 1 - j] for j in range(len(self))[index]]
        return self._items[self._hi - 1 - range(len(self))[index]]

    def __iter__(self) -> Iterator[UsageRecord]:
        return (self._items[i] for i in range(self._hi - 1, self._lo - 1, -1))


_EMPTY = _Ordered()


class UsageHistory:
    """Every owner's usage records, indexed by each filter the API offers."""

    def __init__(self) -> None:
        self._lists: dict[_Index, _Ordered] = {}

    def add(self, record: UsageRecord) -> None:
        owner, user, kind = record.api_owner, record.leaf_user_id, record.type
        at = (record.timestamp, record.event_id)
        for index in ((owner, None, None), (owner, user, None),
                      (owner, None, kind), (owner, user, kind)):
            self._lists.setdefault(index, _Ordered()).add(at, record)

    def select(
        self,
        api_owner: str,
        *,
        leaf_user_id: str | None = None,
        event_type: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Newest:
        """Records whose UTC event day is within [start, end], newest first."""
        found = self._lists.get((api_owner, leaf_user_id, event_type), _EMPTY)
        return found.between(
            None if start is None else _midnight(start),
            None if end is None else _midnight(end + timedelta(days=1)),
        )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
