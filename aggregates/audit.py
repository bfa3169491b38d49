"""AUDIT_FIELDS_BOUNDARY: the unique area of the boundaries that exist, day by day.

Unlike the bounded products, AUDIT is not a union of everything ever counted: a day's
figure is the union of the boundaries live at its end (SPEC §2), so a delete lowers it.
Its state is the live unions (one per scope), each boundary's latest version, and the
signed net change of every day; each is stored under its own key, beside the code that
writes it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType

import shapely
from shapely.geometry.base import BaseGeometry

from aggregates.area import geodesic_area_m2
from aggregates.codec import Bounds
from aggregates.contracts import OWNER_SCOPE, Contract, user_scope
from aggregates.fields import FieldBook, FieldHistory, Version
from aggregates.live import LiveUnion
from aggregates.live import Read as ReadShape
from aggregates.overlay import object_array, subtract_all
from aggregates.periods import day_end, day_of
from aggregates.records import MeterEvent, ProductArea
from aggregates.state import Kind, ReadKey, Write, dump, join_parts, key, load, split_parts

_INSTANT = timedelta(microseconds=1)
_Restored = tuple[str, dict[str, Bounds], dict[str, BaseGeometry]]



@dataclass
class AuditChange:
    """What one boundary event did to AUDIT: its deltas, the days it changed, and the
    state writes that make that durable."""

    area: ProductArea = field(default_factory=lambda: ProductArea(0.0, 0.0))
    days: list[tuple[str, int]] = field(default_factory=list)  # (scope, ordinal day)
    writes: list[Write] = field(default_factory=list)


def field_key(leaf_user_id: str, field_id: str, scope: str) -> str:
    """Field ids are only unique per user, so the owner's union keys them by user too."""
    return field_id if scope != OWNER_SCOPE else join_parts(leaf_user_id, field_id)


@dataclass(frozen=True, slots=True)
class LiveEntry:
    """A boundary's latest version, which a rebuild puts in the live unions; deleted ones
    stay as tombstones, keeping the time so an older update arriving late cannot
    resurrect them. (Records written before this format also hold the event's deltas.)
    """

    timestamp: str
    event_id: str
    wkb: bytes | None
    box: Bounds | None = None  # of a non-empty shape, so a takeover indexes it unparsed


def encode_live(e: LiveEntry) -> bytes:
    body: dict[str, object] = {
        "ts": e.timestamp,
        "eventId": e.event_id,
        "wkb": e.wkb.hex() if e.wkb is not None else None,
    }
    if e.box is not None:
        body["box"] = list(e.box)
    return dump(body)


def decode_live(raw: bytes) -> LiveEntry:
    v = load(raw)
    wkb = bytes.fromhex(v["wkb"]) if v["wkb"] is not None else None
    box = v.get("box")
    return LiveEntry(v["ts"], v["eventId"], wkb, (box[0], box[1], box[2], box[3]) if box else None)


def live_box(raw: bytes) -> Bounds | None:
    """The box of a LIVE record, None when it has none (a tombstone, or a record written
    before boxes were). A takeover reads one record a live boundary and needs only its
    box: the record is canonical JSON (`dump` sorts keys), so the box opens it, and the
    rest, mostly the shape's hex WKB, is left unparsed. Numbers are read with `float`,
    as `json` reads them."""
    if not raw.startswith(_BOX_OPENS):
        return None
    x0, y0, x1, y1 = map(float, raw[len(_BOX_OPENS) : raw.index(b"]")].split(b","))
    return x0, y0, x1, y1


_BOX_OPENS = b'{"box":['


_LatestKey = tuple[str, str, str]  # (owner, leaf user, field id)
_Found = tuple[LiveEntry, BaseGeometry | None] | None


