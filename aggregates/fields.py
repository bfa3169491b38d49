"""Which shape a field had at a given moment: every boundary version, in event time.

Operations are clipped to the boundary *in force at their event time* (SPEC §2), and
boundary events of one field may arrive in any order, so the whole history is kept, not
only the latest version. Given the worker's table, the histories stay there, each
version under its own key: a field's versions are read (one seek) when an event of that
field or a correction near it needs them, and memory keeps an R-tree of every version's
box, each entry naming its field, so AUDIT's corrections find a field's neighbours.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import shapely
from rtree.index import Index
from shapely.geometry.base import BaseGeometry

from aggregates.boxes import BoxLoad, empty_index
from aggregates.codec import decode_version, encode_version, version_box, version_wkb_size
from aggregates.geometry import clip_to
from aggregates.periods import day_of
from aggregates.records import MeterEvent
from aggregates.state import (
    SEP,
    Kind,
    ReadKey,
    Scan,
    Write,
    join_parts,
    key,
    split_key,
    split_parts,
)


@dataclass(frozen=True, slots=True)
class Version:
    """One boundary event of a field; its shape is the history's to give (`shape`)."""

    timestamp: datetime
    event_id: str
    deleted: bool


@dataclass(slots=True)
class FieldHistory:
    """A field's versions sorted by (event time, event id), so any arrival order
    yields the same history and a replayed version is recognised."""

    shape: Callable[[Version], BaseGeometry | None]  # a version's shape; None if deleted
    versions: list[Version] = field(default_factory=list)

    def put(self, version: Version) -> bool:
        """False when the version is known already (a replay)."""
        sort_key = _order(version)
        at = bisect.bisect_left(self.versions, sort_key, key=_order)
        if at < len(self.versions) and _order(self.versions[at]) == sort_key:
            return False
        self.versions.insert(at, version)
        return True

    def before(self, version: Version) -> Version | None:
        """The version this one follows in event time (None: it is the first)."""
        at = bisect.bisect_left(self.versions, _order(version), key=_order)
        return self.versions[at - 1] if at else None

    def after(self, version: Version) -> Version | None:
        """The version that follows this one in event time (None: it is the latest)."""
        at = bisect.bisect_right(self.versions, _order(version), key=_order)
        return self.versions[at] if at < len(self.versions) else None

    def in_force(self, moment: datetime) -> Version | None:
        """The latest version at or before `moment`; None when the field came later."""
        at = bisect.bisect_right(self.versions, (moment, "\U0010ffff"), key=_order)
        return self.versions[at - 1] if at else None

    def first(self) -> Version | None:
        return self.versions[0] if self.versions else None


def _order(version: Version) -> tuple[datetime, str]:
    return version.timestamp, version.event_id


def boundary_for(
    history: FieldHistory | None, moment: datetime
) -> tuple[BaseGeometry | None, str | None]:
    """The shape an operation at `moment` is clipped to, or None and why it counts unclipped.

    A field first drawn after the operation is clipped to its first shape: the ground was
    already that field. A field deleted at that moment, or never seen, leaves nothing to
    clip to, so the operation counts as processed, unclipped (`field-deleted`,
    `field-unknown`).
    """
    version = None
    if history is not None:
        version = history.in_force(moment) or history.first()
    if history is None or version is None:
        return None, "field-unknown"
    if version.deleted:
        return None, "field-deleted"
    return history.shape(version), None


_Field = tuple[str, str, str]  # owner, leaf user, field id


