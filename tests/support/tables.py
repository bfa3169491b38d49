"""A dict standing in for the worker's table, read as the Meter reads RocksDB."""
from __future__ import annotations

from collections.abc import Iterator

from aggregates.state import Scan


def scan_of(store: dict[str, bytes]) -> Scan:
    """Keys in [lo, hi), last first, as the holder's RocksDB scan yields them."""

    def scan(lo: str, hi: str) -> Iterator[str]:
        yield from sorted((k for k in store if lo <= k < hi), reverse=True)

    return scan
