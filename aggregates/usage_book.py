"""Every usage record the Meter makes: its marker, its history entry, and, after a
rebuild, the records the broker may never have received.

A counted event's marker (`e`) makes a replay of it recognisable and keeps its record; a
FAILED event's (`x`) does not use up its id. Each record is also filed for
`/usage/details` (`r`, aggregates/history.py). A Meter reading the table rebuilds from
the `r` keys alone: ids are read from the markers on demand (aggregates/dedup.py).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aggregates.dedup import EventIds, Seen
from aggregates.history import StoredHistory, UsageHistory, record_write
from aggregates.markers import encode_marker, record_of_marker
from aggregates.records import UsageRecord
from aggregates.state import Kind, Write, key, load


class UsageBook:
    """The writes that make a record durable, and what a rebuild learns from them."""

    def __init__(self, ids: EventIds, history: UsageHistory | StoredHistory) -> None:
        self.history = history
        self._ids = ids
        self.latest: dict[str, datetime] = {}  # owner -> latest event time counted
        self._resend: list[tuple[int, UsageRecord]] = []  # rebuilt: records maybe unsent
        self._markers: list[tuple[str, bytes]] = []  # rebuilt without a table
        self._failed: list[tuple[str, int, bytes]] = []
        self._latest_at: dict[str, str] = {}  # rebuilt: owner -> its latest record's time

    def counted(self, record: UsageRecord, seq: int, source: str | None) -> list[Write]:
        self._saw(record.api_owner, record.timestamp)
        marker = encode_marker(record, seq, source)
        return [(key(Kind.EVENT, record.api_owner, record.event_id), marker),
                self._file(record, seq, marker)]

    def failed(self, record: UsageRecord, seq: int, source: str | None) -> list[Write]:
        marker = encode_marker(record, seq, source)
        return [(key(Kind.FAILED, record.api_owner, record.event_id, seq), marker),
                self._file(record, seq, marker)]

    def _file(self, record: UsageRecord, seq: int, marker: bytes) -> Write:
        self.history.add(record)
        return record_write(record, seq, marker)

    def _saw(self, owner: str, moment: datetime) -> None:
        self.latest[owner] = max(self.latest.get(owner, moment), moment)

    def unsent(self) -> list[UsageRecord]:
        """Records of messages from the rebuild's `resend_from` on, in the order their
        messages made them (a tick releases operations by owner and id)."""
        return [record for _, record in sorted(self._resend, key=_made)]

    # ---- rebuilding --------------------------------------------------------------

    def unread(self) -> frozenset[str]:
        """Kinds of record a rebuild can skip unsplit: with a table, the markers (one per
        event) are only read on demand."""
        if isinstance(self.history, StoredHistory):
            return frozenset((Kind.EVENT.value, Kind.FAILED.value))
        return frozenset()

    def restore(self, kind: Kind, owner: str, parts: list[str], value: bytes,
                resend: float) -> bool:
        """A stored record's key is all a takeover reads of it, unless it may be unsent;
        without a table, the markers are kept for `finish`."""
        history = self.history
        stored = isinstance(history, StoredHistory)
        if kind is Kind.RECORD and isinstance(history, StoredHistory):
            history.restore(owner, parts)
            at, event_id, seq, _, _, status = parts
            if status != "FAILED" and at > self._latest_at.get(owner, ""):
                self._latest_at[owner] = at
            if int(seq) >= resend:
                self._resend.append((int(seq), record_of_marker(event_id, load(value))))
        elif kind is Kind.EVENT and not stored:
            self._markers.append((parts[0], value))
        elif kind is Kind.FAILED and not stored:
            self._failed.append((parts[0], int(parts[1]), value))
        return kind in (Kind.RECORD, Kind.EVENT, Kind.FAILED)

    def finish(self, resend: float = math.inf) -> None:
        """Without a table, the ids and the history come from every marker; with it,
        each owner's latest event time is parsed once, from its latest record's key (the
        keys' times are UTC and fixed width, so they sort as the times do)."""
        for owner, at in self._latest_at.items():
            self._saw(owner, datetime.fromisoformat(at).replace(tzinfo=UTC))
        self._latest_at.clear()
        for event_id, value in self._markers:
            marker = load(value)
            owner, source = str(marker["owner"]), marker.get("src")
            seq = int(str(marker["seq"]))
            ts = datetime.fromisoformat(str(marker["ts"]))
            self._ids.remember(owner, event_id, Seen(seq, str(source) if source else None), ts)
            self._restore_record(event_id, marker, seq, resend)
            self._saw(owner, ts)
        for event_id, seq, value in self._failed:
            record = load(value)
            self._ids.remember_failed(str(record["owner"]), event_id, seq)
            self._restore_record(event_id, record, seq, resend)
        self._markers.clear()
        self._failed.clear()

    def _restore_record(
        self, event_id: str, marker: dict[str, Any], seq: int, resend: float
    ) -> None:
        record = record_of_marker(event_id, marker)
        self.history.add(record)
        if seq >= resend:
            self._resend.append((seq, record))


def _made(resend: tuple[int, UsageRecord]) -> tuple[int, str, str]:
    seq, record = resend
    return seq, record.api_owner, record.event_id