class FieldBook:
    """Every boundary version of every field, per owner.

    Each version is stored under its own key, so a field's history is rebuilt whatever
    order its events came in. Given `read` and `scan` (the worker's table), a history is
    read from there when needed and kept only until `begin` says the next input starts,
    and so are the shapes the current input remembered. Without them (tests) every
    history and shape is kept.
    """

    def __init__(self, read: ReadKey | None = None, scan: Scan | None = None) -> None:
        self._read = read
        self._scan = scan if read is not None else None
        self._recent: dict[str, BaseGeometry | None] = {}  # shapes by version key
        self._histories: dict[_Field, FieldHistory | None] = {}  # all, or this input's
        self._boxes: dict[str, Index] = {}  # owner -> every version's box, by slot
        # By slot, its version's user and field, joined: slots are dealt in order, so a
        # list (a pointer a version, where a dict entry and its int key cost ~75 B)
        self._names: list[str] = []
        self._restored: dict[str, BoxLoad] = defaultdict(BoxLoad)
        self.last_day: dict[str, int] = {}  # owner -> day of its latest boundary version

    def begin(self) -> None:
        """A new input starts: what the last one remembered is in the table now."""
        if self._scan is not None:
            self._recent.clear()
            self._histories.clear()

    def remember(self, ev: MeterEvent) -> list[Write]:
        """A boundary event's version; other events leave no trace here."""
        if not ev.type.startswith("fieldBoundary") or ev.field_id is None:
            return []
        geom = None if ev.type == "fieldBoundaryDeleted" else ev.geometry
        where = (ev.api_owner, ev.leaf_user_id, ev.field_id)
        version = Version(ev.timestamp, ev.event_id, geom is None)
        row = _version_key(where, version)
        history = self.history(*where) or self._new(where)
        if history.put(version):
            if geom is not None:
                self._recent[row] = geom  # until this input's writes are stored
                self._index(ev.api_owner).insert(self._slot_of(where), geom.bounds)
            self._saw(ev.api_owner, ev.timestamp)
        return [(row, encode_version(geom))]

    def shared(self, name: str) -> str:
        """`name` (a user and field id joined, as the owner's live union keys fields) as
        the string filed last when they are equal: the Meter files a version before AUDIT
        puts it, so the two hold one string a boundary, not two (~60 B in bench.state,
        ~120 B with UUID ids)."""
        if self._names and self._names[-1] == name:
            return self._names[-1]
        return name

    def history(self, owner: str, user: str, field_id: str) -> FieldHistory | None:
        where = (owner, user, field_id)
        if where in self._histories or self._scan is None:
            return self._histories.get(where)
        base = key(Kind.VERSION, owner, user, field_id)
        found = self._load(where, self._scan(base + SEP, base + _AFTER_SEP))
        self._histories[where] = found
        return found

    def widest(self, owner: str, user: str, field_id: str) -> int:
        """The WKB size of the largest shape the field ever had, told without parsing
        one: any boundary event of a field once as wide as a satellite scene takes that
        shape out of the live union, which unites again every field under it (213 ms
        for a 1°×1° field over 2,000 others)."""
        if self._scan is None:
            history = self._histories.get((owner, user, field_id))
            shapes = (history.shape(v) for v in history.versions) if history else ()
            return max((len(shapely.to_wkb(s)) for s in shapes if s is not None), default=0)
        assert self._read is not None
        base = key(Kind.VERSION, owner, user, field_id)
        rows = self._scan(base + SEP, base + _AFTER_SEP)
        return max((version_wkb_size(self._read(row) or b"") for row in rows), default=0)

    def histories(self, owner: str) -> list[tuple[str, FieldHistory]]:
        """Every field's history of an owner, by (user, field): a term's carry-over."""
        if self._scan is not None:
            base = key(Kind.VERSION, owner)
            by_field: dict[_Field, list[str]] = defaultdict(list)
            for row in self._scan(base + SEP, base + _AFTER_SEP):
                user, field_id = split_key(row)[2][:2]
                by_field[(owner, user, field_id)].append(row)
            for where, rows in by_field.items():  # one scan, not one per field
                if where not in self._histories:
                    self._histories[where] = self._load(where, iter(rows))
        found = [(w[1:], h) for w, h in self._histories.items() if w[0] == owner and h]
        return [(user, h) for (user, _), h in sorted(found, key=lambda f: f[0])]

    def meeting(
        self, owner: str, user: str | None, geoms: Iterable[BaseGeometry | None],
        excluded: tuple[str, str],
    ) -> list[FieldHistory]:
        """Histories of the fields (of `user`, or any) one of whose versions' boxes meets
        one of `geoms`, in (user, field) order whatever order the index returns them."""
        index = self._boxes.get(owner)
        if index is None:
            return []
        names = {
            self._names[slot]
            for geom in geoms if geom is not None
            for slot in index.intersection(geom.bounds)
        }
        fields = sorted(
            (u, f) for u, f in (split_parts(n) for n in names)
            if (u, f) != excluded and user in (None, u)
        )
        return [h for u, f in fields if (h := self.history(owner, u, f)) is not None]

    def clip(
        self, ev: MeterEvent, geom: BaseGeometry | None
    ) -> tuple[BaseGeometry | None, str | None]:
        """Operations count inside the boundary their field had at their event time."""
        if geom is None or ev.field_id is None:
            return geom, None
        boundary, why = boundary_for(
            self.history(ev.api_owner, ev.leaf_user_id, ev.field_id), ev.timestamp)
        if boundary is None:
            return geom, why
        clipped = clip_to(geom, boundary)
        if clipped is None:
            return None, "outside-field"
        return clipped, None

    # ---- rebuilding --------------------------------------------------------------

    def restore(self, kind: Kind, owner: str, parts: list[str], value: bytes) -> bool:
        """A version's box goes to its owner's index; its history, without a table."""
        if kind is not Kind.VERSION:
            return False
        user, field_id, moment, event_id = parts
        box = version_box(value)
        at = datetime.fromisoformat(moment)
        where = (owner, user, field_id)
        if box is not None:
            self._restored[owner].add(self._slot_of(where), box)
        self._saw(owner, at)
        if self._scan is None:
            version = Version(at, event_id, box is None)
            (self.history(*where) or self._new(where)).put(version)
            if box is not None:
                self._recent[_version_key(where, version)] = decode_version(value)
        return True

    def finish(self) -> None:
        """Bulk-load each owner's index of version boxes."""
        for owner, load in self._restored.items():
            self._boxes[owner] = load.index()
        self._restored.clear()

    # ---- inside ------------------------------------------------------------------

    def _load(self, where: _Field, keys: Iterator[str]) -> FieldHistory | None:
        assert self._read is not None
        history = None
        for row in keys:
            _, _, moment, event_id = split_key(row)[2]
            version = Version(datetime.fromisoformat(moment), event_id, not self._read(row))
            history = history or self._new(where)
            history.put(version)
        return history

    def _new(self, where: _Field) -> FieldHistory:
        history = self._histories[where] = FieldHistory(partial(self._shape, where))
        return history

    def _index(self, owner: str) -> Index:
        index = self._boxes.get(owner)
        if index is None:
            index = self._boxes[owner] = empty_index()
        return index

    def _slot_of(self, where: _Field) -> int:
        """A new index entry's id, naming its field: rtree's own objects are pickled
        one by one, and a takeover indexes every version at once."""
        self._names.append(_name(where))
        return len(self._names) - 1

    def _saw(self, owner: str, moment: datetime) -> None:
        day = day_of(moment).toordinal()
        self.last_day[owner] = max(self.last_day.get(owner, day), day)

    def _shape(self, where: _Field, version: Version) -> BaseGeometry | None:
        if version.deleted:
            return None
        row = _version_key(where, version)
        if row in self._recent:
            return self._recent[row]
        raw = self._read(row) if self._read is not None else None
        if not raw:
            raise LookupError(f"boundary version {row!r} has no stored shape")
        return decode_version(raw)


_AFTER_SEP = chr(ord(SEP) + 1)  # a key range [base + SEP, base + this) is base's own rows


def _name(where: _Field) -> str:
    return join_parts(where[1], where[2])


def _version_key(where: _Field, version: Version) -> str:
    return key(Kind.VERSION, *where, version.timestamp.isoformat(), version.event_id)
