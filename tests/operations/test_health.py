"""/ready's rule: assigned, metering state built from a recovered table, caught up."""

from __future__ import annotations

from typing import Any

from streams.health import lag_summary, not_ready

M = "app-metering"


def check(**overrides: Any) -> list[tuple[str, str | None, int | None]]:
    args: dict[str, Any] = {
        "assigned": {(M, 0), (M, 1), ("events.a", 0)},
        "rebalancing": False,
        "lag": {(M, 0): 3, (M, 1): 0, ("events.a", 0): 0, ("events.a", 1): 900},
        "state_ready": {0: True, 1: True},
        "metering_topic": M,
        "max_lag": 10,
    } | overrides
    return [(p.reason, p.topic, p.partition) for p in not_ready(**args)]


def test_ready_when_assigned_recovered_and_caught_up() -> None:
    """Lag on a partition another worker owns is not this worker's business."""
    assert check() == []


def test_not_ready_without_assignment_or_during_rebalance() -> None:
    assert check(assigned=set()) == [("no partitions assigned", None, None)]
    assert check(rebalancing=True) == [("rebalancing", None, None)]


def test_not_ready_until_each_owned_metering_partition_is_built() -> None:
    """A partition missing from readiness() has not been built yet."""
    assert check(state_ready={0: True}) == [
        ("metering state not built from a recovered table", M, 1)
    ]
    assert check(state_ready={0: False, 1: True})[0][1:] == (M, 0)


def test_not_ready_while_behind() -> None:
    lag = {(M, 0): 11, (M, 1): 0, ("events.a", 0): 500}
    assert check(lag=lag) == [("lag 11 > 10", M, 0), ("lag 500 > 10", "events.a", 0)]


def test_unknown_lag_is_not_caught_up() -> None:
    assert check(lag=None) == [
        ("lag unknown: offsets could not be read from the broker", None, None)
    ]


def test_lag_summary_splits_metering_from_inputs() -> None:
    assert lag_summary({(M, 0): 3, (M, 1): 4, ("events.a", 0): 10}, M) == {
        "metering": 7,
        "inputs": 10,
    }
    assert lag_summary(None, M) == {"metering": 0, "inputs": 0}
