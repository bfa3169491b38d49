"""Carry-over: when a FIELDS_BOUNDARY term is seeded with the boundaries live at its start.

Boundaries live at a term's start count in that term (SPEC §2), whether or not any event
follows. A term is seeded once its start plus the grace has passed on the owner's clock,
and `field_wait` after that was first noticed, so boundaries dated before the start and
published with the rest have arrived; later ones are carried as they come.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from aggregates.contracts import Contract
from aggregates.periods import add_years
from aggregates.state import Kind, Write, key


def term_start(contract: Contract, index: int) -> datetime:
    return datetime.combine(add_years(contract.start, index), time.min, tzinfo=UTC)


class TermSeeds:
    """Which terms are seeded, and when each was first noticed due; both are stored."""

    def __init__(self, grace: timedelta, field_wait: timedelta) -> None:
        self._grace = grace
        self._wait = field_wait
        self._seeded: set[tuple[str, int]] = set()
        self._noticed: dict[tuple[str, int], datetime] = {}

    def due(
        self, contract: Contract, clock: datetime, now: datetime
    ) -> tuple[list[int], list[Write]]:
        """Terms to seed now, in order, and the writes noting terms first seen due."""
        due: list[int] = []
        writes: list[Write] = []
        for index in range(1, contract.term(clock.date()).index + 1):
            if (contract.contract_id, index) in self._seeded:
                continue
            if term_start(contract, index) + self._grace > clock:
                break
            noticed = self._notice(contract, index, now, writes)
            if noticed + self._wait > now:
                break
            due.append(index)
        return due, writes

    def seed(self, contract: Contract, index: int) -> Write:
        self._seeded.add((contract.contract_id, index))
        return key(Kind.SEEDED, contract.api_owner, contract.contract_id, index), b"1"

    def seeded_terms(self, contract_id: str) -> list[int]:
        return sorted(index for cid, index in self._seeded if cid == contract_id)

    def restore(self, kind: Kind, parts: list[str], value: bytes) -> bool:
        if kind is Kind.SEEDED:
            self._seeded.add((parts[0], int(parts[1])))
        elif kind is Kind.NOTICED:
            self._noticed[(parts[0], int(parts[1]))] = datetime.fromisoformat(value.decode())
        else:
            return False
        return True

    def _notice(
        self, contract: Contract, index: int, now: datetime, writes: list[Write]
    ) -> datetime:
        """Stored, so a Meter rebuilt after a crash seeds the term at the same tick as
        the first pass: seeding later would let the events in between claim its area."""
        k = (contract.contract_id, index)
        if k not in self._noticed:
            self._noticed[k] = now
            row = key(Kind.NOTICED, contract.api_owner, contract.contract_id, index)
            writes.append((row, now.isoformat().encode()))
        return self._noticed[k]

