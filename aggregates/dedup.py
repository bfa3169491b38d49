"""Event ids already metered, held or failed: SPEC §5's dedup, bounded in event time.

An event id is counted once per owner. What is kept of an id says where its event was
first read, so a message read again from that very place (a restart re-reading what it
had not committed) is our own replay and produces no "duplicate" record, while the same
id sent again upstream does. A FAILED event keeps no id: its retry must count.

A worker reads ids from the table: an event's marker says where it was first read and its
event time, so memory holds only what the current input remembered, each owner's horizon,
and the few late ids remembered since that horizon last moved.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregates.periods import day_of
from aggregates.state import Kind, ReadKey, key, load


@dataclass(frozen=True, slots=True)
class Seen:
    """Where an event was first metered: a message seen again there is our own replay
    (a restart re-reads what it had not committed), not a duplicate sent upstream."""

    seq: int
    source: str | None

    def replayed_by(self, seq: int, source: str | None) -> bool:
        return self.seq == seq or (source is not None and self.source == source)


class EventIds:
    """Ids per owner, filed by the UTC day of their event so old days can be let go.

    Given `read` (the table), ids of inputs before the current one are read from their
    markers, which the caller stores before the next input: see `begin`."""

    def __init__(self, horizon: timedelta, read: ReadKey | None = None) -> None:
        self.horizon = horizon
        self._read = read
        self._seen: dict[tuple[str, str], Seen] = {}
        self._by_day: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._failed: set[tuple[str, str, int]] = set()
        self._cutoff: dict[str, int] = {}  # owner -> first day its ids are kept for
        self._late: set[tuple[str, str]] = set()  # remembered behind the cutoff since it moved

    def begin(self) -> None:
        """A new input: the previous one's markers are in the table now."""
        if self._read is not None:
            self._seen.clear()
            self._failed.clear()

    def seen(self, owner: str, event_id: str) -> Seen | None:
        found = self._seen.get((owner, event_id))
        if found is not None or self._read is None:
            return found
        raw = self._read(key(Kind.EVENT, owner, event_id))
        if raw is None:
            return None
        marker = load(raw)
        day = day_of(datetime.fromisoformat(str(marker["ts"]))).toordinal()
        if day < self._cutoff.get(owner, day) and (owner, event_id) not in self._late:
            return None
        source = marker.get("src")
        return Seen(int(marker["seq"]), str(source) if source else None)

    def remember(self, owner: str, event_id: str, seen: Seen, moment: datetime) -> None:
        self._seen[(owner, event_id)] = seen
        day = day_of(moment).toordinal()
        if self._read is None:
            self._by_day[owner][day].add(event_id)
        elif day < self._cutoff.get(owner, day):
            self._late.add((owner, event_id))

    def failed_before(self, owner: str, event_id: str, seq: int) -> bool:
        """The same FAILED message again (a replay): its record exists already."""
        if (owner, event_id, seq) in self._failed:
            return True
        return self._read is not None and self._read(
            key(Kind.FAILED, owner, event_id, seq)) is not None

    def remember_failed(self, owner: str, event_id: str, seq: int) -> None:
        self._failed.add((owner, event_id, seq))

    def forget_old(
        self,
        latest: dict[str, datetime],
        owns: Callable[[str], bool],
        held: Callable[[str, str], bool],
    ) -> None:
        """SPEC §5: ids are remembered for `horizon` in event time, behind each owner's
        latest event, so dedup state is bounded. An older re-delivery is metered again; its
        area is already in the union, so it adds nothing, and its record says 0 m². An
        operation still held keeps its id: its release must not count twice (a Meter
        reading the table asks its held operations before its ids)."""
        if self._read is not None:
            self._move_cutoffs(latest, owns)
            return
        for owner, days in self._by_day.items():
            if not owns(owner) or owner not in latest:
                continue
            cutoff = day_of(latest[owner] - self.horizon).toordinal()
            for day in [d for d in days if d < cutoff]:
                for event_id in days.pop(day):
                    if not held(owner, event_id):
                        self._seen.pop((owner, event_id), None)

    def _move_cutoffs(self, latest: dict[str, datetime], owns: Callable[[str], bool]) -> None:
        """Forgetting is a cutoff day per owner; what was remembered behind it since it
        last moved is kept until it moves again, as the in-memory ids are."""
        for owner, moment in latest.items():
            if owns(owner):
                self._cutoff[owner] = day_of(moment - self.horizon).toordinal()
        self._late = {k for k in self._late if not owns(k[0])}
