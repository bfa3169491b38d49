"""Export rows from a real Meter: scope days with their revisions, and the term report."""
from __future__ import annotations

from datetime import timedelta

import pytest

from aggregates.contracts import OWNER_SCOPE, contract_id_for, user_scope
from aggregates.exports import TermTally, record_days, scope_days, term_report
from aggregates.products import Product
from aggregates.usage import daily_series
from tests.aggregates.test_meter import NOW, T0, Harness, area, sq

FILE = "providerFileProcessingFinished"


@pytest.fixture
def h() -> Harness:
    """u1 and u2 overlap on one square on day 0 and 1; u2 adds another on day 2; a
    duplicate and a satellite scene (another product) follow."""
    h = Harness()
    h.event(FILE, "u1", sq(10, 50), ts=T0)
    h.event(FILE, "u2", sq(10, 50), ts=T0 + timedelta(days=1, hours=3))
    h.event(FILE, "u2", sq(10.01, 50), ts=T0 + timedelta(days=2))
    h.event(FILE, "u2", sq(10.01, 50), ts=T0 + timedelta(days=2), event_id="e3")
    h.event("satelliteImageProcessingFinished", "u3", sq(11, 50), provider="planet",
            ts=T0 + timedelta(days=2))
    h.tick()
    return h


def test_scope_days_are_the_daily_series_with_each_days_revision(h: Harness) -> None:
    contract = h.meter.contracts[contract_id_for("owner@example.com", Product.OPERATIONS_FILE)]
    start, end = T0.date() - timedelta(days=1), T0.date() + timedelta(days=3)
    for user, scope in ((None, OWNER_SCOPE), ("u2", user_scope("u2"))):
        rows = list(scope_days(h.meter, contract, user, start, end, NOW))
        assert [r.day for r in rows] == daily_series(h.meter, contract, scope, start, end, NOW)
        assert {r.leaf_user_id for r in rows} == {user}
    owner = list(scope_days(h.meter, contract, None, start, end, NOW))
    # the day before the contract never had a snapshot; each active day had at least one
    assert owner[0].revision is None
    assert all(r.revision is not None and r.revision >= 1 for r in owner[1:4])


def test_a_new_snapshot_of_a_day_raises_its_revision(h: Harness) -> None:
    contract = h.meter.contracts[contract_id_for("owner@example.com", Product.OPERATIONS_FILE)]
    first = T0.date()
    before = next(scope_days(h.meter, contract, None, first, first, NOW)).revision
    h.event(FILE, "u1", sq(10.02, 50), ts=T0)
    h.tick()
    after = next(scope_days(h.meter, contract, None, first, first, NOW)).revision
    assert before is not None and after == before + 1


def test_term_report_lines_users_areas_shares_and_activity(h: Harness) -> None:
    contract = h.meter.contracts[contract_id_for("owner@example.com", Product.OPERATIONS_FILE)]
    term = contract.term(T0.date())
    start, end = record_days(term)
    records = h.meter.records.select("owner@example.com", start=start, end=end)
    report = term_report(h.meter, contract, term, TermTally(Product.OPERATIONS_FILE.value)
                         .add_all(records))
    owner, *users = report.lines
    a, b = area(sq(10, 50)), area(sq(10.01, 50))
    assert owner.leaf_user_id is None
    assert owner.unique_m2 == pytest.approx(a + b, rel=1e-9)
    assert owner.share_percent == pytest.approx(100.0)
    # the duplicate measured nothing; the satellite scene is another product's
    assert owner.activity.events == 3
    assert owner.activity.first == T0 and owner.activity.last == T0 + timedelta(days=2)
    assert [u.leaf_user_id for u in users] == ["u2", "u1"]  # largest unique area first
    u2, u1 = users
    assert u2.unique_m2 == pytest.approx(a + b, rel=1e-9)
    assert u2.activity.events == 2
    assert u2.activity.first == T0 + timedelta(days=1, hours=3)
    assert u1.share_percent == pytest.approx(100.0 * a / (a + b), rel=1e-9)
    # shares exceed 100 % by the overlap
    assert u1.share_percent + u2.share_percent == pytest.approx(100.0 * (2 * a + b) / (a + b))


def test_term_report_for_one_user_is_that_users_line(h: Harness) -> None:
    contract = h.meter.contracts[contract_id_for("owner@example.com", Product.OPERATIONS_FILE)]
    term = contract.term(T0.date())
    tally = TermTally(Product.OPERATIONS_FILE.value).add_all(
        h.meter.records.select("owner@example.com", leaf_user_id="u1"))
    report = term_report(h.meter, contract, term, tally, leaf_user_id="u1")
    [line] = report.lines
    assert line.leaf_user_id == "u1" and line.activity.events == 1
    assert line.unique_m2 == pytest.approx(area(sq(10, 50)), rel=1e-9)


def test_a_later_terms_report_has_no_activity_of_an_earlier_one(h: Harness) -> None:
    contract = h.meter.contracts[contract_id_for("owner@example.com", Product.OPERATIONS_FILE)]
    term = contract.term(T0.date() + timedelta(days=400))
    start, end = record_days(term)
    assert start == term.start
    tally = TermTally(Product.OPERATIONS_FILE.value).add_all(
        h.meter.records.select("owner@example.com", start=start, end=end))
    [owner] = term_report(h.meter, contract, term, tally).lines
    assert owner.unique_m2 == 0.0 and owner.activity.events == 0
    assert owner.activity.first is None
