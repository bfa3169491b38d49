"""What a Meter rebuilt from its stored records owes the world after a crash (issue 7).

Each test persists what the Meter wrote, as the Faust table would, then rebuilds a Meter
from that store alone, the way a restarted or newly assigned worker does.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from aggregates.contracts import OWNER_SCOPE, contract_id_for, user_scope
from aggregates.meter import Meter
from aggregates.products import Product
from aggregates.records import MeterEvent
from aggregates.state import SEP, Kind
from tests.aggregates.test_meter import NOW, OWNER, T0, Harness, area, sq

FILE = "providerFileProcessingFinished"


def file_event(event_id: str, user: str, geom: object, owner: str = OWNER) -> MeterEvent:
    return MeterEvent(event_id, FILE, T0, owner, user, geometry=geom)  # type: ignore[arg-type]


def test_our_own_replay_sends_no_second_record_but_an_upstream_duplicate_does() -> None:
    meter = Meter(grace=timedelta(0))
    first = meter.apply(file_event("e1", "u1", sq(10, 50)), NOW, seq=5, source="t/0/9")
    assert first.records and first.records[0].counted
    assert meter.apply(file_event("e1", "u1", sq(10, 50)), NOW, seq=5).records == []
    reforwarded = meter.apply(file_event("e1", "u1", sq(10, 50)), NOW, seq=6, source="t/0/9")
    assert reforwarded.records == []
    upstream = meter.apply(file_event("e1", "u1", sq(10, 50)), NOW, seq=7, source="t/0/10")
    assert upstream.records and upstream.records[0].reason == "duplicate"


def test_the_same_event_id_under_two_owners_counts_for_both() -> None:
    meter = Meter(grace=timedelta(0))
    meter.apply(file_event("e1", "u1", sq(10, 50), owner="a@x"), NOW, seq=1)
    second = meter.apply(file_event("e1", "u1", sq(10, 50), owner="b@x"), NOW, seq=2)
    assert second.records and second.records[0].counted
    cid = contract_id_for("b@x", Product.OPERATIONS_FILE)
    assert meter.total_m2(cid, 0, OWNER_SCOPE) == pytest.approx(area(sq(10, 50)), rel=1e-9)


@pytest.mark.parametrize("sep", ["\x1f", "%", "%1F", "\x1f%25"])
def test_separator_characters_in_ids_keep_users_and_fields_apart(h: Harness, sep: str) -> None:
    """`u1\\x1f7` once moved area to `u1` after a rebuild."""
    h.event("fieldBoundaryCreated", "u1", sq(10, 50), field_id="f")
    h.event("fieldBoundaryCreated", f"u1{sep}7", sq(11, 50), field_id=f"f{sep}x")
    rebuilt = h.rebuilt()
    for product in (Product.FIELDS_BOUNDARY, Product.AUDIT_FIELDS_BOUNDARY):
        cid = contract_id_for(OWNER, product)
        for user, geom in (("u1", sq(10, 50)), (f"u1{sep}7", sq(11, 50))):
            got = rebuilt.total_m2(cid, 0, user_scope(user))
            assert got == pytest.approx(area(geom), rel=1e-9), (product, user)


def test_days_changed_before_a_crash_are_snapshotted_after_the_rebuild(h: Harness) -> None:
    """kill -9 between an event and the next tick must not lose that day's snapshot."""
    h.event(FILE, "u1", sq(10, 50))
    snapshots = h.rebuilt().tick(NOW, h.next_seq()).snapshots
    owner_day = [s for s in snapshots if s.scope == OWNER_SCOPE and s.product == "OPERATIONS_FILE"]
    assert [s.total_area_m2 for s in owner_day] == [pytest.approx(area(sq(10, 50)), rel=1e-9)]


