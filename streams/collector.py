"""Python's cyclic garbage collector, kept from holding the worker's loop.

A full pass of the collector walks every object it tracks, and the loop waits: with
1,000 owners metered by one worker (300,000 tracked objects, ~200 an owner: ledgers,
R-tree handles, contracts) passes took 47-179 ms, growing with the owners, one every
few seconds under load (`make bench-ticks`). What is alive between two messages is
mostly the worker's state and its libraries, long-lived by nature, so the metering agent
moves it out of the collector's sight once a second (`gc.freeze`, a list splice: no
walk); the passes then walk only what was made since. A frozen object is still freed
when its last reference goes; only a cycle of frozen objects is not. So a Meter holds no
reference cycle (`tests/aggregates/test_meter.py` checks it): one a rebalance or a
failure lets go is freed by its references (in a thread: streams/holder.py), with no
unfreeze and full collection, which held the loop 926 ms when a joining worker took
1,500 of 3,000 owners.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


class Freezer:
    """Freezes what is alive at most once every `every_s`, between two messages (ticks
    alone would leave a burst unfrozen: they wait behind its events). What a freeze
    catches half-way through its life and later leaves as a cycle is never collected:
    52 objects after 90 freezes with 3,000 owners (`make bench-ticks OWNERS=3000`);
    nothing reclaims them later, as no full collection runs."""

    def __init__(self, every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last = -every_s

    def between_messages(self) -> None:
        now = self._clock()
        if now - self._last >= self._every_s:
            gc.collect(1)  # the young garbage, or the freeze would keep it for good
            gc.freeze()
            self._last = now
