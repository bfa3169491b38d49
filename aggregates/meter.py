"""The metering rules of SPEC §2–3 over the unions of every scope a worker owns.

`Meter` is a deterministic state machine: events, quota changes and clock ticks go in;
records, snapshots, alerts and the state writes that make them durable come out. It does
no I/O, so the stream layer only has to persist `Outcome.writes` in order and send the
rest.

Every input carries `seq`, its offset on the metering topic: it numbers the pieces the
input creates and stamps the snapshot and alert bookkeeping it writes. The stream layer
sends snapshots and alerts only after their bookkeeping is durable, then records per owner
how far it got (`sent`); a rebuilt Meter hands back what lies beyond that (`unsent`), so
a crash can repeat an output with the same content but never lose one or renumber it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial

from shapely.geometry.base import BaseGeometry

from aggregates.area import geodesic_area_m2
from aggregates.audit import AuditDays
from aggregates.bounded import BoundedUnions
from aggregates.carry import TermSeeds, term_start
from aggregates.contracts import OWNER_SCOPE, Contract, new_contract, user_scope
from aggregates.coverage import Coverage
from aggregates.dedup import EventIds, Seen
from aggregates.fields import FieldBook, Version
from aggregates.held import HeldOperation, HeldOperations, waits_for_field
from aggregates.history import StoredHistory, UsageHistory
from aggregates.journal import applied
from aggregates.markers import record_for
from aggregates.origin import Origin
from aggregates.periods import Term, add_years, day_of
from aggregates.products import Product, products_for
from aggregates.quota import AlertBook, Announcement
from aggregates.records import (
    DailySnapshot,
    MeterEvent,
    ProductArea,
    QuotaAlert,
    UsageRecord,
)
from aggregates.snapshots import SnapshotBook
from aggregates.state import (
    Kind,
    ReadKey,
    Scan,
    Write,
    decode_contract,
    encode_contract,
    key,
    split_key,
)
from aggregates.usage_book import UsageBook


@dataclass
class Outcome:
    """Everything one input caused, in the order it must be made durable."""

    records: list[UsageRecord] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    alerts: list[QuotaAlert] = field(default_factory=list)
    snapshots: list[DailySnapshot] = field(default_factory=list)


class Meter:
    """The front of metering for the API owners of one worker: it routes each input to
    the collaborators that hold the rules and state of one concern (bounded unions,
    AUDIT, field versions, held operations, carry-over, snapshots, alerts, event ids,
    usage history), keeps their writes in one `Outcome`, and rebuilds them all from
    the table.

    An operation that names a field is held (aggregates/held.py), then counted clipped
    to that field's boundary in force at its event time.
    """

    def __init__(
        self,
        grace: timedelta = timedelta(minutes=30),
        field_wait: timedelta | None = None,
        dedup_horizon: timedelta = timedelta(days=30),
        read: ReadKey | None = None,
        scan: Scan | None = None,
    ) -> None:
        """`read` and `scan` are the table the Meter's writes are stored in (the
        worker's): given them, what only indexing needs to find stays there (geometries,
        event ids, usage records). The caller must then store each Outcome's writes
        before the next input."""
        self.grace = grace
        self.field_wait = grace if field_wait is None else field_wait
        self.ids = EventIds(dedup_horizon, read)
        self.contracts: dict[str, Contract] = {}
        self._by_owner: dict[str, dict[Product, str]] = defaultdict(dict)
        self.bounded = BoundedUnions(read)
        self.audit = AuditDays(read)
        self.fields = FieldBook(read, scan)
        self.held = HeldOperations(self.field_wait)
        self._sent: dict[str, int] = {}
        self._applied: dict[str, int] = {}  # owner -> last message its stored writes include
        self.seeds = TermSeeds(grace, self.field_wait)
        self.alerts = AlertBook()
        self.snapshots = SnapshotBook(self.contracts, grace)
        # every non-duplicate event's record per owner, for /usage/details
        self.records: UsageHistory | StoredHistory = (
            UsageHistory() if scan is None or read is None else StoredHistory(scan, read)
        )
        self.usage = UsageBook(self.ids, self.records)
        self.coverage = Coverage(read, scan)

    # ---- reading -----------------------------------------------------------------

    def contract_for(self, api_owner: str, product: Product) -> Contract | None:
        cid = self._by_owner.get(api_owner, {}).get(product)
        return self.contracts.get(cid) if cid else None

    def owners(self) -> list[str]:
        return sorted(self._by_owner)

    def scopes(self, contract_id: str) -> set[str]:
        """Every scope that ever held area under a contract, in any term."""
        if self.contracts[contract_id].product is Product.AUDIT_FIELDS_BOUNDARY:
            return self.audit.scopes(contract_id)
        return self.bounded.scopes(contract_id)

    def by_day(self, contract_id: str, term: int, scope: str) -> Mapping[int, float]:
        """m² attributed to each ordinal day, read-only and in no order; AUDIT has signed
        deltas over all terms."""
        if self.contracts[contract_id].product is Product.AUDIT_FIELDS_BOUNDARY:
            return self.audit.by_day(contract_id, scope)
        return self.bounded.by_day((contract_id, term, scope))

    def total_m2(self, contract_id: str, term: int, scope: str) -> float:
        contract = self.contracts[contract_id]
        if contract.product is Product.AUDIT_FIELDS_BOUNDARY:
            return self.audit.total_m2(contract.api_owner, scope)
        return self.bounded.total_m2((contract_id, term, scope))

    def billable_m2(self, contract_id: str, term: int) -> float:
        """SPEC §3: a term's billable area is the sum of its Leaf-user totals, overlaps
        between users included; quotas and alerts compare this, not the owner scope."""
        contract = self.contracts[contract_id]
        if contract.product is Product.AUDIT_FIELDS_BOUNDARY:
            return self.audit.billable_m2(contract.api_owner)
        return self.bounded.billable_m2(contract_id, term)

    def preview(
        self, api_owner: str, leaf_user_id: str, product: Product, geom: BaseGeometry, day: date
    ) -> ProductArea:
        """The area `geom` would add now; nothing changes, so checks cost no usage."""
        contract = self.contract_for(api_owner, product)
        if contract is None:
            area = geodesic_area_m2(geom)
            return ProductArea(area, area)
        term = contract.term(day).index
        cid, ordinal = contract.contract_id, day.toordinal()
        return ProductArea(
            *(
                self.bounded.preview((cid, term, scope), geom, ordinal)
                for scope in (user_scope(leaf_user_id), OWNER_SCOPE)
            )
        )

    # ---- events ------------------------------------------------------------------

    def apply(self, ev: MeterEvent, now: datetime, seq: int, source: str | None = None) -> Outcome:
        """Count one event in every product and scope it touches.

        `source` names the input record (topic, partition, offset) the event came from.
        """
        self._begin()
        out = Outcome()
        seen = self.held.seen(ev.api_owner, ev.event_id) or self.ids.seen(
            ev.api_owner, ev.event_id)
        if seen is not None:
            if not seen.replayed_by(seq, source):
                names = [p.value for p in products_for(ev.type, ev.provider)]
                out.records.append(record_for(ev, names, False, {}, "duplicate"))
            return out
        if ev.status == "FAILED":
            self._fail(ev, seq, source, out)
        elif waits_for_field(ev):
            self.ids.remember(ev.api_owner, ev.event_id, Seen(seq, source), ev.timestamp)
            out.writes.append(self.held.hold(HeldOperation(ev, now, seq, source)))
        else:
            self.ids.remember(ev.api_owner, ev.event_id, Seen(seq, source), ev.timestamp)
            self._meter(ev, now, seq, source, out)
        return self._applied_by(seq, out)

    def _meter(
        self, ev: MeterEvent, now: datetime, seq: int, source: str | None, out: Outcome
    ) -> None:
        products = products_for(ev.type, ev.provider)
        day = day_of(ev.timestamp)
        out.writes.extend(self.fields.remember(ev))
        by_product, reason = self._count(ev, products, day, seq, out)
        self._carry_late(ev, seq, out)
        counted = any(a.user_m2 or a.owner_m2 for a in by_product.values()) or reason is None
        record = record_for(ev, [p.value for p in products], counted, by_product, reason)
        self._check_quotas(ev.api_owner, day, now, seq, out)
        out.writes.extend(self.usage.counted(record, seq, source))
        out.records.append(record)

    def _fail(self, ev: MeterEvent, seq: int, source: str | None, out: Outcome) -> None:
        """A FAILED event is recorded but does not use up its id (SPEC §5): the retry
        that succeeds, with the same id, must count."""
        if self.ids.failed_before(ev.api_owner, ev.event_id, seq):
            return
        record = record_for(
            ev, [p.value for p in products_for(ev.type, ev.provider)], False, {}, "failed"
        )
        self.ids.remember_failed(ev.api_owner, ev.event_id, seq)
        out.writes.extend(self.usage.failed(record, seq, source))
        out.records.append(record)

    # ---- operations waiting for their field ----------------------------------------

    def _release(self, now: datetime, seq: int, owns: Callable[[str], bool], out: Outcome) -> None:
        """Operations whose wait is over are counted now; the held record goes last, after
        the marker, so a crash in between cannot lose the operation."""
        for held in self.held.due(now, owns):
            self._meter(held.event, now, seq, held.source, out)
            out.writes.append(self.held.released(held))

    def _count(
        self, ev: MeterEvent, products: tuple[Product, ...], day: date, seq: int, out: Outcome
    ) -> tuple[dict[str, ProductArea], str | None]:
        by_product: dict[str, ProductArea] = {}
        geom = ev.geometry
        reason = None
        for product in products:
            if product is Product.AUDIT_FIELDS_BOUNDARY:
                by_product[product.value] = self._apply_live(ev, day, out)
                continue
            if product is Product.OPERATIONS_OPERATION:
                geom, reason = self.fields.clip(ev, geom)
            if geom is None:
                by_product[product.value] = ProductArea(0.0, 0.0)
                continue
            origin = _origin(ev)
            by_product[product.value] = self._add_bounded(ev, product, geom, day, seq, origin,
                                                          out)
            by_product[Product.UNIFIED_AREA.value] = self._add_bounded(
                ev, Product.UNIFIED_AREA, geom, day, seq, origin, out
            )
            out.writes.append(self.coverage.file(ev, product.value, geom))
        return by_product, reason

    def _add_bounded(
        self,
        ev: MeterEvent,
        product: Product,
        geom: BaseGeometry,
        day: date,
        seq: int,
        origin: bytes,
        out: Outcome,
    ) -> ProductArea:
        contract = self._ensure_contract(ev.api_owner, product, day, out)
        term = contract.term(day)
        ordinal = max(day, term.start).toordinal()
        areas = [
            self._add_to(contract, term, scope, geom, ordinal, (seq, origin), out)
            for scope in (user_scope(ev.leaf_user_id), OWNER_SCOPE)
        ]
        return ProductArea(*areas)

    def _add_to(
        self,
        contract: Contract,
        term: Term,
        scope: str,
        geom: BaseGeometry,
        ordinal: int,
        made_by: tuple[int, bytes],
        out: Outcome,
    ) -> float:
        """`made_by`: the input's seq and the encoded origin of the area it counts."""
        lkey = (contract.contract_id, term.index, scope)
        added = self.bounded.add(contract, lkey, geom, ordinal, *made_by)
        out.writes.extend(added.writes)
        self.snapshots.touch(lkey, (ordinal,))
        return added.area_m2

    def _apply_live(self, ev: MeterEvent, day: date, out: Outcome) -> ProductArea:
        contract = self._ensure_contract(ev.api_owner, Product.AUDIT_FIELDS_BOUNDARY, day, out)
        change = self.audit.apply(contract, ev, self.fields)
        out.writes.extend(change.writes)
        for scope, ordinal in change.days:
            term = contract.term(date.fromordinal(ordinal)).index
            self.snapshots.touch((contract.contract_id, term, scope), (ordinal,))
        return change.area

    def _ensure_contract(
        self, api_owner: str, product: Product, day: date, out: Outcome
    ) -> Contract:
        existing = self.contract_for(api_owner, product)
        if existing is not None and (day >= existing.start or self._start_is_fixed(existing)):
            return existing
        if existing is not None:
            contract = existing.backdated(day)
            self._put_contract(contract)
            out.writes.append(_contract_write(contract))
            return contract
        contract = new_contract(api_owner, product, day)
        self._put_contract(contract)
        out.writes.append(_contract_write(contract))
        return contract

    def _start_is_fixed(self, contract: Contract) -> bool:
        """SPEC §3: a start may move back only while none of the contract's days is final
        (nor a second term exists): after that its days are billed history."""
        cid = contract.contract_id
        return (
            self.snapshots.has_final_day(cid)
            or self.bounded.has_later_term(cid)
            or bool(self.seeds.seeded_terms(cid))
        )

    def _put_contract(self, contract: Contract) -> None:
        self.contracts[contract.contract_id] = contract
        self._by_owner[contract.api_owner][contract.product] = contract.contract_id

    def _carry_over(
        self, now: datetime, seq: int, owns: Callable[[str], bool], out: Outcome
    ) -> None:
        """Seed the FIELDS_BOUNDARY terms that are due (aggregates/carry.py) on the owner's
        clock: the tick's, or its latest event time if later."""
        for contract in list(self.contracts.values()):
            if contract.product is not Product.FIELDS_BOUNDARY or not owns(contract.api_owner):
                continue
            clock = max(now, self.usage.latest.get(contract.api_owner, now))
            due, noticed = self.seeds.due(contract, clock, now)
            out.writes.extend(noticed)
            for index in due:
                self._seed(contract, index, seq, out)

    def _seed(self, contract: Contract, index: int, seq: int, out: Outcome) -> None:
        seeded = self.seeds.seed(contract, index)
        start = term_start(contract, index)
        for user, history in self.fields.histories(contract.api_owner):
            version = history.in_force(start - _INSTANT)
            if version is not None and not version.deleted:
                made_by = seq, _carried(version, user)
                self._carry(contract, index, user, history.shape(version), made_by, out)
        out.writes.append(seeded)

    def _carry_late(self, ev: MeterEvent, seq: int, out: Outcome) -> None:
        """A boundary dated before a term that was already seeded, and in force at its
        start, is carried into it now. (A late delete cannot un-carry: see README.)"""
        contract = self.contract_for(ev.api_owner, Product.FIELDS_BOUNDARY)
        if contract is None or ev.field_id is None or not ev.type.startswith("fieldBoundary"):
            return
        history = self.fields.history(ev.api_owner, ev.leaf_user_id, ev.field_id)
        assert history is not None  # its version was remembered first
        for index in self.seeds.seeded_terms(contract.contract_id):
            start = term_start(contract, index)
            if ev.timestamp >= start:
                continue
            version = history.in_force(start - _INSTANT)
            if version is not None and version.event_id == ev.event_id and not version.deleted:
                made_by = seq, _carried(version, ev.leaf_user_id)
                self._carry(contract, index, ev.leaf_user_id, history.shape(version), made_by,
                            out)

    def _carry(
        self,
        contract: Contract,
        index: int,
        leaf_user_id: str,
        geom: BaseGeometry,
        made_by: tuple[int, bytes],
        out: Outcome,
    ) -> None:
        start = add_years(contract.start, index)
        unified = self._ensure_contract(contract.api_owner, Product.UNIFIED_AREA, start, out)
        for target in (contract, unified):
            target_term = target.term(start)
            ordinal = max(start, target_term.start).toordinal()
            for scope in (user_scope(leaf_user_id), OWNER_SCOPE):
                self._add_to(target, target_term, scope, geom, ordinal, made_by, out)

    # ---- quotas ------------------------------------------------------------------

    def set_quota(
        self, contract_id: str, quota_m2: float | None, now: datetime, seq: int
    ) -> Outcome:
        """A new limit is announced against at once: every threshold it is already past
        alerts once. Setting the same limit again changes and announces nothing."""
        self._begin()
        out = Outcome()
        current = self.contracts[contract_id]
        if current.quota_m2 == quota_m2:
            return out
        contract = current.with_quota(quota_m2)
        self._put_contract(contract)
        out.writes.append(_contract_write(contract))
        term = contract.term(now.date())
        used = self.billable_m2(contract_id, term.index)
        _announce(self.alerts.restart(contract, term, used, now, seq), out)
        return self._applied_by(seq, out)

    def _check_quotas(
        self, api_owner: str, day: date, now: datetime, seq: int, out: Outcome
    ) -> None:
        for cid in self._by_owner[api_owner].values():
            contract = self.contracts[cid]
            if contract.quota_m2 is None:
                continue
            term = contract.term(day)
            used = self.billable_m2(cid, term.index)
            _announce(self.alerts.check(contract, term, used, now, seq), out)

    # ---- snapshots ---------------------------------------------------------------

    def tick(
        self, now: datetime, seq: int, owns: Callable[[str], bool] = lambda _: True
    ) -> Outcome:
        """Emit snapshots for changed days and finalise days whose grace has passed.

        `owns` limits the tick to the API owners of the partition it arrived on, so the
        snapshot records it writes land in that owner's changelog partition. Owners whose
        stored writes already include this tick (a replay) are left as they are.
        """
        self._begin()
        out = Outcome()
        owns = partial(self._first_pass, owns, seq)
        self._release(now, seq, owns, out)
        self._carry_over(now, seq, owns, out)
        self.ids.forget_old(self.usage.latest, owns, lambda owner, eid: (owner, eid) in self.held)
        emission = self.snapshots.emit_due(self.by_day, now, seq, owns)
        out.writes.extend(emission.writes)
        out.snapshots.extend(emission.snapshots)
        return self._applied_by(seq, out)

    def _begin(self) -> None:
        """Every input starts here: the previous one's writes are stored by now, so the
        collaborators reading the table may forget what they held of them."""
        self.audit.begin()
        self.fields.begin()
        self.ids.begin()

    # ---- replays -----------------------------------------------------------------

    def _first_pass(self, owns: Callable[[str], bool], seq: int, api_owner: str) -> bool:
        """A tick read again leaves out the owners whose stored writes include it or a
        later message: on that later state it would close days its first pass had left
        open. Leaving a tick out is always safe, the next one catches up. Events are not
        judged so: a message Faust skipped is read again after later ones (the commit
        guard's rewind), so an event knows its own replay by its marker (`Seen`)."""
        return owns(api_owner) and self._applied.get(api_owner, -1) < seq

    def _applied_by(self, seq: int, out: Outcome) -> Outcome:
        for k, _ in out.writes:
            self._applied[split_key(k)[1]] = seq
        return out

    # ---- outputs -----------------------------------------------------------------

    def sent(self, api_owner: str, seq: int) -> Write:
        """Snapshots and alerts of `api_owner` up to input `seq` reached the broker."""
        self._sent[api_owner] = seq
        return key(Kind.SENT, api_owner), str(seq).encode()

    def unsent(self) -> Outcome:
        """Snapshots and alerts whose bookkeeping is stored but that may not have been
        sent: a rebuilt Meter sends these again, with the revision they were given. So
        are the usage records of messages from `resend_from` on: their marker is stored,
        so their replay changes nothing, but their record may not have reached the broker."""
        out = Outcome(records=self.usage.unsent())
        out.snapshots.extend(self.snapshots.unsent(self._sent_up_to))
        out.alerts.extend(self.alerts.unsent(self._sent_up_to))
        return out

    def _sent_up_to(self, api_owner: str) -> int:
        return self._sent.get(api_owner, -1)

    # ---- rebuilding --------------------------------------------------------------

    @classmethod
    def from_state(
        cls,
        items: Iterable[tuple[str, bytes]],
        grace: timedelta = timedelta(minutes=30),
        field_wait: timedelta | None = None,
        dedup_horizon: timedelta = timedelta(days=30),
        resend_from: int | None = None,
        read: ReadKey | None = None,
        scan: Scan | None = None,
    ) -> Meter:
        """Rebuild from the table after recovery; R-trees are bulk-loaded per scope.
        `resend_from` is the first offset the partition will read again (see unsent).
        A Meter reading the table skips the markers: its ids are read on demand, and its
        history is counted from the records' keys."""
        meter = cls(grace, field_wait, dedup_horizon, read, scan)
        resend = math.inf if resend_from is None else resend_from
        unread = meter.usage.unread()
        piece, covered = Kind.PIECE.value, Kind.COVERED.value
        for raw_key, value in items:
            head = raw_key[:1]
            if head == piece:
                meter.bounded.restore(raw_key, value)
                continue
            if head == covered:
                meter.coverage.restore(raw_key, value)
                continue
            if head in unread:
                continue
            kind, owner, parts = split_key(raw_key)
            if (  # the kinds a partition holds one or more of per event go first
                meter.usage.restore(kind, owner, parts, value, resend)
                or meter.fields.restore(kind, owner, parts, value)
                or meter.audit.restore(kind, owner, parts, value)
                or meter.alerts.restore(kind, parts, value)
                or meter.snapshots.restore(kind, parts, value)
                or meter.seeds.restore(kind, parts, value)
                or meter.held.restore(kind, value)
            ):
                continue
            if kind is Kind.CONTRACT:
                meter._put_contract(decode_contract(parts[0], value))
            elif kind is Kind.JOURNAL:
                meter._applied[owner] = applied(value)
            elif kind is Kind.SENT:
                meter._sent[owner] = int(value)
        meter.bounded.finish()
        meter.fields.finish()
        meter.audit.finish(meter.fields.last_day)
        meter.usage.finish(resend)
        meter.held.finish(meter.ids)
        meter._mark_all_dirty()
        return meter

    def _mark_all_dirty(self) -> None:
        """Days changed since the last tick are not stored; after a rebuild every day is
        compared with its last snapshot at the next tick, and only changed ones are sent."""
        for lkey, ledger in self.bounded.items():
            self.snapshots.touch(lkey, ledger.area_by_day())
        for (cid, scope), days in self.audit.days.items():
            contract = self.contracts[cid]
            for day in days:
                term = contract.term(date.fromordinal(day)).index
                self.snapshots.touch((cid, term, scope), (day,))


_INSTANT = timedelta(microseconds=1)
CARRIED = "carriedOver"  # the origin's type of ground a boundary live at a term's start counted


def _origin(ev: MeterEvent) -> bytes:
    return Origin(ev.event_id, ev.leaf_user_id, ev.type, ev.timestamp).encode()


def _carried(version: Version, leaf_user_id: str) -> bytes:
    """Ground carried into a term was counted by the boundary version live at its start."""
    return Origin(version.event_id, leaf_user_id, CARRIED, version.timestamp).encode()


def _announce(announcement: Announcement, out: Outcome) -> None:
    out.writes.extend(announcement.writes)
    out.alerts.extend(announcement.alerts)


def _contract_write(contract: Contract) -> Write:
    return key(Kind.CONTRACT, contract.api_owner, contract.contract_id), encode_contract(contract)
