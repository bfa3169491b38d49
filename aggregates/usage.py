"""Read-side usage figures over a `Meter`: series, summaries, rankings, checks and plans.

Everything here reads the same ledgers the daily snapshots are computed from (through
`Meter.by_day`, `Meter.total_m2` and `aggregates.snapshots.figures_for`), so the API and
`usage.consumption-daily` cannot disagree. Nothing here changes a Meter.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from shapely.geometry.base import BaseGeometry

from aggregates.contracts import OWNER_SCOPE, Contract, user_scope
from aggregates.periods import Term
from aggregates.products import Product
from aggregates.records import UsageRecord
from aggregates.snapshots import figures_for, is_closed

if TYPE_CHECKING:
    from aggregates.meter import Meter

__all__ = [
    "CheckResult",
    "ContractUsage",
    "DayConsumption",
    "DayUsage",
    "PeriodType",
    "PeriodUsage",
    "Plan",
    "ProductSummary",
    "Unit",
    "UserTotal",
    "by_period",
    "check",
    "consumption_on",
    "contract_usage",
    "convert",
    "daily_series",
    "find_contract",
    "leaf_users",
    "owner_contracts",
    "plan",
    "records",
    "summary",
    "to_m2",
    "top_users",
]

USER_PREFIX = user_scope("")
# Overlap worth a recommendation: user totals at least this much above the owner total.
OVERLAP_RATIO = 0.10


class Unit(StrEnum):
    """Area units of the API; m² is what is stored."""

    ACRES = "acres"
    HECTARES = "hectares"
    M2 = "m2"


M2_PER_UNIT: dict[Unit, float] = {Unit.ACRES: 4046.8564224, Unit.HECTARES: 10_000.0, Unit.M2: 1.0}


def convert(m2: float, unit: Unit) -> float:
    """m² to `unit`; the international acre is exactly 4046.8564224 m²."""
    return m2 / M2_PER_UNIT[unit]


def to_m2(value: float, unit: Unit) -> float:
    return value * M2_PER_UNIT[unit]


class PeriodType(StrEnum):
    """Buckets of /usage/by-period."""

    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


# ---- contracts ---------------------------------------------------------------------


def owner_contracts(meter: Meter, api_owner: str, product: Product | None = None) -> list[Contract]:
    """An owner's contracts in product order (the order of SPEC §2's table)."""
    found = [meter.contract_for(api_owner, p) for p in Product if product in (None, p)]
    return [c for c in found if c is not None]


def find_contract(meter: Meter, api_owner: str | None, contract_id: str) -> Contract | None:
    """`api_owner=None` is the admin; anyone else only finds their own contracts."""
    contract = meter.contracts.get(contract_id)
    if contract is None or api_owner not in (None, contract.api_owner):
        return None
    return contract


@dataclass(frozen=True, slots=True)
class ContractUsage:
    """A contract as the billing API shows it: current term, quota and use of it."""

    contract: Contract
    term: Term
    used_m2: float
    quota_m2: float | None

    @property
    def remaining_m2(self) -> float | None:
        return None if self.quota_m2 is None else max(0.0, self.quota_m2 - self.used_m2)

    @property
    def percent_used(self) -> float | None:
        if self.quota_m2 is None:
            return None
        if self.quota_m2 <= 0:
            return 100.0 if self.used_m2 > 0 else 0.0
        return 100.0 * self.used_m2 / self.quota_m2


def contract_usage(meter: Meter, contract: Contract, today: date) -> ContractUsage:
    """Use of the term holding `today`, against the quota `contract` carries."""
    term = contract.term(today)
    used = meter.total_m2(contract.contract_id, term.index, OWNER_SCOPE)
    return ContractUsage(contract, term, used, contract.quota_m2)


def leaf_users(meter: Meter, contract: Contract) -> list[str]:
    """Every Leaf user that ever held area under a contract, sorted."""
    scopes = meter.scopes(contract.contract_id)
    return sorted(s.removeprefix(USER_PREFIX) for s in scopes if s.startswith(USER_PREFIX))


# ---- daily series ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One day of one scope, exactly as its daily snapshot states it (zero when idle)."""

    day: date
    added_m2: float
    total_m2: float
    final: bool


