"""Billing rules of SPEC §2–3 on the pure Meter, checked against independent unions."""

from __future__ import annotations

import gc
from datetime import UTC, date, datetime, timedelta

import pytest
import shapely
from shapely.geometry import box

from aggregates import geodesic_area_m2
from aggregates.contracts import OWNER_SCOPE, contract_id_for, user_scope
from aggregates.journal import JOURNAL_PREFIX, bracket, repairs
from aggregates.meter import Meter, Outcome
from aggregates.products import Product
from aggregates.records import MeterEvent
from tests.support.tables import scan_of

OWNER = "owner@example.com"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 20, tzinfo=UTC)


class Harness:
    """A Meter plus the key-value store its writes build, as the Faust table would; the
    Meter reads its pieces back from that store, as the worker's does."""

    def __init__(self, field_wait: timedelta = timedelta(0)) -> None:
        self.field_wait = field_wait
        self.store: dict[str, bytes] = {}
        self.meter = Meter(grace=timedelta(0), field_wait=field_wait, read=self.store.get,
                           scan=scan_of(self.store))
        self.n = 0
        self.seq = 0

    def next_seq(self) -> int:
        """The offset the next metering message would have."""
        self.seq += 1
        return self.seq

    def persist(self, out: Outcome) -> Outcome:
        for k, v in out.writes:
            if v is None:
                self.store.pop(k, None)
            else:
                self.store[k] = v
        return out

    def event(
        self, type_: str, user: str, geom: object = None, ts: datetime = T0, **kw: object
    ) -> Outcome:
        self.n += 1
        ev = MeterEvent(
            kw.pop("event_id", f"e{self.n}"),
            type_,
            ts,
            OWNER,
            user,  # type: ignore[arg-type]
            geometry=geom,
            **kw,  # type: ignore[arg-type]
        )
        return self.persist(self.meter.apply(ev, NOW, self.next_seq()))

    def tick(self) -> Outcome:
        """A clock tick after every wait: held operations are counted."""
        return self.persist(self.meter.tick(NOW, self.next_seq()))

    def total(self, product: Product, scope: str, day: date = T0.date()) -> float:  # noqa: B008
        cid = contract_id_for(OWNER, product)
        term = self.meter.contracts[cid].term(day).index
        return self.meter.total_m2(cid, term, scope)

    def rebuilt(self) -> Meter:
        """As the holder does: an open journal's message is undone first."""
        journals = [(k, v) for k, v in self.store.items() if k.startswith(JOURNAL_PREFIX)]
        self.persist(Outcome(writes=repairs(journals)))
        return Meter.from_state(self.store.items(), grace=timedelta(0),
                                field_wait=self.field_wait, read=self.store.get,
                                scan=scan_of(self.store))


def sq(x: float, y: float, size: float = 0.001) -> shapely.Polygon:
    return box(x, y, x + size, y + size)


def area(*geoms: shapely.Geometry) -> float:
    return geodesic_area_m2(shapely.union_all(list(geoms)))


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_user_scopes_count_overlap_separately_owner_scope_removes_it(h: Harness) -> None:
    a, b = sq(10, 50), sq(10.0005, 50)
    h.event("providerFileProcessingFinished", "u1", a)
    h.event("providerFileProcessingFinished", "u2", b)
    p = Product.OPERATIONS_FILE
    assert h.total(p, user_scope("u1")) == pytest.approx(area(a), rel=1e-9)
    assert h.total(p, user_scope("u2")) == pytest.approx(area(b), rel=1e-9)
    assert h.total(p, OWNER_SCOPE) == pytest.approx(area(a, b), rel=1e-9)
    assert h.total(Product.UNIFIED_AREA, OWNER_SCOPE) == pytest.approx(area(a, b), rel=1e-9)


def test_duplicate_ids_and_failed_events_add_nothing_but_are_recorded(h: Harness) -> None:
    a = sq(10, 50)
    first = h.event("providerFileProcessingFinished", "u1", a, event_id="x")
    dup = h.event("providerFileProcessingFinished", "u1", sq(11, 50), event_id="x")
    failed = h.event("providerFileProcessingFinished", "u1", sq(12, 50), status="FAILED")
    assert first.records and first.records[0].counted
    assert dup.records and dup.records[0].reason == "duplicate" and not dup.records[0].counted
    assert failed.records and failed.records[0].reason == "failed" and not failed.records[0].counted
    assert h.total(Product.OPERATIONS_FILE, OWNER_SCOPE) == pytest.approx(area(a), rel=1e-9)


