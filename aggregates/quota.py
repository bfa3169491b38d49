"""Quota threshold crossings: which alerts a change in usage owes (SPEC §5 usage.alerts)."""

from __future__ import annotations

THRESHOLDS_PERCENT: tuple[int, ...] = (50, 80, 100)


def highest_crossed(used_m2: float, quota_m2: float | None) -> int:
    """The highest threshold at or below current use; 0 when none or no quota is set.

    A quota of 0 allows nothing, so every threshold is crossed the moment it is set.
    """
    if quota_m2 is None:
        return 0
    if quota_m2 <= 0:
        return THRESHOLDS_PERCENT[-1]
    crossed = [t for t in THRESHOLDS_PERCENT if used_m2 >= quota_m2 * t / 100]
    return max(crossed, default=0)


def new_crossings(previous: int, used_m2: float, quota_m2: float | None) -> list[int]:
    """Thresholds crossed since the last alert, so each is announced once per term."""
    top = highest_crossed(used_m2, quota_m2)
    return [t for t in THRESHOLDS_PERCENT if previous < t <= top]
