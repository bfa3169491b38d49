"""Integration tests run against a real Kafka broker started from the Maven jars."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kafka import Broker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of its own per test: input topic names are fixed by the SPEC."""
    b = Broker(tmp_path / "kafka").start()
    try:
        yield b
    finally:
        b.stop()
