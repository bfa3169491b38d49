"""How every `acreage` failure becomes one line on stderr.

Operators run the CLI from scripts and read its stderr in logs: a traceback there
hides the one fact that matters (which broker, which file, which line). Expected
failures get a specific sentence; anything else still gets one line naming the
exception's type, and ACREAGE_DEBUG=1 re-raises it for a developer.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import NoReturn

from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError

DEBUG_ENV = "ACREAGE_DEBUG"
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An expected failure whose message is already the sentence to show."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse prints usage plus the error and exits 2; this raises instead, so a
    missing argument is one line like every other failure (`--help` still works)."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see {self.prog} --help)", EXIT_USAGE)


def broker_error(servers: list[str], exc: BaseException) -> CliError:
    reason = str(exc) or type(exc).__name__
    return CliError(f"broker {','.join(servers)} did not answer: {reason}")


def one_line(text: str) -> str:
    return " ".join(text.split())


def describe(exc: BaseException) -> tuple[str, int]:
    """The line to print and the exit status for an exception that reached `main`."""
    if isinstance(exc, CliError):
        return str(exc), exc.status
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        name = "ACREAGE_" + "_".join(str(p) for p in first["loc"]).upper()
        return f"invalid setting {name}: {first['msg']}", EXIT_FAILURE
    if isinstance(exc, KafkaConnectionError | asyncio.TimeoutError):
        return f"broker did not answer: {exc or type(exc).__name__}", EXIT_FAILURE
    if isinstance(exc, KafkaError):
        return f"broker error: {type(exc).__name__}: {exc}", EXIT_FAILURE
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}", EXIT_FAILURE
    return (
        f"unexpected {type(exc).__name__}: {exc} ({DEBUG_ENV}=1 shows the traceback)",
        EXIT_FAILURE,
    )