def test_a_rebuild_does_not_resend_what_was_sent_and_unchanged(h: Harness) -> None:
    h.event(FILE, "u1", sq(10, 50))
    tick_seq = h.next_seq()
    h.persist(h.meter.tick(NOW, tick_seq))
    h.persist(Outcome_of(h.meter.sent(OWNER, tick_seq)))
    rebuilt = h.rebuilt()
    assert rebuilt.unsent().snapshots == []
    assert rebuilt.tick(NOW, h.next_seq()).snapshots == []


def test_snapshots_stored_but_maybe_not_sent_come_back_unchanged(h: Harness) -> None:
    """Bookkeeping is written before the send; a crash in between must not lose the
    snapshot, and it must come back with the same revision and the same content."""
    h.event(FILE, "u1", sq(10, 50))
    sent_before = h.persist(h.meter.tick(NOW, h.next_seq())).snapshots
    rebuilt = h.rebuilt()
    assert sorted(rebuilt.unsent().snapshots, key=str) == sorted(sent_before, key=str)
    assert rebuilt.tick(NOW, h.next_seq()).snapshots == []


def test_alerts_stored_but_maybe_not_sent_come_back_unchanged(h: Harness) -> None:
    h.event(FILE, "u1", sq(10, 50))
    cid = contract_id_for(OWNER, Product.OPERATIONS_FILE)
    alerts = h.persist(h.meter.set_quota(cid, area(sq(10, 50)), NOW, h.next_seq())).alerts
    assert [a.threshold_percent for a in alerts] == [50, 80, 100]
    assert h.rebuilt().unsent().alerts == alerts
    h.persist(Outcome_of(h.meter.sent(OWNER, h.seq)))
    assert h.rebuilt().unsent().alerts == []


def Outcome_of(write: tuple[str, bytes | None]) -> object:  # noqa: N802 - reads as a type
    from aggregates.meter import Outcome

    return Outcome(writes=[write])


@pytest.fixture
def h() -> Harness:
    return Harness()


def _boundaries(h: Harness) -> None:
    """Overlapping boundaries of two users, one updated and one deleted."""
    for n in range(6):
        h.event("fieldBoundaryCreated", f"u{n % 2}", sq(10 + n * 0.0007, 50), field_id=f"f{n}")
    h.event("fieldBoundaryUpdated", "u0", sq(10.0001, 50.0002), field_id="f0",
            ts=T0 + timedelta(hours=1))
    h.event("fieldBoundaryDeleted", "u1", None, field_id="f3", ts=T0 + timedelta(hours=2))


def _live_totals(meter: Meter) -> dict[tuple[str, str], float]:
    return {k: union.total_m2 for k, union in meter.audit.live.items()}


def test_a_takeover_unions_no_live_boundaries(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each union of all live boundaries cost seconds per thousand fields at takeover."""
    _boundaries(h)

    def refused(*_: object, **__: object) -> None:
        raise AssertionError("a rebuild unioned every live boundary")

    monkeypatch.setattr("aggregates.live.shapely.union_all", refused)
    assert _live_totals(h.rebuilt()) == _live_totals(h.meter)


def test_live_state_stored_before_its_totals_rebuilds_from_its_boundaries(h: Harness) -> None:
    _boundaries(h)
    for stored in [k for k in h.store if k.startswith(Kind.LIVE_TOTAL.value + SEP)]:
        del h.store[stored]
    rebuilt = _live_totals(h.rebuilt())
    assert rebuilt.keys() == _live_totals(h.meter).keys()
    for k, total in _live_totals(h.meter).items():
        assert rebuilt[k] == pytest.approx(total, rel=1e-6)


def test_live_records_written_with_their_deltas_still_rebuild(h: Harness) -> None:
    _boundaries(h)
    for stored in [k for k in h.store if k.startswith(Kind.LIVE.value + SEP)]:
        record = json.loads(h.store[stored])
        h.store[stored] = json.dumps({**record, "deltas": [1.0, 2.0]}).encode()
    assert _live_totals(h.rebuilt()) == _live_totals(h.meter)
