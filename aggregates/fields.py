"""Which shape a field had at a given moment: every boundary version, in event time.

Operations are clipped to the boundary *in force at their event time* (SPEC §2), and
boundary events of one field may arrive in any order, so the whole history is kept, not
only the latest version. Given the worker's table, the shapes stay there, each version's
under its own key, and are read when an operation or a correction needs one.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import shapely
from shapely.geometry.base import BaseGeometry

from aggregates.geometry import clip_to
from aggregates.records import MeterEvent
from aggregates.state import Kind, ReadKey, Write, key


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
    bounds: tuple[float, float, float, float] | None = None  # of every version's shape

    def put(self, version: Version, geom: BaseGeometry | None) -> None:
        sort_key = _order(version)
        at = bisect.bisect_left(self.versions, sort_key, key=_order)
        if at < len(self.versions) and _order(self.versions[at]) == sort_key:
            return
        self.versions.insert(at, version)
        if geom is not None:
            self.bounds = _envelope(self.bounds, geom.bounds)

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


def _envelope(
    a: tuple[float, float, float, float] | None, b: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    if a is None:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


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


class FieldBook:
    """Every boundary version of every field, per owner: (leaf user, field id) -> history.

    Each version is stored under its own key, so a field's history is rebuilt whatever
    order its events came in. Given `read` (the worker's table), a version's shape is
    read from there when needed; the shapes remembered by the current input are kept
    until `begin` says the next one starts. Without it (tests) every shape is kept.
    """

    def __init__(self, read: ReadKey | None = None) -> None:
        self._read = read
        self._recent: dict[str, BaseGeometry | None] = {}  # by version key
        self.by_owner: dict[str, dict[tuple[str, str], FieldHistory]] = defaultdict(dict)

    def begin(self) -> None:
        """A new input starts: what the last one remembered is in the table now."""
        if self._read is not None:
            self._recent.clear()

    def remember(self, ev: MeterEvent) -> list[Write]:
        """A boundary event's version; other events leave no trace here."""
        if not ev.type.startswith("fieldBoundary") or ev.field_id is None:
            return []
        geom = None if ev.type == "fieldBoundaryDeleted" else ev.geometry
        row = self._put(ev.api_owner, ev.leaf_user_id, ev.field_id,
                        Version(ev.timestamp, ev.event_id, geom is None), geom)
        if geom is not None:
            self._recent[row] = geom  # until this input's writes are stored
        return [(row, shapely.to_wkb(geom) if geom is not None else b"")]

    def clip(
        self, ev: MeterEvent, geom: BaseGeometry | None
    ) -> tuple[BaseGeometry | None, str | None]:
        """Operations count inside the boundary their field had at their event time."""
        if geom is None or ev.field_id is None:
            return geom, None
        history = self.by_owner[ev.api_owner].get((ev.leaf_user_id, ev.field_id))
        boundary, why = boundary_for(history, ev.timestamp)
        if boundary is None:
            return geom, why
        clipped = clip_to(geom, boundary)
        if clipped is None:
            return None, "outside-field"
        return clipped, None

    def restore(self, kind: Kind, owner: str, parts: list[str], value: bytes) -> bool:
        if kind is not Kind.VERSION:
            return False
        user, field_id, moment, event_id = parts
        geom = shapely.from_wkb(value) if value else None
        version = Version(datetime.fromisoformat(moment), event_id, geom is None)
        row = self._put(owner, user, field_id, version, geom)
        if geom is not None and self._read is None:
            self._recent[row] = geom
        return True

    def _put(
        self, owner: str, user: str, field_id: str, version: Version, geom: BaseGeometry | None
    ) -> str:
        """Adds the version to its field's history; returns the version's key."""
        histories = self.by_owner[owner]
        history = histories.get((user, field_id))
        if history is None:
            history = histories[(user, field_id)] = FieldHistory(
                partial(self._shape, owner, user, field_id)
            )
        history.put(version, geom)
        return _version_key(owner, user, field_id, version)

    def _shape(self, owner: str, user: str, field_id: str, version: Version) -> BaseGeometry | None:
        if version.deleted:
            return None
        row = _version_key(owner, user, field_id, version)
        if row in self._recent:
            return self._recent[row]
        raw = self._read(row) if self._read is not None else None
        if not raw:
            raise LookupError(f"boundary version {row!r} has no stored shape")
        return shapely.from_wkb(raw)


def _version_key(owner: str, user: str, field_id: str, version: Version) -> str:
    return key(Kind.VERSION, owner, user, field_id, version.timestamp.isoformat(),
               version.event_id)
