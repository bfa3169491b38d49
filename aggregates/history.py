"""Usage records per owner, kept in event-time order so a read costs a page, not a history.

`/usage/details` asks for an owner's records newest first, of one user and/or one event
type, within a range of days, and for their count. Scanning and sorting every record on
each request cost ~1 s per 1M records on the loop that also heartbeats Kafka. Each filter
combination has its own list sorted by (event time, event id) instead: a range of days is
two bisections, its count a subtraction and a page a slice, so a read is O(page + log n).
Records mostly arrive in event-time order, so an insert moves only the few newer entries.

A worker keeps the records in its table instead (`StoredHistory`): one key per record,
filed by owner and event time, so RocksDB's order is the index and memory holds only a
count per owner, user, event type and day.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from aggregates.markers import marker_area, record_of_marker
from aggregates.pages import Window
from aggregates.periods import day_of
from aggregates.records import UsageRecord
from aggregates.state import SEP, Kind, ReadKey, Scan, Write, escape, key, load, split_key

_Key = tuple[datetime, str]
HourArea = tuple[datetime, float, float]  # a record's UTC hour, its user and owner area
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


class Newest(Window[UsageRecord]):
    """A window of an ordered list, read newest first, without copying it."""

    __slots__ = ("_items", "_lo", "_hi")

    def __init__(self, items: list[UsageRecord], lo: int, hi: int) -> None:
        self._items, self._lo, self._hi = items, lo, hi

    def __len__(self) -> int:
        return self._hi - self._lo

    def _rows(self, skip: int, count: int) -> Iterator[UsageRecord]:
        top = self._hi - 1 - skip
        return (self._items[i] for i in range(top, max(top - count, self._lo - 1), -1))


_EMPTY = _Ordered()


class UsageHistory:
    """Every owner's usage records, indexed by each filter the API offers."""

    def __init__(self) -> None:
        self._lists: dict[_Index, _Ordered] = {}
        self._users: dict[str, set[str]] = {}

    def add(self, record: UsageRecord) -> None:
        owner, user, kind = record.api_owner, record.leaf_user_id, record.type
        at = (record.timestamp, record.event_id)
        for index in _filters(owner, user, kind):
            self._lists.setdefault(index, _Ordered()).add(at, record)
        self._users.setdefault(owner, set()).add(user)

    def users(self, api_owner: str) -> set[str]:
        """Every Leaf user with a usage record, counted or not."""
        return self._users.get(api_owner, set())

    def select(
        self,
        api_owner: str,
        *,
        leaf_user_id: str | None = None,
        event_type: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Window[UsageRecord]:
        """Records whose UTC event day is within [start, end], newest first."""
        found = self._lists.get((api_owner, leaf_user_id, event_type), _EMPTY)
        return found.between(
            None if start is None else _midnight(start),
            None if end is None else _midnight(end + timedelta(days=1)),
        )

    def areas(
        self, api_owner: str, product: str, *, leaf_user_id: str | None, start: date, end: date
    ) -> Iterator[HourArea]:
        """The hour and (user, owner) area in `product` of each record of [start, end]
        that names an area in it."""
        for r in self.select(api_owner, leaf_user_id=leaf_user_id, start=start, end=end):
            area = r.by_product.get(product)
            if area is not None:
                at = r.timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
                yield at, area.user_m2, area.owner_m2


def _filters(owner: str, user: str, kind: str) -> tuple[_Index, ...]:
    """Every filter the API offers that a record of `user` and `kind` matches."""
    return (owner, None, None), (owner, user, None), (owner, None, kind), (owner, user, kind)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def record_write(record: UsageRecord, seq: int, marker: bytes) -> Write:
    """The key sorts by owner, then UTC event time (fixed width), then event id and the
    input that made it (a FAILED event and its retry share an id); the user, type and
    status ride in the key so a takeover counts them without reading the value, the
    event's marker."""
    parts = (key_time(record.timestamp), record.event_id, seq, record.leaf_user_id,
             record.type, record.status)
    return key(Kind.RECORD, record.api_owner, *parts), marker


def key_time(ts: datetime) -> str:
    """UTC and fixed width, so keys filed by it sort as their times do."""
    return (ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)).strftime(_TIME)


_TIME = "%Y-%m-%dT%H:%M:%S.%f"


