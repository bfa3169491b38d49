"""Daily consumption snapshots derived from area attributed per day (SPEC §5), and the
book of what was sent for each day, with its stored record."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from aggregates.contracts import Contract
from aggregates.periods import day_end
from aggregates.records import DailySnapshot
from aggregates.state import Kind, Write, dump, key, load

LedgerKey = tuple[str, int, str]  # contract id, term index, scope

# Re-emitting a snapshot for a change below a micro-square-metre would only be float noise.
CHANGE_EPSILON_M2 = 1e-6


@dataclass(frozen=True, slots=True)
class DayFigures:
    """What a daily snapshot reports for one scope and day."""

    added_m2: float
    total_m2: float


@dataclass(frozen=True, slots=True)
class Emitted:
    """The last snapshot sent for a key: needed to number revisions and skip no-ops.

    It holds the whole snapshot as sent, and `seq`, the input that produced it, so a
    rebuild can send it again unchanged when it may not have reached the broker.
    """

    revision: int
    added_m2: float
    total_m2: float
    final: bool
    seq: int
    quota_m2: float | None
    emitted_at: datetime


def figures_for(by_day: Mapping[int, float], days: Iterable[int]) -> dict[int, DayFigures]:
    """Added and running total for each requested ordinal day, from per-day attribution."""
    wanted = sorted(set(days))
    if not wanted:
        return {}
    ordered = sorted(by_day.items())
    result: dict[int, DayFigures] = {}
    running = 0.0
    i = 0
    for day in wanted:
        while i < len(ordered) and ordered[i][0] <= day:
            running += ordered[i][1]
            i += 1
        result[day] = DayFigures(by_day.get(day, 0.0), running)
    return result


def is_closed(day: int, now: datetime, grace: timedelta) -> bool:
    """A day is final once it ended and the grace for late events has passed too."""
    return day_end(date.fromordinal(day)) + grace <= now


def needs_emit(last: Emitted | None, figures: DayFigures, final: bool) -> bool:
    """Emit when the figures moved, or when a provisional snapshot becomes final."""
    if last is None:
        return True
    moved = (
        abs(last.added_m2 - figures.added_m2) > CHANGE_EPSILON_M2
        or abs(last.total_m2 - figures.total_m2) > CHANGE_EPSILON_M2
    )
    return moved or (final and not last.final)


def encode_emitted(e: Emitted) -> bytes:
    return dump(
        {
            "r": e.revision,
            "a": e.added_m2,
            "t": e.total_m2,
            "f": e.final,
            "s": e.seq,
            "q": e.quota_m2,
            "at": e.emitted_at.isoformat(),
        }
    )


def decode_emitted(raw: bytes) -> Emitted:
    v = load(raw)
    return Emitted(
        v["r"], v["a"], v["t"], v["f"], v["s"], v["q"], datetime.fromisoformat(v["at"])
    )


@dataclass
class Emission:
    """Snapshots a tick owes, and the writes that store them as sent."""

    snapshots: list[DailySnapshot] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


class SnapshotBook:
    """The last snapshot of every (contract, scope, day), and the days changed since.

    A day is sent again only when its figures moved or it became final, always with the
    next revision; days after a changed day are checked too, since their running totals
    moved with it. A day stays pending until a final snapshot of it is sent.
    """

    def __init__(self, contracts: Mapping[str, Contract], grace: timedelta) -> None:
        self._contracts = contracts
        self._grace = grace
        self._emitted: dict[tuple[str, str, int], Emitted] = {}
        self._emitted_days: dict[tuple[str, str], set[int]] = defaultdict(set)
        self._pending_final: set[tuple[str, str, int]] = set()
        self._final_contracts: set[str] = set()
        self._dirty: dict[LedgerKey, set[int]] = defaultdict(set)

    def touch(self, lkey: LedgerKey, days: Iterable[int]) -> None:
        self._dirty[lkey].update(days)

    def has_final_day(self, contract_id: str) -> bool:
        return contract_id in self._final_contracts

    def emit_due(
        self,
        by_day: Callable[[str, int, str], Mapping[int, float]],
        now: datetime,
        seq: int,
        owns: Callable[[str], bool],
    ) -> Emission:
        """Changed days of the owners `owns` accepts first, then days whose grace ended."""
        out = Emission()
        mine = [k for k in self._dirty if owns(self._contracts[k[0]].api_owner)]
        for lkey in mine:
            cid, term, scope = lkey
            days = self._dirty.pop(lkey)
            later = {d for d in self._emitted_days[(cid, scope)] if d >= min(days)}
            self._emit(lkey, by_day(*lkey), days | later, now, seq, out)
        closing = [
            k
            for k in self._pending_final
            if is_closed(k[2], now, self._grace) and owns(self._contracts[k[0]].api_owner)
        ]
        for cid, scope, day in closing:
            term = self._contracts[cid].term(date.fromordinal(day)).index
            self._emit((cid, term, scope), by_day(cid, term, scope), {day}, now, seq, out)
        return out

    def unsent(self, sent_up_to: Callable[[str], int]) -> list[DailySnapshot]:
        """Snapshots stored by inputs after their owner's last known send."""
        return [
            self._snapshot(cid, scope, day, emitted)
            for (cid, scope, day), emitted in sorted(self._emitted.items())
            if emitted.seq > sent_up_to(self._contracts[cid].api_owner)
        ]

    def revision(self, contract_id: str, scope: str, day: date) -> int | None:
        """The revision of the last snapshot sent for a day; None if none was."""
        emitted = self._emitted.get((contract_id, scope, day.toordinal()))
        return None if emitted is None else emitted.revision

    def restore(self, kind: Kind, parts: list[str], value: bytes) -> bool:
        if kind is not Kind.SNAPSHOT:
            return False
        self._remember(parts[0], parts[1], int(parts[2]), decode_emitted(value))
        return True

    def _emit(
        self,
        lkey: LedgerKey,
        by_day: Mapping[int, float],
        days: set[int],
        now: datetime,
        seq: int,
        out: Emission,
    ) -> None:
        cid, term, scope = lkey
        contract = self._contracts[cid]
        bounded = contract.product.period_bounded
        for day, figures in figures_for(by_day, days).items():
            if bounded and contract.term(date.fromordinal(day)).index != term:
                continue
            final = is_closed(day, now, self._grace)
            last = self._emitted.get((cid, scope, day))
            if not needs_emit(last, figures, final):
                continue
            emitted = Emitted(
                (last.revision if last else 0) + 1,
                figures.added_m2,
                figures.total_m2,
                final,
                seq,
                contract.quota_m2,
                now,
            )
            self._remember(cid, scope, day, emitted)
            row = key(Kind.SNAPSHOT, contract.api_owner, cid, scope, day)
            out.writes.append((row, encode_emitted(emitted)))
            out.snapshots.append(self._snapshot(cid, scope, day, emitted))

    def _snapshot(self, cid: str, scope: str, day: int, emitted: Emitted) -> DailySnapshot:
        contract = self._contracts[cid]
        return DailySnapshot(
            cid,
            contract.api_owner,
            scope,
            contract.product.value,
            date.fromordinal(day),
            emitted.added_m2,
            emitted.total_m2,
            emitted.quota_m2,
            emitted.final,
            emitted.revision,
            emitted.emitted_at,
        )

    def _remember(self, cid: str, scope: str, day: int, emitted: Emitted) -> None:
        self._emitted[(cid, scope, day)] = emitted
        self._emitted_days[(cid, scope)].add(day)
        if emitted.final:
            self._final_contracts.add(cid)
            self._pending_final.discard((cid, scope, day))
        else:
            self._pending_final.add((cid, scope, day))
