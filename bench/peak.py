"""The peak resident memory of a phase, not of the whole process.

`ru_maxrss` only ever grows, so after a build it hides what a takeover alone costs; a
thread sampling /proc/self/statm sees the phase's own peak (to within its period).
"""
from __future__ import annotations

import os
import threading
from types import TracebackType

_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


class PeakRss:
    """`with PeakRss() as peak:` ... then `peak.grown` is the highest resident memory seen
    above the start, in bytes."""

    def __init__(self, period_s: float = 0.01) -> None:
        self._period = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.start = 0
        self.peak = 0

    @property
    def grown(self) -> int:
        return self.peak - self.start

    def __enter__(self) -> PeakRss:
        self.start = self.peak = resident_bytes()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())

    def _sample(self) -> None:
        while not self._stop.wait(self._period):
            self.peak = max(self.peak, resident_bytes())