def test_failed_event_creates_no_contract(h: Harness) -> None:
    h.event(
        "satelliteImageProcessingFinished", "u1", sq(10, 50), status="FAILED", provider="planet"
    )
    assert h.meter.contract_for(OWNER, Product.SATELLITE_PROCESS_PLANET) is None


def test_contract_ids_are_deterministic_and_terms_start_at_first_day(h: Harness) -> None:
    h.event("satelliteImageProcessingFinished", "u1", sq(10, 50), provider="sentinel")
    contract = h.meter.contract_for(OWNER, Product.SATELLITE_PROCESS_SENTINEL)
    assert contract is not None
    assert contract.contract_id == contract_id_for(OWNER, Product.SATELLITE_PROCESS_SENTINEL)
    assert contract.start == T0.date()
    assert h.rebuilt().contracts == h.meter.contracts


def test_operation_is_clipped_to_its_known_field(h: Harness) -> None:
    field = sq(10, 50)
    op = sq(10.0005, 50.0005)
    h.event("fieldBoundaryCreated", "u1", field, field_id="f1")
    h.event("operationProcessingFinished", "u1", op, field_id="f1")
    h.event("operationProcessingFinished", "u1", sq(20, 50), field_id="nope", event_id="unknown")
    h.event("operationProcessingFinished", "u1", sq(30, 50), field_id="f1", event_id="outside")
    released = {r.event_id: r for r in h.tick().records}
    expected = area(shapely.intersection(field, op), sq(20, 50))
    assert h.total(Product.OPERATIONS_OPERATION, OWNER_SCOPE) == pytest.approx(expected, rel=1e-6)
    assert released["unknown"].counted and released["unknown"].reason == "field-unknown"
    assert released["outside"].reason == "outside-field"


def test_audit_is_live_and_delete_keeps_area_still_covered(h: Harness) -> None:
    a, b = sq(10, 50), sq(10.0005, 50)
    h.event("fieldBoundaryCreated", "u1", a, field_id="f1")
    h.event("fieldBoundaryCreated", "u2", b, field_id="f2")
    h.event("fieldBoundaryDeleted", "u1", field_id="f1", ts=T0 + timedelta(days=1))
    audit = Product.AUDIT_FIELDS_BOUNDARY
    assert h.total(audit, OWNER_SCOPE) == pytest.approx(area(b), rel=1e-9)
    assert h.total(audit, user_scope("u1")) == pytest.approx(0.0, abs=1e-6)
    # FIELDS_BOUNDARY keeps the deleted boundary for the term.
    assert h.total(Product.FIELDS_BOUNDARY, OWNER_SCOPE) == pytest.approx(area(a, b), rel=1e-9)


def test_a_live_boundary_is_named_by_one_string_in_the_owner_union_and_field_book(
    h: Harness,
) -> None:
    """Memory per boundary (issue 9): the owner's live union and the field book both name
    a field by its user and id joined; they share the one string, created or updated."""
    h.event("fieldBoundaryCreated", "u1", sq(10, 50), field_id="f1")
    h.event("fieldBoundaryCreated", "u2", sq(11, 50), field_id="f1")
    h.event("fieldBoundaryUpdated", "u1", sq(10, 50, 0.002), field_id="f1",
            ts=T0 + timedelta(hours=1))
    union = h.meter.audit.live[(OWNER, OWNER_SCOPE)]
    names = h.meter.fields._names
    live = [name for name in union._fields if name is not None]
    assert sorted(live) == sorted(set(names)) and len(live) == 2
    assert all(any(name is filed for filed in names) for name in live)


def test_older_update_arriving_late_does_not_replace_newer_boundary(h: Harness) -> None:
    new, old = sq(10, 50), sq(10, 50, 0.002)
    h.event("fieldBoundaryCreated", "u1", new, field_id="f1", ts=T0 + timedelta(hours=2))
    late = h.event("fieldBoundaryUpdated", "u1", old, field_id="f1", ts=T0 + timedelta(hours=1))
    assert h.total(Product.AUDIT_FIELDS_BOUNDARY, OWNER_SCOPE) == pytest.approx(area(new), rel=1e-9)
    assert late.records and late.records[0].by_product["AUDIT_FIELDS_BOUNDARY"].owner_m2 == 0.0
    # The late update was still processed, so it counts for the period product.
    assert h.total(Product.FIELDS_BOUNDARY, OWNER_SCOPE) == pytest.approx(area(new, old), rel=1e-9)


