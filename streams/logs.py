"""Structured (logfmt) and quiet worker logs: one key=value line per record.

Quiet also under a broker outage: aiokafka logs every failed connect, metadata refresh
and fetch, tens of thousands of identical lines a minute per worker. `RateLimitFilter`
keeps a few of each kind and counts the rest.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_LEVELS = {
    "crit": "CRITICAL",
    "error": "ERROR",
    "warn": "WARNING",
    "info": "INFO",
    "debug": "DEBUG",
}
SUMMARY = "suppressed %d similar records in %.0fs: %s"
_NUMBERS = re.compile(r"\d+")


class LogfmtFormatter(logging.Formatter):
    """Quotes the message as JSON so a log shipper can split fields without guessing."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"ts={self.formatTime(record)} level={record.levelname.lower()} "
            f"logger={record.name} msg={json.dumps(record.getMessage(), ensure_ascii=False)}"
        )
        if record.exc_info:
            line += f" exc={json.dumps(self.formatException(record.exc_info))}"
        return line


@dataclass
class _Window:
    started: float
    passed: int = 0
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    """At most `burst` records per (logger, level, message template) every `window`
    seconds; the rest are counted and reported in one summary record per window.

    Records are grouped by their template (`record.msg`), not the formatted text, so
    "Unable connect to node 1" and "... node 2" count as one kind; numbers in the
    template are ignored too, for the libraries that format before logging ("producer
    buffer full size 715"). The summary of a window is logged with the next record of
    any kind after the window ends.
    """

    def __init__(
        self,
        burst: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._swept = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg is SUMMARY:
            return True
        now = self._clock()
        if now - self._swept >= 1.0:
            self._sweep(now)
        key = (record.name, record.levelno, _NUMBERS.sub("#", str(record.msg)))
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window:
            if window is not None:
                self._summarise(key, window, now)
            window = self._windows[key] = _Window(started=now)
        if window.passed < self.burst:
            window.passed += 1
            return True
        window.suppressed += 1
        return False

    def _sweep(self, now: float) -> None:
        """Reports and forgets ended windows, so a burst that stopped is still counted
        and the table holds only the kinds of the last window."""
        self._swept = now
        for key, window in list(self._windows.items()):
            if now - window.started >= self.window:
                del self._windows[key]
                self._summarise(key, window, now)

    def _summarise(self, key: tuple[str, int, str], window: _Window, now: float) -> None:
        if window.suppressed:
            name, level, template = key
            logging.getLogger(name).log(
                level, SUMMARY, window.suppressed, now - window.started, template
            )


# Loggers that report only how loaded the worker is, not faults: Faust's producer buffer
# (a warning each time more than 100 table writes wait to be sent: Faust's own
# backpressure, and one event writes tens of records) and mode's timers (a warning when
# the 1 s commit took longer than 1 s because it waited for those writes). On a busy
# replay both warned every second though nothing was wrong; lag shows the same load.
LOAD_LOGGERS = ("faust.transport.producer", "mode.timers")


def logging_config(level: str, burst: int = 5, window: float = 60.0) -> dict[str, Any]:
    """dictConfig for the worker; `level` takes Faust's names (warn, info, ...). The
    LOAD_LOGGERS show at info level and below."""
    root = _LEVELS.get(level.lower(), level.upper())
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"logfmt": {"()": LogfmtFormatter}},
        "filters": {"ratelimit": {"()": RateLimitFilter, "burst": burst, "window": window}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "logfmt",
                "filters": ["ratelimit"],
            }
        },
        "loggers": {name: {"level": root if root in ("INFO", "DEBUG") else "ERROR"}
                    for name in LOAD_LOGGERS},
        "root": {"handlers": ["stderr"], "level": root},
    }
