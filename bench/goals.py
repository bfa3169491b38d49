"""What every benchmark prints beside its figures: the goal's verdict and the load.

The machine is shared, so a figure means little without the load it was measured under;
one wording for every goal line lets `make bench` be read as one report.
"""
from __future__ import annotations

import os


def verdict(met: bool) -> str:
    return "meets" if met else "MISSES"


def report_load(when: str) -> None:
    """Other processes share this machine; the load says how far to trust the rates."""
    one, five, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    print(f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min) on {cores} cores")