def test_fields_boundary_carries_live_boundaries_into_next_term(h: Harness) -> None:
    kept, deleted, created_next = sq(10, 50), sq(11, 50), sq(12, 50)
    h.event("fieldBoundaryCreated", "u1", kept, field_id="kept")
    h.event("fieldBoundaryCreated", "u1", deleted, field_id="gone")
    h.event("fieldBoundaryDeleted", "u1", field_id="gone", ts=T0 + timedelta(days=100))
    next_term = T0 + timedelta(days=400)
    h.event("fieldBoundaryCreated", "u2", created_next, field_id="new", ts=next_term)
    h.tick()
    fb = Product.FIELDS_BOUNDARY
    assert h.total(fb, OWNER_SCOPE, T0.date()) == pytest.approx(area(kept, deleted), rel=1e-9)
    assert h.total(fb, OWNER_SCOPE, next_term.date()) == pytest.approx(
        area(kept, created_next), rel=1e-9
    )
    assert h.total(fb, user_scope("u1"), next_term.date()) == pytest.approx(area(kept), rel=1e-9)
    assert h.total(Product.UNIFIED_AREA, OWNER_SCOPE, next_term.date()) == pytest.approx(
        area(kept, created_next), rel=1e-9
    )
    rebuilt = h.rebuilt()
    cid = contract_id_for(OWNER, fb)
    assert rebuilt.total_m2(cid, 1, OWNER_SCOPE) == pytest.approx(
        area(kept, created_next), rel=1e-9
    )


def test_late_event_corrects_its_day_and_later_days_with_higher_revision(h: Harness) -> None:
    d0, d1, d2 = T0 - timedelta(days=1), T0, T0 + timedelta(days=1)
    a, b, z = sq(10, 50), sq(10.0005, 50), sq(20, 50)
    h.event("providerFileProcessingFinished", "u1", z, ts=d0)  # the term starts on d0
    h.event("providerFileProcessingFinished", "u1", b, ts=d2)
    first = h.persist(h.meter.tick(NOW, h.next_seq()))
    h.event("providerFileProcessingFinished", "u1", a, ts=d1)
    second = h.persist(h.meter.tick(NOW, h.next_seq()))
    owner = {
        (s.date, s.revision): s
        for s in second.snapshots
        if s.scope == OWNER_SCOPE and s.product == "OPERATIONS_FILE"
    }
    assert (d1.date(), 1) in owner and (d2.date(), 2) in owner
    assert owner[(d1.date(), 1)].total_area_m2 == pytest.approx(area(z, a), rel=1e-9)
    day2 = owner[(d2.date(), 2)]
    assert day2.total_area_m2 == pytest.approx(area(z, a, b), rel=1e-9)
    assert day2.area_added_m2 == pytest.approx(area(z, a, b) - area(z, a), rel=1e-9)
    assert all(s.final for s in first.snapshots + second.snapshots)


def test_snapshots_are_provisional_until_grace_passes() -> None:
    meter = Meter(grace=timedelta(hours=1))
    ev = MeterEvent("e1", "providerFileProcessingFinished", T0, OWNER, "u1", geometry=sq(10, 50))
    meter.apply(ev, T0, 1)
    provisional = meter.tick(T0 + timedelta(minutes=5), 2).snapshots
    assert provisional and not any(s.final for s in provisional)
    assert meter.tick(T0 + timedelta(hours=6), 3).snapshots == []
    final = meter.tick(T0 + timedelta(days=1, minutes=61), 4).snapshots
    assert {s.revision for s in final} == {2} and all(s.final for s in final)


def test_quota_alerts_fire_once_per_threshold(h: Harness) -> None:
    a = sq(10, 50)
    h.event("providerFileProcessingFinished", "u1", a)
    cid = contract_id_for(OWNER, Product.OPERATIONS_FILE)
    out = h.persist(h.meter.set_quota(cid, area(a) * 1.5, NOW, h.next_seq()))
    assert [x.threshold_percent for x in out.alerts] == [50]
    out = h.event("providerFileProcessingFinished", "u1", sq(10.001, 50))
    assert [x.threshold_percent for x in out.alerts] == [80, 100]
    out = h.event("providerFileProcessingFinished", "u1", sq(10.002, 50))
    assert out.alerts == []
    assert h.persist(h.meter.set_quota(cid, area(a) * 1.5, NOW, h.next_seq())).alerts == []
    assert h.rebuilt().set_quota(cid, area(a) * 1.5, NOW, h.next_seq()).alerts == []
    raised = h.persist(h.meter.set_quota(cid, area(a) * 4, NOW, h.next_seq()))
    assert [x.threshold_percent for x in raised.alerts] == [50]