def daily_series(
    meter: Meter, contract: Contract, scope: str, start: date, end: date, now: datetime
) -> list[DayUsage]:
    """Every day in [start, end], zero-filled; each term's days read that term's ledger."""
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    by_term: dict[int, list[int]] = defaultdict(list)
    for day in days:
        term = 0 if not contract.product.period_bounded else contract.term(day).index
        by_term[term].append(day.toordinal())
    figures = {}
    for term, ordinals in by_term.items():
        figures.update(figures_for(meter.by_day(contract.contract_id, term, scope), ordinals))
    return [
        DayUsage(d, figures[d.toordinal()].added_m2, figures[d.toordinal()].total_m2,
                 is_closed(d.toordinal(), now, meter.grace))
        for d in days
    ]


@dataclass(frozen=True, slots=True)
class DayConsumption:
    """One day of a contract: the owner's figures and every Leaf user's."""

    contract: Contract
    term: Term
    owner: DayUsage
    users: list[tuple[str, DayUsage]]

    @property
    def users_total_m2(self) -> float:
        return sum(u.total_m2 for _, u in self.users)

    @property
    def overlap_m2(self) -> float:
        """Area counted for several users but once for the owner (SPEC §2)."""
        return max(0.0, self.users_total_m2 - self.owner.total_m2)


def consumption_on(meter: Meter, contract: Contract, day: date, now: datetime) -> DayConsumption:
    def one(scope: str) -> DayUsage:
        return daily_series(meter, contract, scope, day, day, now)[0]

    users = [(u, one(user_scope(u))) for u in leaf_users(meter, contract)]
    return DayConsumption(contract, contract.term(day), one(OWNER_SCOPE), users)


# ---- summaries ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductSummary:
    """One product over a date range: area added, term total at the end, quota use."""

    contract: Contract
    usage: ContractUsage
    added_m2: float
    users_added_m2: float
    total_m2: float
    leaf_users: int

    @property
    def overlap_m2(self) -> float:
        return max(0.0, self.users_added_m2 - self.added_m2)


def summary(
    meter: Meter, api_owner: str, start: date, end: date, now: datetime
) -> list[ProductSummary]:
    """Per product: what the range added (owner and sum of users) and where the term stands."""
    out = []
    for contract in owner_contracts(meter, api_owner):
        users = leaf_users(meter, contract)
        owner_days = daily_series(meter, contract, OWNER_SCOPE, start, end, now)
        users_added = sum(
            d.added_m2
            for u in users
            for d in daily_series(meter, contract, user_scope(u), start, end, now)
        )
        out.append(
            ProductSummary(
                contract, contract_usage(meter, contract, end),
                sum(d.added_m2 for d in owner_days), users_added, owner_days[-1].total_m2,
                len(users),
            )
        )
    return out


# ---- records -----------------------------------------------------------------------


