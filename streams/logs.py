"""Structured (logfmt) and quiet worker logs: one key=value line per record."""

from __future__ import annotations

import json
import logging
from typing import Any

_LEVELS = {
    "crit": "CRITICAL",
    "error": "ERROR",
    "warn": "WARNING",
    "info": "INFO",
    "debug": "DEBUG",
}


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


def logging_config(level: str) -> dict[str, Any]:
    """dictConfig for the worker; `level` takes Faust's names (warn, info, ...)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"logfmt": {"()": LogfmtFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "logfmt"}},
        "root": {"handlers": ["stderr"], "level": _LEVELS.get(level.lower(), level.upper())},
    }