class StoredHistory:
    """The records in the table; per filter, a count of records per UTC day, so a
    request's total is a sum over days and its page starts in the right day."""

    def __init__(self, scan: Scan, read: ReadKey) -> None:
        self._scan, self._read = scan, read
        self._days: dict[_Index, dict[int, int]] = {}
        self._users: dict[str, set[str]] = {}
        # a rebuild's records counted once each, by owner, user, type and UTC day, and
        # spread over the four filters when first read (`_spread`)
        self._restored: dict[tuple[str, str, str, str], int] = {}

    def add(self, record: UsageRecord) -> None:
        """Counts a record whose `record_write` the caller stores."""
        day = day_of(record.timestamp).toordinal()
        self._count(record.api_owner, record.leaf_user_id, record.type, day, 1)

    def restore(self, owner: str, parts: list[str]) -> None:
        """A takeover reads one key a record: one count, not four filters' counts."""
        at, _, _, user, kind, _ = parts
        found = (owner, user, kind, at[:10])
        self._restored[found] = self._restored.get(found, 0) + 1

    def _spread(self) -> None:
        for (owner, user, kind, day), n in self._restored.items():
            self._count(owner, user, kind, date.fromisoformat(day).toordinal(), n)
        self._restored.clear()

    def _count(self, owner: str, user: str, kind: str, day: int, n: int) -> None:
        for index in _filters(owner, user, kind):
            days = self._days.setdefault(index, {})
            days[day] = days.get(day, 0) + n
        self._users.setdefault(owner, set()).add(user)

    def users(self, api_owner: str) -> set[str]:
        """Every Leaf user with a usage record, counted or not."""
        self._spread()
        return self._users.get(api_owner, set())

    def select(
        self,
        api_owner: str,
        *,
        leaf_user_id: str | None = None,
        event_type: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Window[UsageRecord]:
        """Records whose UTC event day is within [start, end], newest first."""
        self._spread()
        counts = self._days.get((api_owner, leaf_user_id, event_type), {})
        lo = -1 if start is None else start.toordinal()
        hi = 1 << 30 if end is None else end.toordinal()
        days = sorted(((d, n) for d, n in counts.items() if lo <= d <= hi), reverse=True)
        return Stored(self._scan, self._read, (api_owner, leaf_user_id, event_type), days)

    def areas(
        self, api_owner: str, product: str, *, leaf_user_id: str | None, start: date, end: date
    ) -> Iterator[HourArea]:
        """As `UsageHistory.areas`, from the keys (the hour is in each) and one number
        of each marker: an hourly series of a busy owner's day reads ~3,000 records."""
        self._spread()
        counts = self._days.get((api_owner, leaf_user_id, None), {})
        wanted = escape(leaf_user_id)
        needle = _needle(leaf_user_id)
        at = len(key(Kind.RECORD, api_owner, ""))  # where each key's time starts
        hours: dict[str, datetime] = {}
        for day in range(start.toordinal(), end.toordinal() + 1):
            if not counts.get(day):
                continue
            for raw in _day_keys(self._scan, api_owner, day, needle):
                if leaf_user_id is not None and raw.split(SEP)[5] != wanted:
                    continue
                value = self._read(raw)
                found = None if value is None else marker_area(value, product)
                if found is not None:
                    text = raw[at : at + 13]
                    hour = hours.get(text)
                    if hour is None:
                        hour = hours[text] = datetime.fromisoformat(text).replace(tzinfo=UTC)
                    yield hour, *found


class Stored(Window[UsageRecord]):
    """A filter's records over some days, newest first, read from the table per page:
    whole days before the page are skipped by their counts, so a page costs the records
    of the days it spans (of one day, when a filter matches few of them)."""

    __slots__ = ("_scan", "_read", "_index", "_days", "_len")

    def __init__(
        self, scan: Scan, read: ReadKey, index: _Index, days: list[tuple[int, int]]
    ) -> None:
        self._scan, self._read, self._index, self._days = scan, read, index, days
        self._len = sum(n for _, n in days)

    def __len__(self) -> int:
        return self._len

    def _rows(self, skip: int, count: int) -> Iterator[UsageRecord]:
        owner, user, kind = self._index
        needle = _needle(user, kind)
        for day, n in self._days:
            if count <= 0:
                return
            if skip >= n:
                skip -= n
                continue
            for raw in _day_keys(self._scan, owner, day, needle):
                _, event_id, _, who, what, _ = split_key(raw)[2]
                if user not in (None, who) or kind not in (None, what):
                    continue
                if skip:
                    skip -= 1
                    continue
                value = self._read(raw)
                if value is None:
                    raise LookupError(f"usage record {raw!r} has no stored value")
                yield record_of_marker(event_id, load(value))
                count -= 1
                if count <= 0:
                    return


def _needle(*filters: str | None) -> str:
    """A key's user and type sit between separators: a substring test drops most keys a
    filter does not want before any key is split."""
    wanted = [escape(p) for p in filters if p is not None]
    return SEP + SEP.join(wanted) + SEP if wanted else ""


def _day_keys(scan: Scan, owner: str, day: int, needle: str) -> Iterator[str]:
    """The keys of an owner's records of one UTC day holding `needle`, last first."""
    first = date.fromordinal(day)
    lo = key(Kind.RECORD, owner, first.isoformat())
    hi = key(Kind.RECORD, owner, (first + timedelta(days=1)).isoformat())
    return (raw for raw in scan(lo, hi) if needle in raw)
