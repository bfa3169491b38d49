"""Which shape a field had at a given moment: every boundary version, in event time.

Operations are clipped to the boundary *in force at their event time* (SPEC §2), and
boundary events of one field may arrive in any order, so the whole history is kept, not
only the latest version.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime

from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True, slots=True)
class Version:
    """One boundary event of a field; `geometry` None is a delete."""

    timestamp: datetime
    event_id: str
    geometry: BaseGeometry | None


@dataclass
class FieldHistory:
    """A field's versions sorted by (event time, event id), so any arrival order
    yields the same history and a replayed version is recognised."""

    versions: list[Version] = field(default_factory=list)
    bounds: tuple[float, float, float, float] | None = None  # of every version's shape
    _keys: list[tuple[datetime, str]] = field(default_factory=list)

    def put(self, version: Version) -> None:
        sort_key = (version.timestamp, version.event_id)
        at = bisect.bisect_left(self._keys, sort_key)
        if at < len(self._keys) and self._keys[at] == sort_key:
            return
        self._keys.insert(at, sort_key)
        self.versions.insert(at, version)
        if version.geometry is not None:
            self.bounds = _envelope(self.bounds, version.geometry.bounds)

    def before(self, version: Version) -> Version | None:
        """The version this one follows in event time (None: it is the first)."""
        at = bisect.bisect_left(self._keys, (version.timestamp, version.event_id))
        return self.versions[at - 1] if at else None

    def after(self, version: Version) -> Version | None:
        """The version that follows this one in event time (None: it is the latest)."""
        at = bisect.bisect_right(self._keys, (version.timestamp, version.event_id))
        return self.versions[at] if at < len(self.versions) else None

    def in_force(self, moment: datetime) -> Version | None:
        """The latest version at or before `moment`; None when the field came later."""
        at = bisect.bisect_right(self._keys, (moment, "\U0010ffff"))
        return self.versions[at - 1] if at else None

    def first(self) -> Version | None:
        return self.versions[0] if self.versions else None


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
    if version is None:
        return None, "field-unknown"
    if version.geometry is None:
        return None, "field-deleted"
    return version.geometry, None
