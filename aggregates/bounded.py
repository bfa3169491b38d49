"""The period-bounded products: one union per contract, term and scope, and its pieces.

Every product but AUDIT counts the unique area processed in a term, so each (contract,
term, scope) has a `UniqueAreaLedger` whose pieces are stored one record each. The
Leaf-user scopes of a term are indexed, since billing sums them (SPEC §3).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import ItemsView, Mapping
from dataclasses import dataclass, field

from shapely.geometry.base import BaseGeometry

from aggregates.area import geodesic_area_m2
from aggregates.contracts import OWNER_SCOPE, Contract
from aggregates.snapshots import LedgerKey
from aggregates.state import SEP, Kind, ReadKey, Write, key, split_key
from aggregates.union import Held, PieceLoad, Read, UniqueAreaLedger


@dataclass
class Added:
    """The area one geometry added to one union, and the piece writes storing it."""

    area_m2: float
    writes: list[Write] = field(default_factory=list)


class BoundedUnions:
    """Ledgers by (contract id, term index, scope), created on first use.

    Given `read` (the worker's table), each ledger reads its pieces from there instead of
    keeping them: see UniqueAreaLedger.
    """

    def __init__(self, read: ReadKey | None = None) -> None:
        self._read = read
        self._ledgers: dict[LedgerKey, UniqueAreaLedger] = {}
        self._user_scopes: dict[tuple[str, int], set[str]] = defaultdict(set)
        # a rebuild's ledgers by their pieces' key prefix, each with its index's entries
        self._loading: dict[str, tuple[UniqueAreaLedger, PieceLoad]] = {}
        self._last_prefix = ""
        self._last: tuple[UniqueAreaLedger, PieceLoad]
        # every scope of a contract: the API lists them per request, and walking every
        # ledger of the partition for them costs the other owners' ledgers too
        self._scopes: dict[str, set[str]] = defaultdict(set)

    # ---- reading -----------------------------------------------------------------

    def items(self) -> ItemsView[LedgerKey, UniqueAreaLedger]:
        return self._ledgers.items()

    @property
    def piece_count(self) -> int:
        return sum(ledger.piece_count for ledger in self._ledgers.values())

    def scopes(self, contract_id: str) -> set[str]:
        """Every scope that ever held area under a contract, in any term."""
        return set(self._scopes.get(contract_id, ()))

    def by_day(self, lkey: LedgerKey) -> Mapping[int, float]:
        ledger = self._ledgers.get(lkey)
        return ledger.day_area if ledger else {}

    def total_m2(self, lkey: LedgerKey) -> float:
        ledger = self._ledgers.get(lkey)
        return ledger.total_m2 if ledger else 0.0

    def billable_m2(self, contract_id: str, term: int) -> float:
        """The sum of the term's Leaf-user totals, overlaps between users included."""
        scopes = self._user_scopes.get((contract_id, term), ())
        return sum(self._ledgers[(contract_id, term, s)].total_m2 for s in scopes)

    def has_later_term(self, contract_id: str) -> bool:
        return any(c == contract_id and t > 0 for (c, t, _) in self._ledgers)

    def preview(self, lkey: LedgerKey, geom: BaseGeometry, ordinal: int) -> float:
        """What `add` would return; a union not yet created would gain all of geom."""
        ledger = self._ledgers.get(lkey)
        return ledger.preview(geom, ordinal) if ledger else geodesic_area_m2(geom)

    def held_in(self, lkey: LedgerKey, where: BaseGeometry, limit: int) -> list[Held]:
        """The pieces of one union meeting a point or an area, each naming its origin."""
        ledger = self._ledgers.get(lkey)
        return ledger.held_in(where, limit) if ledger else []

    def pieces(
        self, lkey: LedgerKey, days: tuple[int, int], limit: int, after: int = -1
    ) -> list[Held]:
        ledger = self._ledgers.get(lkey)
        return ledger.pieces(days, limit, after) if ledger else []

    # ---- counting ----------------------------------------------------------------

    def add(
        self,
        contract: Contract,
        lkey: LedgerKey,
        geom: BaseGeometry,
        ordinal: int,
        seq: int,
        origin: bytes = b"",
    ) -> Added:
        ledger = self._ledgers.get(lkey)
        if ledger is None:
            ledger = self._put(lkey, UniqueAreaLedger(self._pieces_of(contract.api_owner, lkey)))
        added = Added(ledger.add(geom, ordinal, seq, origin))
        for piece_id, value in ledger.take_changes():
            added.writes.append((key(Kind.PIECE, contract.api_owner, *lkey, piece_id), value))
        return added

    # ---- rebuilding --------------------------------------------------------------

    def restore(self, raw_key: str, value: bytes) -> None:
        """One stored piece. A partition holds ~4 pieces an event, and a ledger's pieces
        sort together, so the key's ledger part is split once per ledger, not per piece."""
        prefix, _, piece_id = raw_key.rpartition(SEP)
        if prefix != self._last_prefix:
            self._last_prefix = prefix
            self._last = self._loading.get(prefix) or self._start_loading(prefix)
        ledger, load = self._last
        ledger.restore(load, int(piece_id), value)

    def _start_loading(self, prefix: str) -> tuple[UniqueAreaLedger, PieceLoad]:
        _, owner, (cid, term, scope) = split_key(prefix)
        lkey = (cid, int(term), scope)
        loading = self._loading[prefix] = (
            self._put(lkey, UniqueAreaLedger(self._pieces_of(owner, lkey))), PieceLoad())
        return loading

    def finish(self) -> None:
        """Bulk-load each union's R-tree from its pieces at once."""
        for ledger, load in self._loading.values():
            ledger.restored(load)
        self._loading.clear()
        self._last_prefix = ""

    def _pieces_of(self, owner: str, lkey: LedgerKey) -> Read | None:
        read = self._read
        if read is None:
            return None
        return lambda piece_id: read(key(Kind.PIECE, owner, *lkey, piece_id))

    def _put(self, lkey: LedgerKey, ledger: UniqueAreaLedger) -> UniqueAreaLedger:
        cid, term, scope = lkey
        if scope != OWNER_SCOPE:
            self._user_scopes[(cid, term)].add(scope)
        self._scopes[cid].add(scope)
        self._ledgers[lkey] = ledger
        return ledger
