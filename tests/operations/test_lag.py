"""Lag is computed from the broker's offsets: end minus the group's committed offset."""

from __future__ import annotations

from streams.lag import Offsets, lag_by_partition

A0, A1, M0 = ("events.a", 0), ("events.a", 1), ("app-metering", 0)


def test_lag_is_end_minus_committed() -> None:
    assert lag_by_partition({A0: 0}, {A0: 120}, {A0: 100}) == {A0: 20}


def test_a_partition_never_committed_lags_from_its_beginning() -> None:
    """Nobody owns it or its owner never committed: everything retained is lag
    (auto_offset_reset=earliest), not 0 as the per-message gauge showed."""
    assert lag_by_partition({A0: 30, A1: 0}, {A0: 50, A1: 0}, {A0: None, A1: None}) == {
        A0: 20,
        A1: 0,
    }


def test_every_partition_with_an_end_offset_is_reported() -> None:
    lag = Offsets(beginning={}, end={A0: 5, A1: 7, M0: 3}, committed={A0: 5, M0: 1}).lag()
    assert lag == {A0: 0, A1: 7, M0: 2}


def test_lag_is_never_negative() -> None:
    """A committed offset read just after the end offset may be ahead of it."""
    assert lag_by_partition({}, {A0: 10}, {A0: 12}) == {A0: 0}
