"""Operations waiting for their field, with their stored records.

An operation that names a field waits `field_wait` after it arrives (processing time)
before it is counted: boundaries and operations come on different topics, and waiting
lets every boundary version published with it arrive first, whatever the interleaving.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import shapely

from aggregates.dedup import EventIds, Seen
from aggregates.records import MeterEvent
from aggregates.state import Kind, Write, dump, key, load


@dataclass(frozen=True, slots=True)
class HeldOperation:
    """An operation waiting for its field: counted `field_wait` after it `arrived`."""

    event: MeterEvent
    arrived: datetime
    seq: int
    source: str | None


def encode_held(h: HeldOperation) -> bytes:
    ev = h.event
    assert ev.geometry is not None
    return dump(
        {
            "id": ev.event_id,
            "type": ev.type,
            "ts": ev.timestamp.isoformat(),
            "owner": ev.api_owner,
            "user": ev.leaf_user_id,
            "field": ev.field_id,
            "wkb": shapely.to_wkb(ev.geometry, hex=True),
            "arrived": h.arrived.isoformat(),
            "seq": h.seq,
            "src": h.source,
        }
    )


def decode_held(raw: bytes) -> HeldOperation:
    v = load(raw)
    event = MeterEvent(
        v["id"],
        v["type"],
        datetime.fromisoformat(v["ts"]),
        v["owner"],
        v["user"],
        field_id=v["field"],
        geometry=shapely.from_wkb(v["wkb"]),
    )
    return HeldOperation(event, datetime.fromisoformat(v["arrived"]), v["seq"], v["src"])


def waits_for_field(ev: MeterEvent) -> bool:
    return (
        ev.type == "operationProcessingFinished"
        and ev.field_id is not None
        and ev.geometry is not None
    )


class HeldOperations:
    """Held operations by (owner, event id); each is stored until it is counted."""

    def __init__(self, field_wait: timedelta) -> None:
        self._wait = field_wait
        self._held: dict[tuple[str, str], HeldOperation] = {}
        self._restored: list[HeldOperation] = []

    def __contains__(self, owner_and_event: object) -> bool:
        return owner_and_event in self._held

    def seen(self, owner: str, event_id: str) -> Seen | None:
        """A held operation's id is taken: it has no marker until it is counted."""
        held = self._held.get((owner, event_id))
        return None if held is None else Seen(held.seq, held.source)

    def hold(self, held: HeldOperation) -> Write:
        ev = held.event
        self._held[(ev.api_owner, ev.event_id)] = held
        return key(Kind.HELD, ev.api_owner, ev.event_id), encode_held(held)

    def due(self, now: datetime, owns: Callable[[str], bool]) -> list[HeldOperation]:
        """Operations whose wait is over, taken out in (owner, event id) order. The caller
        stores `released` for each after its marker, so a crash in between loses none."""
        keys = [
            k
            for k, held in self._held.items()
            if held.arrived + self._wait <= now and owns(held.event.api_owner)
        ]
        return [self._held.pop(k) for k in sorted(keys)]

    @staticmethod
    def released(held: HeldOperation) -> Write:
        return key(Kind.HELD, held.event.api_owner, held.event.event_id), None

    def restore(self, kind: Kind, value: bytes) -> bool:
        if kind is not Kind.HELD:
            return False
        self._restored.append(decode_held(value))
        return True

    def finish(self, ids: EventIds) -> None:
        """Hold again what was held, after the markers are restored into `ids`: a held
        record whose marker exists was released just before a crash."""
        for held in self._restored:
            k = (held.event.api_owner, held.event.event_id)
            if ids.seen(*k) is None:
                self._held[k] = held
                ids.remember(*k, Seen(held.seq, held.source), held.event.timestamp)
        self._restored.clear()
