"""The in-memory Meter of a worker, rebuilt from the state table after every rebalance."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from aggregates.meter import Meter

log = logging.getLogger(__name__)


class MeterHolder:
    """R-trees are not in the table, only pieces are; a rebalance can change which owners
    this worker has, so the index is rebuilt lazily from what the table holds now."""

    def __init__(self, table: Any, grace: timedelta) -> None:
        self._table = table
        self._grace = grace
        self._meter: Meter | None = None
        self.last_rebuild_seconds = 0.0

    def invalidate(self) -> None:
        self._meter = None

    def get(self) -> Meter:
        if self._meter is None:
            self._meter = self._rebuild()
        return self._meter

    def _rebuild(self) -> Meter:
        started = time.perf_counter()
        items = ((_text(k), v) for k, v in self._table.items())
        meter = Meter.from_state(items, self._grace)
        self.last_rebuild_seconds = time.perf_counter() - started
        log.info(
            "meter rebuilt: %d owners, %d scopes in %.2fs",
            len(meter.owners()),
            len(meter.ledgers),
            self.last_rebuild_seconds,
        )
        return meter


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
