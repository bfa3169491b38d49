"""The log rate limiter: a broker outage must not write tens of thousands of lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from streams.logs import RateLimitFilter, logging_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def captured(clock: Clock) -> Iterator[Capture]:
    handler = Capture()
    handler.addFilter(RateLimitFilter(burst=3, window=10.0, clock=clock))
    for name in ("aiokafka", "faust"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
    yield handler
    for name in ("aiokafka", "faust"):
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).propagate = True


def test_identical_records_pass_up_to_the_burst_then_one_summary(
    captured: Capture, clock: Clock
) -> None:
    log = logging.getLogger("aiokafka")
    for i in range(10_000):  # the same template with different arguments is one kind
        log.error("Unable connect to node with id %s: %s", i % 3, "refused")
    assert captured.lines == [
        "aiokafka Unable connect to node with id 0: refused",
        "aiokafka Unable connect to node with id 1: refused",
        "aiokafka Unable connect to node with id 2: refused",
    ]
    clock.now += 10
    log.error("Unable connect to node with id %s: %s", 1, "refused")
    assert captured.lines[3:] == [
        "aiokafka suppressed 9997 similar records in 10s: Unable connect to node with id %s: %s",
        "aiokafka Unable connect to node with id 1: refused",
    ]


def test_messages_formatted_before_logging_differ_only_in_numbers(captured: Capture) -> None:
    for size in range(1000, 0, -7):
        logging.getLogger("faust").warning(f"producer buffer full size {size}")
    assert captured.lines == [
        "faust producer buffer full size 1000",
        "faust producer buffer full size 993",
        "faust producer buffer full size 986",
    ]


def test_kinds_are_counted_apart(captured: Capture) -> None:
    for _ in range(5):
        logging.getLogger("aiokafka").error("fetch failed")
        logging.getLogger("aiokafka").error("metadata failed")
        logging.getLogger("faust").error("fetch failed")
        logging.getLogger("aiokafka").warning("fetch failed")
    assert len(captured.lines) == 4 * 3


def test_a_burst_that_stopped_is_still_summarised(captured: Capture, clock: Clock) -> None:
    """The summary comes with the next record of any kind once the window ended."""
    for _ in range(50):
        logging.getLogger("aiokafka").error("fetch failed")
    clock.now += 11
    logging.getLogger("faust").warning("something else")
    assert captured.lines[3:] == [
        "aiokafka suppressed 47 similar records in 11s: fetch failed",
        "faust something else",
    ]


def test_the_worker_logging_config_installs_the_filter() -> None:
    config = logging_config("warn", burst=2, window=30.0)
    assert config["handlers"]["stderr"]["filters"] == ["ratelimit"]
    assert config["filters"]["ratelimit"] == {"()": RateLimitFilter, "burst": 2, "window": 30.0}


def test_load_reports_show_at_info_level_only() -> None:
    """Demoted, not lost: Faust's backpressure waits and late commits are not faults."""
    for name in ("faust.transport.producer", "mode.timers"):
        assert logging_config("info")["loggers"][name]["level"] == "INFO"
        assert logging_config("warn")["loggers"][name]["level"] == "ERROR"