class LiveRecords:
    """The LIVE records the current input read, parsed: an update reads its field's
    record for the latest time, then for the old shape in each scope.

    An object of its own because the live unions read their shapes through it: had they
    read through AuditDays, which holds them, every Meter would be a reference cycle,
    which only the cyclic collector frees, and the worker freezes its state out of that
    collector's sight (streams/collector.py): a Meter dropped at a rebalance would then
    stay in memory, or cost a full collection on the loop to free (926 ms when a joining
    worker took 1,500 of 3,000 owners)."""

    def __init__(self, read: ReadKey) -> None:
        self._read = read
        self._entries: dict[_LatestKey, _Found] = {}

    def entry(self, latest_key: _LatestKey) -> _Found:
        if latest_key in self._entries:
            return self._entries[latest_key]
        raw = self._read(key(Kind.LIVE, *latest_key))
        entry = decode_live(raw) if raw is not None else None
        found = None if entry is None else (
            entry, shapely.from_wkb(entry.wkb) if entry.wkb is not None else None)
        self._entries[latest_key] = found
        return found

    def shape(self, owner: str, user: str, field_id: str) -> BaseGeometry | None:
        found = self.entry((owner, user, field_id))
        return found[1] if found is not None else None

    def forget(self, latest_key: _LatestKey) -> None:
        """The current input wrote the record anew."""
        self._entries.pop(latest_key, None)

    def clear(self) -> None:
        """A new input starts: what the last one read may have changed since."""
        self._entries.clear()


