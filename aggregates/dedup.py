"""Event ids already metered or held: SPEC §5's dedup, bounded in event time.

An event id is counted once per owner. What is kept of an id says which input record it
came from, so the same record forwarded again by a restarted ingest agent (at a new
metering offset) is our own replay and produces no "duplicate" record, while the same id
sent again upstream does. A FAILED event keeps no id: its retry must count. (A metering
message read again is the journal's: aggregates/journal.py.)
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregates.periods import day_of


@dataclass(frozen=True, slots=True)
class Seen:
    """The input record (topic/partition/offset) an event was first metered from."""

    source: str | None

    def replayed_by(self, source: str | None) -> bool:
        return source is not None and self.source == source


class EventIds:
    """Ids per owner, filed by the UTC day of their event so old days can be let go."""

    def __init__(self, horizon: timedelta) -> None:
        self.horizon = horizon
        self._seen: dict[tuple[str, str], Seen] = {}
        self._by_day: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))

    def seen(self, owner: str, event_id: str) -> Seen | None:
        return self._seen.get((owner, event_id))

    def remember(self, owner: str, event_id: str, seen: Seen, moment: datetime) -> None:
        self._seen[(owner, event_id)] = seen
        self._by_day[owner][day_of(moment).toordinal()].add(event_id)

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