def test_quotas_compare_the_billable_area_the_sum_of_user_totals(h: Harness) -> None:
    """SPEC §3: two users processing the same ground are billed twice; the owner scope
    (half of that here) is only the footprint."""
    a = sq(10, 50)
    h.event("providerFileProcessingFinished", "u1", a)
    h.event("providerFileProcessingFinished", "u2", a)
    for product in (Product.OPERATIONS_FILE, Product.UNIFIED_AREA):
        cid = contract_id_for(OWNER, product)
        assert h.meter.billable_m2(cid, 0) == pytest.approx(2 * area(a), rel=1e-9)
        out = h.persist(h.meter.set_quota(cid, area(a) * 2, NOW, h.next_seq()))
        assert [x.threshold_percent for x in out.alerts] == [50, 80, 100], product
    assert h.rebuilt().billable_m2(cid, 0) == pytest.approx(2 * area(a), rel=1e-9)


def test_audit_billable_area_is_the_sum_of_user_live_unions(h: Harness) -> None:
    a = sq(10, 50)
    h.event("fieldBoundaryCreated", "u1", a, field_id="f1")
    h.event("fieldBoundaryCreated", "u2", a, field_id="f2")
    cid = contract_id_for(OWNER, Product.AUDIT_FIELDS_BOUNDARY)
    assert h.meter.billable_m2(cid, 0) == pytest.approx(2 * area(a), rel=1e-9)
    h.event("fieldBoundaryDeleted", "u2", field_id="f2", ts=T0 + timedelta(hours=1))
    assert h.rebuilt().billable_m2(cid, 0) == pytest.approx(area(a), rel=1e-9)


def test_a_quota_of_zero_alerts_at_once(h: Harness) -> None:
    h.event("providerFileProcessingFinished", "u1", sq(10, 50))
    cid = contract_id_for(OWNER, Product.OPERATIONS_FILE)
    out = h.persist(h.meter.set_quota(cid, 0.0, NOW, h.next_seq()))
    assert [x.threshold_percent for x in out.alerts] == [50, 80, 100]


def test_rebuilt_meter_matches_and_keeps_deduplicating(h: Harness) -> None:
    geoms = [sq(10 + i * 0.0004, 50) for i in range(6)]
    for i, g in enumerate(geoms):
        h.event("fieldBoundaryCreated", f"u{i % 2}", g, field_id=f"f{i}", ts=T0 + timedelta(days=i))
    h.event("fieldBoundaryDeleted", "u0", field_id="f0", ts=T0 + timedelta(days=7))
    rebuilt = h.rebuilt()
    for cid, contract in h.meter.contracts.items():
        for scope in h.meter.scopes(cid):
            assert rebuilt.by_day(cid, 0, scope) == pytest.approx(h.meter.by_day(cid, 0, scope))
            assert rebuilt.total_m2(cid, 0, scope) == pytest.approx(
                h.meter.total_m2(cid, 0, scope), rel=1e-9
            ), contract.product
    again = rebuilt.apply(
        MeterEvent("e1", "fieldBoundaryCreated", T0, OWNER, "u0", geometry=geoms[0], field_id="f0"),
        NOW,
        h.next_seq(),
    )
    assert again.records and again.records[0].reason == "duplicate"


def test_replayed_audit_event_after_partial_write_keeps_its_delta(h: Harness) -> None:
    """A crash can lose the marker but keep the live entry; the replay must not lose area."""
    a = sq(10, 50)
    ev = MeterEvent("x", "fieldBoundaryCreated", T0, OWNER, "u1", geometry=a, field_id="f1")
    written = bracket(h.meter.apply(ev, NOW, h.next_seq()).writes, h.seq, h.store.get)
    h.persist(Outcome(writes=written[:-2]))  # the marker and the journal's close are lost
    rebuilt = h.rebuilt()
    replay = rebuilt.apply(
        MeterEvent("x", "fieldBoundaryCreated", T0, OWNER, "u1", geometry=a, field_id="f1"),
        NOW,
        h.seq,
    )
    assert replay.records
    assert replay.records[0].by_product["AUDIT_FIELDS_BOUNDARY"].owner_m2 == pytest.approx(area(a))
    cid = contract_id_for(OWNER, Product.AUDIT_FIELDS_BOUNDARY)
    assert sum(rebuilt.by_day(cid, 0, OWNER_SCOPE).values()) == pytest.approx(area(a), rel=1e-9)


