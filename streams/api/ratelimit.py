"""Per-key sliding-window rate limits; past the limit the caller learns when to retry."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from streams.api.errors import ApiError

WINDOW_SECONDS = 60.0


class RateLimiter:
    """Counts requests per (key fingerprint, bucket) over the last minute, in memory.

    Owner keys are always served by the worker owning their partition, so their count is
    exact across workers; the admin key is counted per serving worker.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def hit(self, fingerprint: str, bucket: str, limit: int) -> None:
        """Record one request or raise 429 with Retry-After in whole seconds."""
        now = self._clock()
        hits = self._hits.setdefault((fingerprint, bucket), deque())
        while hits and hits[0] <= now - WINDOW_SECONDS:
            hits.popleft()
        if len(hits) >= limit:
            retry = max(1, math.ceil(hits[0] + WINDOW_SECONDS - now))
            raise ApiError(
                429, "rate_limited", f"more than {limit} requests per minute; retry in {retry}s",
                headers={"Retry-After": str(retry)},
            )
        hits.append(now)
