"""Sentences for people: the pre-flight check's message and the plan's recommendations.
The core computes figures in m²; how they are said, and in which unit, is the API's."""

from __future__ import annotations

from collections.abc import Iterable

from aggregates.usage import (
    OVERLAP_RATIO,
    PROJECTION_WINDOW_DAYS,
    CheckResult,
    Confidence,
    FieldClip,
    Plan,
)
from schemas.units import Unit, convert


def fmt(m2: float, unit: Unit) -> str:
    return f"{convert(m2, unit):,.4f} {unit.value}"


def check_message(check: CheckResult, unit: Unit) -> str:
    """What a person reads beside a pre-flight check's figures."""
    parts = []
    if check.field_clip is FieldClip.CLIPPED:
        parts.append("Clipped to the field's boundary.")
    elif check.field_clip is FieldClip.OUTSIDE_FIELD:
        parts.append("The operation lies outside its field: it would count nothing.")
    elif check.field_clip is FieldClip.FIELD_UNKNOWN:
        parts.append("The field is not known yet: the operation would wait for it and "
                     "count unclipped if it does not arrive; previewed unclipped.")
    for v in check.verdicts:
        would = f"Would add {fmt(v.user_m2, unit)} to {v.product.value}"
        if v.quota_m2 is None:
            parts.append(f"{would}; the contract has no quota.")
        elif v.can_proceed:
            parts.append(f"{would}; {fmt(v.available_m2 or 0.0, unit)} of the quota left.")
        else:
            parts.append(
                f"{would} but only {fmt(v.available_m2 or 0.0, unit)} of the "
                f"{fmt(v.quota_m2, unit)} quota is left."
            )
    if check.blocked_by:
        names = " and ".join(p.value for p in check.blocked_by)
        parts.append(f"Blocked by the {names} quota.")
    return " ".join(parts)


def recommendations(p: Plan, unit: Unit) -> list[str]:
    """Plain-language advice; the overlap one explains why the bill exceeds the footprint."""
    out = [*_overlap_advice(p, unit)]
    quota = p.usage.quota_m2
    if quota is None:
        out.append("No quota is set: set one to be alerted at 50 %, 80 % and 100 % of it.")
    elif p.usage.used_m2 >= quota:
        out.append(f"The quota of {fmt(quota, unit)} is used up; raise it to keep processing.")
    elif p.will_exceed:
        out.append(
            f"At {fmt(p.daily_average_m2, unit)} a day the quota is reached on "
            f"{p.exceed_on}; raise it to at least {fmt(p.projected_m2, unit)} for this term."
        )
    elif quota > 0 and p.projected_high_m2 > quota:
        out.append(
            f"Bursts like the last 30 days' could reach {fmt(p.projected_high_m2, unit)}, "
            "over the quota; watch the alerts."
        )
    elif quota > 0 and p.projected_high_m2 < 0.5 * quota:
        out.append(
            f"The projection is {fmt(p.projected_m2, unit)}, under half the quota: "
            "a smaller plan would do."
        )
    if p.confidence is Confidence.LOW:
        out.append(
            f"The projection rests on {p.projection.active_days} active day(s) in the last "
            f"{PROJECTION_WINDOW_DAYS}: treat it as rough (range "
            f"{fmt(p.projected_low_m2, unit)} to {fmt(p.projected_high_m2, unit)})."
        )
    return out


def _overlap_advice(p: Plan, unit: Unit) -> Iterable[str]:
    footprint = p.usage.footprint_m2
    if p.overlap_m2 <= 0 or p.overlap_m2 < OVERLAP_RATIO * max(footprint, 1e-9):
        return
    yield (
        f"The same area is connected under several Leaf users: their totals add up to "
        f"{fmt(p.users_total_m2, unit)} (the billable area) while the API owner's unique "
        f"area is {fmt(footprint, unit)}. The {fmt(p.overlap_m2, unit)} overlap "
        f"({100.0 * p.overlap_m2 / max(footprint, 1e-9):.0f} % of the owner total) is billed "
        "again in every Leaf user's scope; connect each field under one user to avoid paying "
        "for it more than once."
    )