def test_tick_emits_only_for_the_owners_of_its_partition() -> None:
    """Snapshot records must land in the owner's changelog partition, not the tick's."""
    meter = Meter(grace=timedelta(0))
    for seq, owner in enumerate(("a@x", "b@x")):
        ev = MeterEvent(
            f"{owner}-1", "providerFileProcessingFinished", T0, owner, "u1", geometry=sq(10, 50)
        )
        meter.apply(ev, NOW, seq)
    first = meter.tick(NOW, 10, owns=lambda owner: owner == "a@x")
    assert first.snapshots and {s.api_owner for s in first.snapshots} == {"a@x"}
    second = meter.tick(NOW, 11, owns=lambda owner: owner == "b@x")
    assert second.snapshots and {s.api_owner for s in second.snapshots} == {"b@x"}
    assert meter.tick(NOW, 12).snapshots == []


@pytest.mark.parametrize("stored", [True, False], ids=["in the table", "in memory"])
def test_a_field_knows_its_widest_shape_ever_whatever_it_is_now(stored: bool) -> None:
    """The worker meters a field's delete or redraw off its loop when the field was ever
    as wide as a scene (streams/metering.py): that is judged from the stored sizes."""
    h = Harness()
    if not stored:
        h.meter = Meter(grace=timedelta(0))
    wide = shapely.segmentize(sq(10, 40, 0.5), 0.001)
    for type_, geom in [("fieldBoundaryCreated", sq(10, 40)), ("fieldBoundaryUpdated", wide),
                        ("fieldBoundaryUpdated", sq(10, 40)), ("fieldBoundaryDeleted", None)]:
        h.event(type_, "u1", geom, field_id="f1", ts=T0 + timedelta(minutes=h.n))
    h.event("fieldBoundaryCreated", "u1", sq(11, 40), field_id="f2")
    fields = h.meter.fields
    assert fields.widest(OWNER, "u1", "f1") == len(shapely.to_wkb(wide)) > 16 * 256
    assert fields.widest(OWNER, "u1", "f2") == len(shapely.to_wkb(sq(11, 40)))
    assert fields.widest(OWNER, "u1", "nope") == fields.widest(OWNER, "u2", "f1") == 0


@pytest.mark.parametrize("rebuilt", [False, True], ids=["metered", "rebuilt"])
def test_a_dropped_meter_is_freed_without_the_cyclic_collector(rebuilt: bool) -> None:
    """The worker freezes its state out of the cyclic collector's sight between messages
    (streams/collector.py), so a reference cycle anywhere in a Meter would keep a Meter
    dropped at a rebalance in memory for good, or cost a full collection to free."""
    h = Harness(field_wait=timedelta(hours=1))
    h.event("fieldBoundaryCreated", "u1", sq(10, 50), field_id="f1")
    h.event("fieldBoundaryCreated", "u2", sq(10.0005, 50), field_id="f2")
    h.event("operationProcessingFinished", "u1", sq(10.0002, 50), field_id="f1")
    h.event("operationProcessingFinished", "u1", sq(11, 50), field_id="f9")  # held
    h.event("fieldBoundaryUpdated", "u1", sq(10.0001, 50), field_id="f1",
            ts=T0 + timedelta(days=1))
    h.event("fieldBoundaryDeleted", "u2", field_id="f2", ts=T0 + timedelta(days=2))
    h.event("providerFileProcessingFinished", "u2", sq(10.001, 50), ts=T0 - timedelta(days=1))
    h.event("satelliteImageProcessingFinished", "u1", box(9.9, 49.9, 10.1, 50.1),
            provider="sentinel")
    h.event("satelliteImageProcessingFinished", "u1", sq(12, 50), provider="planet",
            status="FAILED")
    h.persist(h.meter.set_quota(contract_id_for(OWNER, Product.OPERATIONS_FILE), 1e4, NOW,
                                h.next_seq()))
    h.tick()
    meter = h.rebuilt() if rebuilt else h.meter
    del h
    gc.collect()
    gc.disable()
    try:
        del meter
        assert gc.collect() == 0
    finally:
        gc.enable()