def records(
    meter: Meter,
    api_owner: str,
    *,
    event_type: str | None = None,
    leaf_user_id: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[UsageRecord]:
    """An owner's usage records, newest event time first, filtered."""
    def keep(r: UsageRecord) -> bool:
        day = r.timestamp.astimezone(UTC).date()
        return (
            event_type in (None, r.type)
            and leaf_user_id in (None, r.leaf_user_id)
            and (start is None or day >= start)
            and (end is None or day <= end)
        )

    found = [r for r in meter.records.get(api_owner, ()) if keep(r)]
    return sorted(found, key=lambda r: (r.timestamp, r.event_id), reverse=True)


# ---- by period ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    """Area added in one bucket, and the scope's term total at the bucket's end."""

    start: datetime
    added_m2: float
    total_m2: float


def by_period(
    meter: Meter,
    contract: Contract,
    scope: str,
    period_type: PeriodType,
    start: date,
    end: date,
    now: datetime,
) -> list[PeriodUsage]:
    """Days and months come from the ledgers (as snapshots do); hours from usage records.

    Ledgers attribute area per day only, so an hour shows what the events of that hour
    added when they were processed, on top of the previous day's total.
    """
    days = daily_series(meter, contract, scope, start, end, now)
    if period_type is PeriodType.DAY:
        return [PeriodUsage(_midnight(d.day), d.added_m2, d.total_m2) for d in days]
    if period_type is PeriodType.MONTH:
        return _months(days)
    return _hours(meter, contract, scope, days)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _months(days: list[DayUsage]) -> list[PeriodUsage]:
    months: dict[date, list[DayUsage]] = defaultdict(list)
    for d in days:
        months[d.day.replace(day=1)].append(d)
    return [
        PeriodUsage(_midnight(m), sum(d.added_m2 for d in ds), ds[-1].total_m2)
        for m, ds in months.items()
    ]


def _hours(
    meter: Meter, contract: Contract, scope: str, days: list[DayUsage]
) -> list[PeriodUsage]:
    added: dict[datetime, float] = defaultdict(float)
    product = contract.product.value
    for r in meter.records.get(contract.api_owner, ()):
        area = r.by_product.get(product)
        if area is None or (scope != OWNER_SCOPE and user_scope(r.leaf_user_id) != scope):
            continue
        hour = r.timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        added[hour] += area.owner_m2 if scope == OWNER_SCOPE else area.user_m2
    out = []
    for d in days:
        running = d.total_m2 - d.added_m2
        for h in range(24):
            at = _midnight(d.day) + timedelta(hours=h)
            running += added.get(at, 0.0)
            out.append(PeriodUsage(at, added.get(at, 0.0), running))
    return out


# ---- top users ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserTotal:
    """A Leaf user's unique area in a term and its share of the owner's unique area."""

    leaf_user_id: str
    total_m2: float
    share_percent: float


def top_users(meter: Meter, contract: Contract, day: date) -> list[UserTotal]:
    """Users by unique area in the term holding `day`, largest first, ties by id."""
    term = contract.term(day).index
    owner = meter.total_m2(contract.contract_id, term, OWNER_SCOPE)
    totals = [
        (u, meter.total_m2(contract.contract_id, term, user_scope(u)))
        for u in leaf_users(meter, contract)
    ]
    totals.sort(key=lambda t: (-t[1], t[0]))
    return [UserTotal(u, m2, 100.0 * m2 / owner if owner > 0 else 0.0) for u, m2 in totals]


# ---- pre-flight check --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What processing a geometry would add, and whether the contract's quota allows it."""

    product: Product
    contract: Contract | None
    user_m2: float
    owner_m2: float
    used_m2: float
    quota_m2: float | None

    @property
    def available_m2(self) -> float | None:
        return None if self.quota_m2 is None else max(0.0, self.quota_m2 - self.used_m2)

    @property
    def can_proceed(self) -> bool:
        available = self.available_m2
        return available is None or self.owner_m2 <= available

    def message(self, unit: Unit) -> str:
        required = _fmt(self.owner_m2, unit)
        if self.quota_m2 is None:
            return f"Would add {required} to {self.product.value}; the contract has no quota."
        if self.can_proceed:
            left = _fmt(self.available_m2 or 0.0, unit)
            return f"Would add {required}; {left} of the quota left."
        return (
            f"Would add {required} but only {_fmt(self.available_m2 or 0.0, unit)} of the "
            f"{_fmt(self.quota_m2, unit)} quota is left."
        )


def check(
    meter: Meter, api_owner: str, leaf_user_id: str, product: Product, geom: BaseGeometry,
    day: date,
) -> CheckResult:
    """Meter.preview plus the quota: required is the owner-scope area, which is billed."""
    area = meter.preview(api_owner, leaf_user_id, product, geom, day)
    contract = meter.contract_for(api_owner, product)
    if contract is None:
        return CheckResult(product, None, area.user_m2, area.owner_m2, 0.0, None)
    usage = contract_usage(meter, contract, day)
    return CheckResult(product, contract, area.user_m2, area.owner_m2, usage.used_m2,
                       usage.quota_m2)


def _fmt(m2: float, unit: Unit) -> str:
    return f"{convert(m2, unit):,.4f} {unit.value}"


# ---- plan --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """Term utilisation and its straight-line projection to the term's end."""

    usage: ContractUsage
    days_elapsed: int
    days_remaining: int
    users_total_m2: float
    recommendations: list[str]

    @property
    def daily_average_m2(self) -> float:
        return self.usage.used_m2 / self.days_elapsed

    @property
    def projected_m2(self) -> float:
        return self.usage.used_m2 + self.daily_average_m2 * self.days_remaining

    @property
    def will_exceed(self) -> bool:
        quota = self.usage.quota_m2
        return quota is not None and self.projected_m2 > quota

    @property
    def exceed_on(self) -> date | None:
        """The day the projection reaches the quota, if within the term."""
        return _exceed_day(self.usage, self.daily_average_m2, self.days_elapsed)

    @property
    def overlap_m2(self) -> float:
        return max(0.0, self.users_total_m2 - self.usage.used_m2)


def plan(meter: Meter, contract: Contract, today: date, unit: Unit) -> Plan:
    """Average per elapsed day (today included) carried forward to the term's last day."""
    usage = contract_usage(meter, contract, today)
    clamped = min(max(today, usage.term.start), usage.term.last_day)
    elapsed = (clamped - usage.term.start).days + 1
    remaining = (usage.term.last_day - clamped).days
    users = sum(
        meter.total_m2(contract.contract_id, usage.term.index, user_scope(u))
        for u in leaf_users(meter, contract)
    )
    draft = Plan(usage, elapsed, remaining, users, [])
    return Plan(usage, elapsed, remaining, users, recommendations(draft, unit))


def _exceed_day(usage: ContractUsage, per_day: float, elapsed: int) -> date | None:
    quota = usage.quota_m2
    if quota is None:
        return None
    if usage.used_m2 >= quota:
        return usage.term.start + timedelta(days=elapsed - 1)
    if per_day <= 0:
        return None
    days_to_quota = math.ceil((quota - usage.used_m2) / per_day)
    day = usage.term.start + timedelta(days=elapsed - 1 + days_to_quota)
    return day if day <= usage.term.last_day else None


def recommendations(p: Plan, unit: Unit) -> list[str]:
    """Plain-language advice; the overlap one explains why user totals exceed the bill."""
    out = [*_overlap_advice(p, unit)]
    quota = p.usage.quota_m2
    if quota is None:
        out.append("No quota is set: set one to be alerted at 50 %, 80 % and 100 % of it.")
    elif p.usage.used_m2 >= quota:
        out.append(f"The quota of {_fmt(quota, unit)} is used up; raise it to keep processing.")
    elif p.will_exceed:
        out.append(
            f"At {_fmt(p.daily_average_m2, unit)} a day the quota is reached on "
            f"{p.exceed_on}; raise it to at least {_fmt(p.projected_m2, unit)} for this term."
        )
    elif quota > 0 and p.projected_m2 < 0.5 * quota:
        out.append(
            f"The projection is {_fmt(p.projected_m2, unit)}, under half the quota: "
            "a smaller plan would do."
        )
    return out


def _overlap_advice(p: Plan, unit: Unit) -> Iterable[str]:
    used = p.usage.used_m2
    if p.overlap_m2 <= 0 or p.overlap_m2 < OVERLAP_RATIO * max(used, 1e-9):
        return
    yield (
        f"The same area is connected under several Leaf users: their totals add up to "
        f"{_fmt(p.users_total_m2, unit)} while the API owner's unique area is "
        f"{_fmt(used, unit)}. The {_fmt(p.overlap_m2, unit)} overlap "
        f"({100.0 * p.overlap_m2 / max(used, 1e-9):.0f} % of the owner total) is counted again "
        "in every Leaf user's scope; connect each field under one user to avoid paying for it "
        "more than once."
    )
