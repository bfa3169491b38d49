"""The whole billing scenario through decode + Meter (no Kafka) against the oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregates.contracts import contract_id_for
from aggregates.meter import Meter
from aggregates.products import Product
from schemas.codec import dumps
from schemas.events import TOPIC_TYPES
from streams.decode import Limits, Rejection, decode_input, to_domain
from streams.replay import TOPIC_OF_TYPE
from tests.support.scenario import Scenario, build

NOW = datetime(2026, 3, 20, tzinfo=UTC)
LIMITS = Limits(10_000, max_event_age=timedelta(days=400), max_clock_skew=timedelta(hours=1))


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build("owner@example.com")


def test_meter_totals_equal_union_all_oracle(scenario: Scenario) -> None:
    meter = Meter()
    for seq, ev in enumerate(scenario.events):
        topic = TOPIC_OF_TYPE[ev["type"]]
        message = decode_input(dumps(ev), topic, TOPIC_TYPES[topic], LIMITS, NOW)
        assert not isinstance(message, Rejection), message
        meter.apply(to_domain(message), NOW, seq)
    meter.tick(NOW + meter.field_wait, len(scenario.events))  # operations wait for their field
    oracle = scenario.oracle()
    for (product, scope), expected in sorted(oracle.items()):
        cid = contract_id_for(scenario.owner, Product(product))
        got = meter.total_m2(cid, 0, scope)
        assert got == pytest.approx(expected, rel=1e-6), (product, scope)


def test_bad_records_are_rejected_with_reasons(scenario: Scenario) -> None:
    reasons = []
    for topic, raw in scenario.bad_records:
        result = decode_input(raw, topic, TOPIC_TYPES[topic], LIMITS, NOW)
        assert isinstance(result, Rejection), raw
        reasons.append(result.reason)
    assert "bad_json" in reasons and "geometry_out_of_range" in reasons
