"""Explain my bill: the event that first counted a point, and the events deduplicated
against it, read back from the table as the worker stores it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from shapely.geometry import Point, box

from aggregates.area import geodesic_area_m2
from aggregates.codec import decode_piece, encode_piece, piece_origin
from aggregates.contracts import OWNER_SCOPE, contract_id_for, user_scope
from aggregates.explain import Question, counted_ground, explain
from aggregates.meter import CARRIED, Meter
from aggregates.origin import Origin, decode_origin
from aggregates.periods import add_years
from aggregates.products import Product
from aggregates.union import UniqueAreaLedger
from aggregates.usage import billable_series
from tests.aggregates.test_meter import NOW, OWNER, T0, Harness, sq

FILE = "providerFileProcessingFinished"
FIELD = sq(10, 50, 0.01)
INSIDE = (10.005, 50.005)


def ask(meter: Meter, product: Product = Product.OPERATIONS_FILE, scope: str = OWNER_SCOPE,
        point: tuple[float, float] = INSIDE, term: int = 0, days: int = 60) -> Question:
    contract = meter.contracts[contract_id_for(OWNER, product)]
    start = add_years(contract.start, term)
    return Question(contract, term, scope, Point(point), start, start + timedelta(days=days))


def send(h: Harness, user: str, event_id: str, days: float, geom: object = FIELD) -> None:
    h.event(FILE, user, geom, ts=T0 + timedelta(days=days), event_id=event_id)


def test_a_point_sent_by_a_then_b_and_c_was_counted_by_a_and_deduplicated_for_b_and_c() -> None:
    h = Harness()
    send(h, "u1", "A", 0)
    send(h, "u2", "B", 1)
    send(h, "u1", "C", 2)
    found = explain(h.meter, ask(h.meter))
    assert [c.origin for c in found.counted] == [Origin("A", "u1", FILE, T0)]
    assert found.counted[0].day == T0.date()
    assert [(d.event_id, d.leaf_user_id) for d in found.deduplicated] == [("C", "u1"), ("B", "u2")]
    assert found.more is False


def test_a_users_scope_counts_only_that_users_events() -> None:
    h = Harness()
    send(h, "u1", "A", 0)
    send(h, "u2", "B", 1)
    send(h, "u1", "C", 2)
    found = explain(h.meter, ask(h.meter, scope=user_scope("u2")))
    assert [c.origin.event_id for c in found.counted if c.origin] == ["B"]
    assert found.deduplicated == []
    unified = explain(h.meter, ask(h.meter, Product.UNIFIED_AREA, user_scope("u1")))
    assert [c.origin.event_id for c in unified.counted if c.origin] == ["A"]
    assert [d.event_id for d in unified.deduplicated] == ["C"]


def test_a_late_event_of_an_earlier_day_becomes_the_origin() -> None:
    h = Harness()
    send(h, "u1", "A", 3)
    send(h, "u2", "B", 1)
    found = explain(h.meter, ask(h.meter))
    assert [c.origin.event_id for c in found.counted if c.origin] == ["B"]
    assert [d.event_id for d in found.deduplicated] == ["A"]


def test_the_origin_holds_on_both_sides_of_a_piece_split_by_a_later_difference() -> None:
    h = Harness()
    send(h, "u1", "A", 5)
    send(h, "u2", "B", 1, box(10.004, 49.0, 10.006, 51.0))  # an earlier strip cuts A in two
    for point in ((10.002, 50.005), (10.008, 50.005)):
        found = explain(h.meter, ask(h.meter, point=point))
        assert [c.origin.event_id for c in found.counted if c.origin] == ["A"]
        assert found.deduplicated == []
    strip = explain(h.meter, ask(h.meter, point=INSIDE))
    assert [c.origin.event_id for c in strip.counted if c.origin] == ["B"]
    assert [d.event_id for d in strip.deduplicated] == ["A"]


def test_origins_and_filed_geometries_survive_a_rebuild() -> None:
    h = Harness()
    send(h, "u1", "A", 0)
    send(h, "u2", "B", 1, box(10.004, 49.0, 10.006, 51.0))
    rebuilt = h.rebuilt()
    found = explain(rebuilt, ask(rebuilt))
    assert [c.origin.event_id for c in found.counted if c.origin] == ["A"]
    assert [d.event_id for d in found.deduplicated] == ["B"]


def test_a_meter_rebuilt_without_a_table_explains_the_same() -> None:
    h = Harness()
    for n, user in enumerate(("u1", "u2")):
        send(h, user, f"E{n}", n)
    table_answer = explain(h.meter, ask(h.meter))
    kept = Meter.from_state(h.store.items(), grace=timedelta(0))
    kept_answer = explain(kept, ask(kept))
    assert [c.origin for c in kept_answer.counted] == [c.origin for c in table_answer.counted]
    assert kept_answer.deduplicated == table_answer.deduplicated
    assert [d.event_id for d in kept_answer.deduplicated] == ["E1"]


def test_a_page_of_deduplicated_events_says_whether_more_follow() -> None:
    h = Harness()
    for n in range(5):
        send(h, "u1", f"E{n}", n)
    first = explain(h.meter, ask(h.meter), skip=0, limit=2)
    rest = explain(h.meter, ask(h.meter), skip=2, limit=2)
    last = explain(h.meter, ask(h.meter), skip=4, limit=2)
    assert [d.event_id for d in first.deduplicated + rest.deduplicated] == ["E4", "E3", "E2", "E1"]
    assert first.more and not rest.more and last.deduplicated == [] and not last.more


def test_an_area_names_each_piece_inside_it_and_how_much_of_it_lies_inside() -> None:
    h = Harness()
    send(h, "u1", "A", 0)
    send(h, "u2", "B", 1, sq(11, 50, 0.01))
    send(h, "u2", "C", 2, sq(10, 50, 0.005))  # inside A's field: counted nothing
    both = box(10.005, 50.0, 11.005, 50.01)  # the east half of A's, the west half of B's
    found = explain(h.meter, replace(ask(h.meter), where=both))
    inside = {c.origin.event_id: c.inside_m2 for c in found.counted if c.origin}
    assert inside == pytest.approx({"A": geodesic_area_m2(box(10.005, 50.0, 10.01, 50.01)),
                                    "B": geodesic_area_m2(box(11.0, 50.0, 11.005, 50.01))})
    assert [d.event_id for d in found.deduplicated] == ["C"]


def test_an_area_meeting_too_many_pieces_is_refused() -> None:
    h = Harness()
    send(h, "u1", "A", 0)
    ledger = h.meter.bounded
    lkey = (contract_id_for(OWNER, Product.OPERATIONS_FILE), 0, OWNER_SCOPE)
    assert len(ledger.held_in(lkey, FIELD, 1)) == 1
    send(h, "u1", "B", 0, sq(10.01, 50, 0.01))
    with pytest.raises(ValueError, match="over 1 counted pieces"):
        ledger.held_in(lkey, box(10, 50, 10.02, 50.01), 1)


def test_days_outside_the_range_asked_are_not_searched() -> None:
    h = Harness()
    send(h, "u1", "A", 0)
    send(h, "u1", "B", 10)
    found = explain(h.meter, ask(h.meter, days=5))
    assert found.deduplicated == []


def test_a_point_outside_every_piece_has_no_origin_and_no_event() -> None:
    h = Harness()
    send(h, "u1", "A", 0)
    found = explain(h.meter, ask(h.meter, point=(10.02, 50.005)))
    assert found.counted == [] and found.deduplicated == []


def test_ground_carried_into_a_term_names_the_boundary_version_live_at_its_start() -> None:
    h = Harness()
    h.event("fieldBoundaryCreated", "u1", FIELD, field_id="f", ts=T0, event_id="F")
    h.persist(h.meter.tick(NOW + timedelta(days=400), h.next_seq()))
    found = explain(h.meter, ask(h.meter, Product.FIELDS_BOUNDARY, term=1))
    assert [c.origin for c in found.counted] == [Origin("F", "u1", CARRIED, T0)]
    first_term = explain(h.meter, ask(h.meter, Product.FIELDS_BOUNDARY))
    assert [c.origin for c in first_term.counted] == [Origin("F", "u1", "fieldBoundaryCreated",
                                                             T0)]


def test_audit_has_no_pieces_to_explain() -> None:
    h = Harness()
    h.event("fieldBoundaryCreated", "u1", FIELD, field_id="f", ts=T0, event_id="F")
    with pytest.raises(ValueError, match="live union"):
        explain(h.meter, ask(h.meter, Product.AUDIT_FIELDS_BOUNDARY))


def test_an_origin_splits_back_into_the_ids_it_was_made_of() -> None:
    odd = Origin("id\x1fwith%sep", "user\x1f", FILE, T0)
    assert decode_origin(odd.encode()) == odd
    assert decode_origin(b"") is None


def test_a_piece_keeps_its_origin_beside_its_header_and_geometry() -> None:
    origin = Origin("A", "u1", FILE, T0).encode()
    stored = encode_piece(738_000, FIELD, 12.5, FIELD.bounds, origin)
    header, geom = decode_piece(stored)
    assert (header.day, header.area_m2, header.box) == (738_000, 12.5, FIELD.bounds)
    assert geom.equals(FIELD)
    assert piece_origin(stored) == origin
    ledger = UniqueAreaLedger.from_pieces([(1, stored)], read={1: stored}.get)
    assert ledger.total_m2 == 12.5
    assert [h.origin for h in ledger.held_in(Point(INSIDE), 10)] == [origin]


def test_a_piece_stored_before_origins_reads_as_unknown() -> None:
    old = encode_piece(738_000, FIELD, 12.5, FIELD.bounds)
    legacy = old[:4] + b"\x03" + old[5:45] + old[47:]
    header, geom = decode_piece(legacy)
    assert geom.equals(FIELD) and piece_origin(legacy) == b""
    assert date.fromordinal(header.day) == date.fromordinal(738_000)


def test_the_counted_ground_reads_a_page_at_a_time_and_only_the_days_asked() -> None:
    h = Harness()
    send(h, "u1", "A", 0)
    send(h, "u1", "B", 3, sq(11, 50, 0.01))
    question = ask(h.meter)
    first = counted_ground(h.meter, question, limit=1)
    second = counted_ground(h.meter, question, after=first[-1].piece_id, limit=1)
    assert [c.origin.event_id for c in first + second if c.origin] == ["A", "B"]
    assert counted_ground(h.meter, question, after=second[-1].piece_id) == []
    assert second[0].geometry.equals(sq(11, 50, 0.01))
    early = replace(question, end=T0.date() + timedelta(days=1))
    assert [c.origin.event_id for c in counted_ground(h.meter, early) if c.origin] == ["A"]


def test_the_billable_series_sums_the_users_and_ends_at_the_billable_area() -> None:
    h = Harness()
    send(h, "u1", "A", 0)
    send(h, "u2", "B", 2)
    contract = h.meter.contracts[contract_id_for(OWNER, Product.OPERATIONS_FILE)]
    days = billable_series(h.meter, contract, T0.date(), T0.date() + timedelta(days=3), NOW)
    one = geodesic_area_m2(FIELD)
    assert [round(d.added_m2 / one, 9) for d in days] == [1, 0, 1, 0]
    assert [round(d.total_m2 / one, 9) for d in days] == [1, 1, 2, 2]
    assert days[-1].total_m2 == pytest.approx(h.meter.billable_m2(contract.contract_id, 0))
