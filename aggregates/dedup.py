"""Event ids already metered, held or failed: SPEC §5's dedup, bounded in event time.

An event id is counted once per owner. What is kept of an id says where its event was
first read, so a message read again from that very place (a restart re-reading what it
had not committed) is our own replay and produces no "duplicate" record, while the same
id sent again upstream does. A FAILED event keeps no id: its retry must count.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregates.periods import day_of


@dataclass(frozen=True, slots=True)
class Seen:
    """Where an event was first metered: a message seen again there is our own replay
    (a restart re-reads what it had not committed), not a duplicate sent upstream."""

    seq: int
    source: str | None

    def replayed_by(self, seq: int, source: str | None) -> bool:
        return self.seq == seq or (source is not None and self.source == source)


class EventIds:
    """Ids per owner, filed by the UTC day of their event so old days can be let go."""

    def __init__(self, horizon: timedelta) -> None:
        self.horizon = horizon
        self._seen: dict[tuple[str, str], Seen] = {}
        self._by_day: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._failed: set[tuple[str, str, int]] = set()

    def seen(self, owner: str, event_id: str) -> Seen | None:
        return self._seen.get((owner, event_id))

    def remember(self, owner: str, event_id: str, seen: Seen, moment: datetime) -> None:
        self._seen[(owner, event_id)] = seen
        self._by_day[owner][day_of(moment).toordinal()].add(event_id)

    def failed_before(self, owner: str, event_id: str, seq: int) -> bool:
        """The same FAILED message again (a replay): its record exists already."""
        return (owner, event_id, seq) in self._failed

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
        operation still held keeps its id: its release must not count twice."""
        for owner, days in self._by_day.items():
            if not owns(owner) or owner not in latest:
                continue
            cutoff = day_of(latest[owner] - self.horizon).toordinal()
            for day in [d for d in days if d < cutoff]:
                for event_id in days.pop(day):
                    if not held(owner, event_id):
                        self._seen.pop((owner, event_id), None)
