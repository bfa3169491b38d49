"""The ground each counted event covered, so "explain my bill" can name the events that
were deduplicated against a counted point.

A piece remembers only the event that first counted it (aggregates/origin.py); the events
that covered the same ground later added nothing there and left no piece. So each event
that counts in a period-bounded product also files the geometry it counted, once, under
its owner and UTC event time (`f`): one write per event, never read by metering nor by a
rebuild. A search scans the owner's keys of the days asked for, skips by key the users
and products not asked for, reads the stored box of the rest and parses a geometry only
when its box meets the point (or area) asked about.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import shapely
from shapely.geometry.base import BaseGeometry

from aggregates.history import key_time
from aggregates.records import MeterEvent
from aggregates.state import Kind, ReadKey, Scan, Write, key, split_key

_BOX = struct.Struct(">4d")


@dataclass(frozen=True, slots=True)
class Covering:
    """A counted event whose geometry holds the point asked about."""

    event_id: str
    leaf_user_id: str
    event_type: str
    product: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Search:
    """Where to look: an owner's events of days [start, end], of one user and one
    product when given."""

    api_owner: str
    start: date
    end: date
    leaf_user_id: str | None = None
    product: str | None = None


class Coverage:
    """The filed geometries: in the table given `read` and `scan`, else in memory."""

    def __init__(self, read: ReadKey | None = None, scan: Scan | None = None) -> None:
        self._kept: dict[str, bytes] = {}
        self._read: ReadKey = read or self._kept.get
        self._scan: Scan = scan or self._scan_kept
        self._keeps = read is None or scan is None

    def file(self, ev: MeterEvent, product: str, geom: BaseGeometry) -> Write:
        parts = (key_time(ev.timestamp), ev.event_id, ev.leaf_user_id, ev.type, product)
        row = key(Kind.COVERED, ev.api_owner, *parts)
        value = _BOX.pack(*geom.bounds) + shapely.to_wkb(geom)
        if self._keeps:
            self._kept[row] = value
        return row, value

    def restore(self, raw_key: str, value: bytes) -> None:
        """Without a table a rebuild keeps them; with one they stay where they are."""
        if self._keeps:
            self._kept[raw_key] = value

    def covering(self, search: Search, where: BaseGeometry) -> Iterator[Covering]:
        """Events of `search` whose counted geometry meets `where`, newest first. Costs a
        key split per event of the owner in the days asked, a read per event of the
        user and product asked, and a parse per event whose box meets `where`."""
        lo = key(Kind.COVERED, search.api_owner, search.start.isoformat())
        hi = key(Kind.COVERED, search.api_owner, (search.end + timedelta(days=1)).isoformat())
        wx0, wy0, wx1, wy1 = where.bounds
        shapely.prepare(where)
        for raw in self._scan(lo, hi):
            at, event_id, user, event_type, product = split_key(raw)[2]
            if search.leaf_user_id not in (None, user) or search.product not in (None, product):
                continue
            value = self._read(raw)
            if value is None:
                continue
            x0, y0, x1, y1 = _BOX.unpack_from(value)
            if x0 > wx1 or x1 < wx0 or y0 > wy1 or y1 < wy0:
                continue
            if where.intersects(shapely.from_wkb(value[_BOX.size :])):
                moment = datetime.fromisoformat(at).replace(tzinfo=UTC)
                yield Covering(event_id, user, event_type, product, moment)

    def _scan_kept(self, lo: str, hi: str) -> Iterator[str]:
        yield from sorted((k for k in self._kept if lo <= k < hi), reverse=True)