class AuditDays:
    """Live unions per (owner, scope) and AUDIT's signed daily deltas per (contract, scope).

    Latest event time wins per boundary, so a late older update changes nothing now; but
    a version older than the owner's latest AUDIT day still changes the days it was in
    force, which are corrected from the field histories (see `_correct`).

    Given `read` (the worker's table), the live unions read boundaries' shapes from their
    LIVE records instead of keeping them (see LiveUnion).
    """

    def __init__(self, read: ReadKey | None = None) -> None:
        self._read = read
        self._records = LiveRecords(read) if read is not None else None
        self._touched: set[LiveUnion] = set()  # by the current input
        self.live: dict[tuple[str, str], LiveUnion] = {}
        self.days: dict[tuple[str, str], dict[int, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self._users: dict[str, set[str]] = defaultdict(set)
        # (owner, leaf user, field id) -> event time of its latest version, ISO 8601;
        # with the table, read from the LIVE records instead
        self._latest: dict[_LatestKey, str] = {}
        self._last_day: dict[str, int] = {}
        # (owner, scope) -> a user of the scope, its live boundaries' boxes by field key,
        # and the shapes parsed of them (only without a table, or without a stored box)
        self._restored: dict[tuple[str, str], _Restored] = {}
        self._restored_totals: dict[tuple[str, str], float] = {}

    # ---- reading -----------------------------------------------------------------

    def scopes(self, contract_id: str) -> set[str]:
        return {s for (c, s) in self.days if c == contract_id}

    def by_day(self, contract_id: str, scope: str) -> Mapping[int, float]:
        return MappingProxyType(self.days.get((contract_id, scope), {}))

    def total_m2(self, api_owner: str, scope: str) -> float:
        union = self.live.get((api_owner, scope))
        return union.total_m2 if union else 0.0

    def billable_m2(self, api_owner: str) -> float:
        """The sum of the Leaf users' live unions, overlaps between users included."""
        return sum(self.live[(api_owner, s)].total_m2 for s in self._users[api_owner])

    # ---- events ------------------------------------------------------------------

    def begin(self) -> None:
        """A new input starts: the last one's writes are stored (see LiveUnion.begin)."""
        for union in self._touched:
            union.begin()
        self._touched.clear()
        if self._records is not None:
            self._records.clear()

    def apply(self, contract: Contract, ev: MeterEvent, fields: FieldBook) -> AuditChange:
        """Count one boundary event; `fields` already holds its version."""
        assert ev.field_id is not None
        change = AuditChange()
        latest_key = (ev.api_owner, ev.leaf_user_id, ev.field_id)
        moment = ev.timestamp.isoformat()
        previous = self._latest_time(latest_key)
        if previous is None or previous <= moment:
            change.area = self._mutate(ev, fields, change)
            geom = ev.geometry
            wkb = shapely.to_wkb(geom) if geom is not None else None
            box = geom.bounds if geom is not None and not geom.is_empty else None
            if self._read is None:
                self._latest[latest_key] = moment
            entry = encode_live(LiveEntry(moment, ev.event_id, wkb, box))
            change.writes.append((key(Kind.LIVE, *latest_key), entry))
            if self._records is not None:
                self._records.forget(latest_key)
        ordinal = day_of(ev.timestamp).toordinal()
        last = self._last_day.get(ev.api_owner, ordinal)
        if ordinal < last:
            self._correct(contract, ev, fields, change)
        else:
            cid = contract.contract_id
            for scope, delta in (
                (user_scope(ev.leaf_user_id), change.area.user_m2),
                (OWNER_SCOPE, change.area.owner_m2),
            ):
                self._set_day(contract, scope, ordinal, self.days[(cid, scope)][ordinal] + delta,
                              change)
        self._last_day[ev.api_owner] = max(last, ordinal)
        return change

    def _mutate(self, ev: MeterEvent, fields: FieldBook, change: AuditChange) -> ProductArea:
        assert ev.field_id is not None
        deltas = []
        self._users[ev.api_owner].add(user_scope(ev.leaf_user_id))
        for scope in (user_scope(ev.leaf_user_id), OWNER_SCOPE):
            union = self._union(ev.api_owner, scope, ev.leaf_user_id)
            self._touched.add(union)
            fkey = fields.shared(field_key(ev.leaf_user_id, ev.field_id, scope))
            geom = None if ev.type == "fieldBoundaryDeleted" else ev.geometry
            deltas.append(union.remove(fkey) if geom is None else union.put(fkey, geom))
            total = key(Kind.LIVE_TOTAL, ev.api_owner, scope)
            change.writes.append((total, repr(union.total_m2).encode()))
        return ProductArea(deltas[0], deltas[1])

    def _latest_time(self, latest_key: _LatestKey) -> str | None:
        if self._records is None:
            return self._latest.get(latest_key)
        found = self._records.entry(latest_key)
        return found[0].timestamp if found is not None else None

    def _union(self, owner: str, scope: str, user: str) -> LiveUnion:
        union = self.live.get((owner, scope))
        if union is None:
            union = self.live[(owner, scope)] = LiveUnion(self._shapes(owner, scope, user))
        return union

    def _shapes(self, owner: str, scope: str, user: str) -> ReadShape | None:
        """A scope's live shapes by field key, from the LIVE records; the owner's scope
        keys them by user and field (`field_key`)."""
        records = self._records
        if records is None:
            return None
        if scope == OWNER_SCOPE:
            return lambda fkey: records.shape(owner, *split_parts(fkey))
        return lambda fkey: records.shape(owner, user, fkey)

    def _correct(
        self, contract: Contract, ev: MeterEvent, fields: FieldBook, change: AuditChange
    ) -> None:
        """The live union only knows the present. A version older than the owner's latest
        AUDIT day changes the days on which it is in force, from its own day to its
        field's next version, by area(new − U) − area(old − U), U being the other fields'
        shapes it meets that day: a local overlay, whatever the number of fields."""
        assert ev.field_id is not None
        history = fields.history(ev.api_owner, ev.leaf_user_id, ev.field_id)
        assert history is not None  # the Meter remembered its version first
        geom = None if ev.type == "fieldBoundaryDeleted" else ev.geometry
        version = Version(ev.timestamp, ev.event_id, geom is None)
        before, after = history.before(version), history.after(version)
        old = history.shape(before) if before else None
        start = day_of(ev.timestamp).toordinal()
        stop = day_of(after.timestamp).toordinal() if after else None
        if stop is not None and stop <= start or (old is None and geom is None):
            return
        for scope in (user_scope(ev.leaf_user_id), OWNER_SCOPE):
            user = None if scope == OWNER_SCOPE else ev.leaf_user_id
            others = fields.meeting(ev.api_owner, user, (old, geom),
                                    excluded=(ev.leaf_user_id, ev.field_id))
            self._shift(contract, scope, (start, stop), (old, geom), others, change)

    def _shift(
        self,
        contract: Contract,
        scope: str,
        span: tuple[int, int | None],
        shapes: tuple[BaseGeometry | None, BaseGeometry | None],
        others: list[FieldHistory],
        change: AuditChange,
    ) -> None:
        (start, stop), (old, new) = span, shapes
        by_day = self.days[(contract.contract_id, scope)]
        days = sorted({d for d in by_day if d > start and (stop is None or d < stop)} | {start})
        shifted = 0.0
        for day in days:
            moment = day_end(date.fromordinal(day)) - _INSTANT
            around = [
                h.shape(v) for h in others if (v := h.in_force(moment)) and not v.deleted
            ]
            moved = _uncovered_m2(new, around) - _uncovered_m2(old, around)
            self._set_day(contract, scope, day, by_day.get(day, 0.0) + moved - shifted, change)
            shifted = moved
        if stop is not None and shifted:
            self._set_day(contract, scope, stop, by_day.get(stop, 0.0) - shifted, change)

    def _set_day(
        self, contract: Contract, scope: str, ordinal: int, delta: float, change: AuditChange
    ) -> None:
        cid = contract.contract_id
        self.days[(cid, scope)][ordinal] = delta
        change.days.append((scope, ordinal))
        row = key(Kind.AUDIT_DAY, contract.api_owner, cid, scope, ordinal)
        change.writes.append((row, repr(delta).encode()))

    # ---- rebuilding --------------------------------------------------------------

    def restore(self, kind: Kind, owner: str, parts: list[str], value: bytes) -> bool:
        """Take one stored record if it is AUDIT's; the unions are built in `finish`."""
        if kind is Kind.LIVE:
            user, field_id = parts
            box = live_box(value) if self._read is not None else None
            if box is not None:
                self._restore_live(owner, user, field_id, box, None)
                return True
            entry = decode_live(value)
            if self._read is None:
                self._latest[(owner, user, field_id)] = entry.timestamp
            if entry.wkb is not None:
                self._restore_entry(owner, user, field_id, entry)
        elif kind is Kind.LIVE_TOTAL:
            self._restored_totals[(owner, parts[0])] = float(value)
        elif kind is Kind.AUDIT_DAY:
            self.days[(parts[0], parts[1])][int(parts[2])] = float(value)
        else:
            return False
        return True

    def _restore_entry(self, owner: str, user: str, field_id: str, entry: LiveEntry) -> None:
        """A live boundary's shape is parsed only without a table, or without a stored
        box (records written before boxes were)."""
        assert entry.wkb is not None
        shape = shapely.from_wkb(entry.wkb)
        if not shape.is_empty:
            self._restore_live(owner, user, field_id, entry.box or shape.bounds, shape)

    def _restore_live(
        self, owner: str, user: str, field_id: str, box: Bounds, shape: BaseGeometry | None
    ) -> None:
        for scope in (user_scope(user), OWNER_SCOPE):
            found = self._restored.get((owner, scope))
            if found is None:
                found = self._restored[(owner, scope)] = (user, {}, {})
            fkey = field_key(user, field_id, scope)
            found[1][fkey] = box
            if shape is not None:
                found[2][fkey] = shape

    def finish(self, last_day: Mapping[str, int]) -> None:
        """Bulk-load the live unions; each owner's latest boundary day is its fields'."""
        for (owner, scope), (user, boxes, shapes) in self._restored.items():
            total = self._restored_totals.get((owner, scope))
            read = self._shapes(owner, scope, user)
            if read is not None and total is not None:
                live = LiveUnion.from_boxes(boxes, total, read)
            else:
                live = LiveUnion.from_items(
                    ((f, shapes[f] if f in shapes else _shape_of(read, f)) for f in boxes),
                    total, read)
            self.live[(owner, scope)] = live
            if scope != OWNER_SCOPE:
                self._users[owner].add(scope)
        self._restored.clear()
        self._restored_totals.clear()
        self._last_day.update(last_day)


def _shape_of(read: ReadShape | None, fkey: str) -> BaseGeometry:
    """A live shape a takeover must union (state stored before totals were)."""
    shape = read(fkey) if read is not None else None
    if shape is None:
        raise LookupError(f"live boundary {fkey!r} has no stored shape")
    return shape


def _uncovered_m2(geom: BaseGeometry | None, others: list[BaseGeometry]) -> float:
    """Area of geom that none of `others` covers."""
    if geom is None:
        return 0.0
    rest = subtract_all(geom, object_array(others)) if others else geom
    return geodesic_area_m2(rest)
