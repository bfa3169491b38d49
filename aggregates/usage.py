"""Read-side usage figures over a `Meter`: series, summaries, rankings, checks and plans.

Everything here reads the same ledgers the daily snapshots are computed from (through
`Meter.by_day`, `Meter.total_m2` and `aggregates.snapshots.figures_for`), so the API and
`usage.consumption-daily` cannot disagree. Nothing here changes a Meter.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from shapely.geometry.base import BaseGeometry

from aggregates.area import geodesic_area_m2
from aggregates.audit import field_key
from aggregates.contracts import OWNER_SCOPE, Contract, user_scope
from aggregates.geometry import clip_to
from aggregates.live import LiveUnion
from aggregates.pages import Window
from aggregates.periods import Calendar, Term, period_last_day, period_start
from aggregates.products import Product
from aggregates.records import ProductArea
from aggregates.snapshots import CHANGE_EPSILON_M2, figures_for, is_closed

if TYPE_CHECKING:
    from aggregates.meter import Meter

__all__ = [
    "CheckResult",
    "Confidence",
    "ContractUsage",
    "DayConsumption",
    "DayUsage",
    "FieldClip",
    "PeriodProjection",
    "PeriodType",
    "PeriodUsage",
    "Plan",
    "ProductSummary",
    "Projection",
    "QuotaVerdict",
    "Span",
    "UserTotal",
    "billable_by_day",
    "billable_series",
    "by_period",
    "check",
    "consumption_on",
    "contract_usage",
    "daily_series",
    "find_contract",
    "leaf_users",
    "owner_contracts",
    "period_projection",
    "plan",
    "preview_live",
    "product_summary",
    "projection",
    "span_bounds",
    "summary",
    "top_users",
    "user_totals",
    "users_added",
]

USER_PREFIX = user_scope("")
# Overlap worth a recommendation: user totals at least this much above the owner total.
OVERLAP_RATIO = 0.10


class PeriodType(StrEnum):
    """Buckets of /usage/by-period: an hour, or a calendar period (`Calendar`)."""

    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class Span(StrEnum):
    """The period of a summary: a calendar period, or the contract term."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    TERM = "term"


def span_bounds(span: Span, day: date, contract: Contract | None) -> tuple[date, date]:
    """First and last day of the span holding `day`; without a contract a term is the day."""
    if span is Span.TERM:
        if contract is None:
            return day, day
        term = contract.term(day)
        return term.start, term.last_day
    period = Calendar(span.value)
    return period_start(day, period), period_last_day(day, period)


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
    """A contract as the billing API shows it: current term, quota and use of it.

    `used_m2` is the billable area (SPEC §3: the sum of the term's Leaf-user totals,
    overlaps between users included), which is what the quota, the percentages and the
    alerts compare; `footprint_m2` is the API owner's unique area (overlaps removed).
    """

    contract: Contract
    term: Term
    used_m2: float
    quota_m2: float | None
    footprint_m2: float

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

    @property
    def overlap_m2(self) -> float:
        """Area billed under several Leaf users but counted once in the footprint."""
        return max(0.0, self.used_m2 - self.footprint_m2)


def contract_usage(meter: Meter, contract: Contract, today: date) -> ContractUsage:
    """Use of the term holding `today` (billable area), against the quota `contract` carries."""
    term = contract.term(today)
    billable = meter.billable_m2(contract.contract_id, term.index)
    footprint = meter.total_m2(contract.contract_id, term.index, OWNER_SCOPE)
    return ContractUsage(contract, term, billable, contract.quota_m2, footprint)


def leaf_users(meter: Meter, contract: Contract) -> list[str]:
    """Every Leaf user that ever held area under a contract, sorted."""
    scopes = meter.scopes(contract.contract_id)
    return sorted(s.removeprefix(USER_PREFIX) for s in scopes if s.startswith(USER_PREFIX))


def user_totals(meter: Meter, contract: Contract, term: int) -> list[tuple[str, float]]:
    """Each Leaf user's total in a term; they sum to the term's billable area."""
    return [
        (u, meter.total_m2(contract.contract_id, term, user_scope(u)))
        for u in leaf_users(meter, contract)
    ]


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


def billable_series(
    meter: Meter, contract: Contract, start: date, end: date, now: datetime
) -> list[DayUsage]:
    """Every day in [start, end] of the billable area, the sum of the Leaf users' series:
    what a quota is compared with (SPEC §3)."""
    owner = daily_series(meter, contract, OWNER_SCOPE, start, end, now)
    added = [0.0] * len(owner)
    total = [0.0] * len(owner)
    for user in leaf_users(meter, contract):
        for i, d in enumerate(daily_series(meter, contract, user_scope(user), start, end, now)):
            added[i] += d.added_m2
            total[i] += d.total_m2
    return [DayUsage(o.day, a, t, o.final) for o, a, t in zip(owner, added, total, strict=True)]


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


def summary(meter: Meter, api_owner: str, start: date, end: date) -> list[ProductSummary]:
    """Per product: what the range added (owner and sum of users) and where the term stands.

    The sums read the ledgers' day totals directly: a zero-filled daily series per user
    and product took 0.3-1.5 s over a term for 50 users and 3 products (bench.api_reads),
    all of it on the event loop.
    """
    return [
        product_summary(meter, c, start, end, users_added(meter, c, start, end))
        for c in owner_contracts(meter, api_owner)
    ]


def users_added(meter: Meter, contract: Contract, start: date, end: date) -> dict[str, float]:
    """What each Leaf user's union of the contract grew by in [start, end]."""
    return {
        u: sum(_added_by_day(meter, contract, user_scope(u), start, end))
        for u in leaf_users(meter, contract)
    }


def product_summary(
    meter: Meter, contract: Contract, start: date, end: date, by_user: dict[str, float]
) -> ProductSummary:
    """One product's summary, given what `users_added` found for the same range."""
    last = end.toordinal()
    term = contract.term(end).index if contract.product.period_bounded else 0
    total = figures_for(meter.by_day(contract.contract_id, term, OWNER_SCOPE), [last])
    return ProductSummary(
        contract, contract_usage(meter, contract, end),
        sum(_added_by_day(meter, contract, OWNER_SCOPE, start, end)), sum(by_user.values()),
        total[last].total_m2, len(by_user),
    )


def _added_by_day(
    meter: Meter, contract: Contract, scope: str, start: date, end: date
) -> Iterator[float]:
    """What each day of [start, end] with area added in `scope`, in day order, each day
    read from its term's ledger as `daily_series` reads it (AUDIT has one for all terms)."""
    first = start
    while first <= end:
        term = contract.term(first) if contract.product.period_bounded else None
        last = end if term is None else min(end, term.last_day)
        lo, hi = first.toordinal(), last.toordinal()
        by_day = meter.by_day(contract.contract_id, term.index if term else 0, scope)
        yield from (m2 for day, m2 in sorted(by_day.items()) if lo <= day <= hi)
        first = last + timedelta(days=1)


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
) -> Sequence[PeriodUsage]:
    """Days come from the ledgers (as snapshots do); longer periods and hours from days.

    A week (ISO, from Monday), month, quarter or year is the sum of its days within
    [start, end] and starts on its calendar first day, even when the range starts later.
    An hour is a share of its day (see `_Hours`), so the hours of a day sum to that day,
    and every series of one scope ends on the same total.
    """
    days = daily_series(meter, contract, scope, start, end, now)
    if period_type is PeriodType.HOUR:
        return _Hours(meter, contract, scope, days)
    return _calendar(days, Calendar(period_type.value))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _calendar(days: list[DayUsage], period: Calendar) -> list[PeriodUsage]:
    buckets: dict[date, list[DayUsage]] = defaultdict(list)
    for d in days:
        buckets[period_start(d.day, period)].append(d)
    return [
        PeriodUsage(_midnight(first), sum(d.added_m2 for d in ds), ds[-1].total_m2)
        for first, ds in buckets.items()
    ]


def _record_hours(
    meter: Meter, contract: Contract, scope: str, days: set[date]
) -> tuple[dict[datetime, float], set[datetime]]:
    """What the usage records of `days` added in `scope`, per UTC hour of event time, and
    the hours that hold at least one counted record of the product."""
    added: dict[datetime, float] = defaultdict(float)
    active: set[datetime] = set()
    product = contract.product.value
    user = None if scope == OWNER_SCOPE else scope.removeprefix(USER_PREFIX)
    for hour, user_m2, owner_m2 in meter.records.areas(
        contract.api_owner, product, leaf_user_id=user, start=min(days), end=max(days)
    ):
        if hour.date() in days:
            added[hour] += owner_m2 if scope == OWNER_SCOPE else user_m2
            active.add(hour)
    return added, active


class _Hours(Window[PeriodUsage]):
    """Each day's area (the ledger's, as in the daily snapshot) split over its 24 hours.

    Rule: an hour gets what the usage records of that hour added in the scope (event
    time). The ledger is the truth for the day, and late events move area between days
    after the records were written (a late event claims area an event of a later day had
    added), and a FIELDS_BOUNDARY term start carries area without any record, so:
    - if the records of the day added less than the day holds, the remainder goes to the
      day's last hour with a counted record (00:00 when the day has none);
    - if they added more (area has since moved to an earlier day), every hour of a
      period-bounded product is scaled down by day / records, so no hour is negative.
    AUDIT's signed changes are never scaled: its remainder, of either sign, goes to the
    last active hour. The hours of a day therefore sum to the day's `area_added`, the
    running total of a period-bounded product never falls within a term, and the day's
    last hour ends on the day's total.

    A day's hours are built only when asked for: they read every usage record of the
    day, thousands for a busy owner, and a page of 50 hours spans at most 3 of the up to
    31 days a request may ask for (all 31 cost ~3 s at 1M records a year).
    """

    def __init__(
        self, meter: Meter, contract: Contract, scope: str, days: list[DayUsage]
    ) -> None:
        self._meter, self._contract, self._scope, self._days = meter, contract, scope, days

    def __len__(self) -> int:
        return 24 * len(self._days)

    def _rows(self, skip: int, count: int) -> Iterator[PeriodUsage]:
        wanted = range(skip, skip + count)
        days = self._build({i // 24 for i in wanted})
        return (days[i // 24][i % 24] for i in wanted)

    def _build(self, wanted: set[int]) -> dict[int, list[PeriodUsage]]:
        """The hours of the days at `wanted`, from one read of those days' records (none
        for none: a page past the end must not read the whole history)."""
        if not wanted:
            return {}
        added, active = _record_hours(self._meter, self._contract, self._scope,
                                      {self._days[i].day for i in wanted})
        return {
            i: _day_hours(self._contract, self._days[i - 1] if i else None, self._days[i],
                          added, active)
            for i in wanted
        }


def _day_hours(
    contract: Contract,
    previous: DayUsage | None,
    d: DayUsage,
    added: dict[datetime, float],
    active: set[datetime],
) -> list[PeriodUsage]:
    """One day's 24 hours by the rule of `_Hours`; its running total starts where the
    previous day of the series ended, within a term."""
    bounded = contract.product.period_bounded
    hours = [_midnight(d.day) + timedelta(hours=h) for h in range(24)]
    shares = _split_day(d.added_m2, [added.get(at, 0.0) for at in hours],
                        [at in active for at in hours], bounded)
    same_term = previous is not None and (
        not bounded or contract.term(previous.day).start == contract.term(d.day).start
    )
    running = previous.total_m2 if same_term and previous else d.total_m2 - d.added_m2
    out = []
    for h, at in enumerate(hours):
        running += shares[h]
        if h == 23:
            running = d.total_m2
        elif bounded:
            running = min(running, d.total_m2)
        out.append(PeriodUsage(at, shares[h], running))
    return out


def _split_day(
    day_m2: float, record_m2: list[float], active: list[bool], bounded: bool
) -> list[float]:
    """`day_m2` over 24 hours by the rule of `_Hours`."""
    weights = [max(0.0, w) for w in record_m2] if bounded else list(record_m2)
    recorded = sum(weights)
    if bounded and recorded > day_m2:
        scale = max(0.0, day_m2) / recorded
        return [w * scale for w in weights]
    last = max((h for h, on in enumerate(active) if on), default=0)
    weights[last] += day_m2 - recorded
    return weights


# ---- top users ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserTotal:
    """A Leaf user's unique area in a term and its share of the term's billable area."""

    leaf_user_id: str
    total_m2: float
    share_percent: float


def top_users(meter: Meter, contract: Contract, day: date) -> list[UserTotal]:
    """Users by unique area in the term holding `day`, largest first, ties by id.

    A share is of the billable area (the sum of every user's total), so the shares add up
    to 100 %; the owner's unique area is smaller whenever users overlap.
    """
    totals = user_totals(meter, contract, contract.term(day).index)
    billable = sum(m2 for _, m2 in totals)
    totals.sort(key=lambda t: (-t[1], t[0]))
    return [
        UserTotal(u, m2, 100.0 * m2 / billable if billable > 0 else 0.0) for u, m2 in totals
    ]


# ---- pre-flight check --------------------------------------------------------------


class FieldClip(StrEnum):
    """What a check did with an OPERATIONS_OPERATION's `field_id` (SPEC §2)."""

    CLIPPED = "clipped"  # the field is live for the user: only the part inside it counts
    OUTSIDE_FIELD = "outside_field"  # nothing of the operation lies inside the field
    FIELD_UNKNOWN = "field_unknown"  # no such live field yet: it would wait, then count whole


@dataclass(frozen=True, slots=True)
class QuotaVerdict:
    """One contract an event would consume, and whether its quota has room for it.

    `user_m2` is what the billable area (sum of Leaf-user totals) would grow by, and so what
    the quota is charged; `owner_m2` is what the owner's footprint would grow by.
    """

    product: Product
    contract: Contract | None
    user_m2: float
    owner_m2: float
    used_m2: float
    footprint_m2: float
    quota_m2: float | None

    @property
    def available_m2(self) -> float | None:
        return None if self.quota_m2 is None else max(0.0, self.quota_m2 - self.used_m2)

    @property
    def can_proceed(self) -> bool:
        available = self.available_m2
        return available is None or self.user_m2 <= available


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What processing a geometry would add, and whether every quota it consumes allows it.

    `verdicts[0]` is the product asked about; a period-bounded product other than UNIFIED
    also consumes UNIFIED_AREA (SPEC §3), which is `verdicts[1]`.
    """

    product: Product
    verdicts: list[QuotaVerdict]
    field_clip: FieldClip | None = None

    @property
    def main(self) -> QuotaVerdict:
        return self.verdicts[0]

    @property
    def contract(self) -> Contract | None:
        return self.main.contract

    @property
    def user_m2(self) -> float:
        return self.main.user_m2

    @property
    def owner_m2(self) -> float:
        return self.main.owner_m2

    @property
    def used_m2(self) -> float:
        return self.main.used_m2

    @property
    def footprint_m2(self) -> float:
        return self.main.footprint_m2

    @property
    def quota_m2(self) -> float | None:
        return self.main.quota_m2

    @property
    def available_m2(self) -> float | None:
        return self.main.available_m2

    @property
    def blocked_by(self) -> list[Product]:
        """The products whose quota the event would exceed."""
        return [v.product for v in self.verdicts if not v.can_proceed]

    @property
    def can_proceed(self) -> bool:
        return not self.blocked_by


def check(
    meter: Meter, api_owner: str, leaf_user_id: str, product: Product, geom: BaseGeometry,
    day: date, field_id: str | None = None,
) -> CheckResult:
    """Preview an event without changing anything, against every quota it would consume.

    Quotas are charged the billable area, so `required` is what the Leaf user's union
    would grow by. AUDIT is previewed against the live unions (a boundary replacing
    `field_id` first removes the field's current boundary); an OPERATIONS_OPERATION with
    a `field_id` the user has a live boundary for is clipped to it first, as metering
    would; the clipped geometry is also what UNIFIED_AREA would receive.
    """
    clip: FieldClip | None = None
    shape: BaseGeometry | None = geom
    if product is Product.OPERATIONS_OPERATION and field_id is not None:
        union = meter.audit.live.get((api_owner, user_scope(leaf_user_id)))
        boundary = union.get(field_id) if union else None
        if boundary is None:
            clip = FieldClip.FIELD_UNKNOWN
        else:
            shape = clip_to(geom, boundary)
            clip = FieldClip.CLIPPED if shape is not None else FieldClip.OUTSIDE_FIELD
    targets = [product]
    if product.period_bounded and product is not Product.UNIFIED_AREA:
        targets.append(Product.UNIFIED_AREA)
    verdicts = []
    for target in targets:
        if shape is None:
            area = ProductArea(0.0, 0.0)
        elif target is Product.AUDIT_FIELDS_BOUNDARY:
            area = preview_live(meter, api_owner, leaf_user_id, field_id, shape)
        else:
            area = meter.preview(api_owner, leaf_user_id, target, shape, day)
        verdicts.append(_verdict(meter, api_owner, target, area, day))
    return CheckResult(product, verdicts, clip)


def _verdict(
    meter: Meter, api_owner: str, product: Product, area: ProductArea, day: date
) -> QuotaVerdict:
    contract = meter.contract_for(api_owner, product)
    if contract is None:
        return QuotaVerdict(product, None, area.user_m2, area.owner_m2, 0.0, 0.0, None)
    usage = contract_usage(meter, contract, day)
    return QuotaVerdict(product, contract, area.user_m2, area.owner_m2, usage.used_m2,
                        usage.footprint_m2, usage.quota_m2)


def preview_live(
    meter: Meter, api_owner: str, leaf_user_id: str, field_id: str | None, geom: BaseGeometry
) -> ProductArea:
    """What putting `geom` as boundary `field_id` would change the live unions by.

    The same arithmetic as `LiveUnion.put`: the field's current boundary loses what no
    other live boundary covers, then `geom` gains what no other live boundary covers.
    Without a field id the boundary is new. Signed: an update may shrink the union.
    """
    deltas = []
    for scope in (user_scope(leaf_user_id), OWNER_SCOPE):
        union = meter.audit.live.get((api_owner, scope))
        key = field_key(leaf_user_id, field_id, scope) if field_id is not None else None
        deltas.append(_live_delta(union, key, geom))
    return ProductArea(deltas[0], deltas[1])


def _live_delta(union: LiveUnion | None, key: str | None, geom: BaseGeometry) -> float:
    if union is None or len(union) == 0:
        return geodesic_area_m2(geom)
    return union.preview(key, geom)


# ---- plan --------------------------------------------------------------------------


# The projection reads the last PROJECTION_WINDOW_DAYS days and drops TRIM_DAYS of the
# largest and of the smallest daily figures: a 10 % trimmed mean.
PROJECTION_WINDOW_DAYS = 30
TRIM_DAYS = 3
# Active days (billable area changed) in the window from which confidence is medium, high;
# high also needs the whole window within the contract's life.
MEDIUM_CONFIDENCE_DAYS = 5
HIGH_CONFIDENCE_DAYS = 15


class Confidence(StrEnum):
    """How much the projection rests on: active days in the last 30, and history."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Projection:
    """A robust daily rate of the billable area, and the plain mean beside it.

    `rate_m2` is the 10 % trimmed mean of the billable area added on each of the last
    30 days up to today (idle days, and days before the contract started, count as 0):
    the 3 largest and the 3 smallest days are dropped and the other 24 averaged, so up
    to 3 bursty days (an import, a term's carry-over) do not set the pace for a year.
    `mean_m2` is the untrimmed mean of the same 30 days (every burst counted).

    Confidence: high with at least 15 active days (the billable area changed) in the
    window and a contract at least 30 days old; medium with at least 5 active days; low
    otherwise. A young contract's rate leans towards 0 (its days before the start count
    as idle), so it is never more than medium.
    """

    rate_m2: float
    mean_m2: float
    active_days: int
    history_days: int

    @property
    def confidence(self) -> Confidence:
        if (
            self.active_days >= HIGH_CONFIDENCE_DAYS
            and self.history_days >= PROJECTION_WINDOW_DAYS
        ):
            return Confidence.HIGH
        if self.active_days >= MEDIUM_CONFIDENCE_DAYS:
            return Confidence.MEDIUM
        return Confidence.LOW


def billable_by_day(meter: Meter, contract: Contract, days: list[date]) -> list[float]:
    """The billable area (sum over Leaf users) each day added, read from each day's term;
    AUDIT's are signed changes of the users' live unions. Days before the contract: 0."""
    by_term: dict[int, set[int]] = defaultdict(set)
    for d in days:
        if d >= contract.start:
            term = contract.term(d).index if contract.product.period_bounded else 0
            by_term[term].add(d.toordinal())
    users = leaf_users(meter, contract)
    added: dict[int, float] = defaultdict(float)
    for term, ordinals in by_term.items():
        for user in users:
            by_day = meter.by_day(contract.contract_id, term, user_scope(user))
            for day in ordinals & by_day.keys():  # each day gets its users in user order
                added[day] += by_day[day]
    return [added.get(d.toordinal(), 0.0) for d in days]


def projection(meter: Meter, contract: Contract, last_day: date) -> Projection:
    """The robust daily rate of `Projection` over the 30 days ending on `last_day`."""
    days = [last_day - timedelta(days=i) for i in range(PROJECTION_WINDOW_DAYS - 1, -1, -1)]
    daily = billable_by_day(meter, contract, days)
    kept = sorted(daily)[TRIM_DAYS:len(daily) - TRIM_DAYS]
    active = sum(1 for m2 in daily if abs(m2) > CHANGE_EPSILON_M2)
    history = sum(1 for d in days if d >= contract.start)
    return Projection(sum(kept) / len(kept), sum(daily) / len(daily), active, history)


@dataclass(frozen=True, slots=True)
class Plan:
    """Term utilisation (billable area) and its projection to the term's end."""

    usage: ContractUsage
    days_elapsed: int
    days_remaining: int
    users_total_m2: float
    projection: Projection

    @property
    def daily_average_m2(self) -> float:
        """The robust daily rate the projection carries forward (`Projection.rate_m2`)."""
        return self.projection.rate_m2

    def _projected(self, rate_m2: float) -> float:
        return max(0.0, self.usage.used_m2 + rate_m2 * self.days_remaining)

    @property
    def projected_m2(self) -> float:
        return self._projected(self.projection.rate_m2)

    @property
    def projected_low_m2(self) -> float:
        """The lower of the trimmed-mean and the plain-mean projections."""
        return self._projected(min(self.projection.rate_m2, self.projection.mean_m2))

    @property
    def projected_high_m2(self) -> float:
        """The higher of the two: bursts like the window's recurring as often."""
        return self._projected(max(self.projection.rate_m2, self.projection.mean_m2))

    @property
    def confidence(self) -> Confidence:
        return self.projection.confidence

    @property
    def will_exceed(self) -> bool:
        quota = self.usage.quota_m2
        return quota is not None and self.projected_m2 > quota

    @property
    def exceed_on(self) -> date | None:
        """The day the projection reaches the quota, if within the term."""
        return _exceed_day(self.usage, self.daily_average_m2, self.days_elapsed)

    @property
    def footprint_m2(self) -> float:
        return self.usage.footprint_m2

    @property
    def overlap_m2(self) -> float:
        return max(0.0, self.users_total_m2 - self.usage.footprint_m2)


def plan(meter: Meter, contract: Contract, today: date) -> Plan:
    """Billable area now, plus the robust daily rate carried to the term's last day."""
    usage = contract_usage(meter, contract, today)
    clamped = min(max(today, usage.term.start), usage.term.last_day)
    elapsed = (clamped - usage.term.start).days + 1
    remaining = (usage.term.last_day - clamped).days
    rate = projection(meter, contract, clamped)
    return Plan(usage, elapsed, remaining, usage.used_m2, rate)


def _exceed_day(usage: ContractUsage, per_day: float, elapsed: int) -> date | None:
    quota = usage.quota_m2
    if quota is None:
        return None
    if usage.used_m2 >= quota:
        return usage.term.start + timedelta(days=elapsed - 1)
    if per_day <= 0:
        return None
    # Rounded before the ceiling: areas are exact only to float noise (grid-snapped
    # coordinates move a field's area by ~1e-11), and a projection landing on the quota
    # within that noise reaches it that day, not the next.
    days_to_quota = math.ceil(round((quota - usage.used_m2) / per_day, 6))
    day = usage.term.start + timedelta(days=elapsed - 1 + days_to_quota)
    return day if day <= usage.term.last_day else None


@dataclass(frozen=True, slots=True)
class PeriodProjection:
    """The billable area a range will have added by its period's last day, at the rate
    `plan` carries to the term's end, and that plan beside it."""

    plan: Plan
    last_day: date
    added_m2: float
    days_remaining: int

    def _projected(self, rate_m2: float) -> float:
        return self.added_m2 + rate_m2 * self.days_remaining

    @property
    def projected_m2(self) -> float:
        return self._projected(self.plan.projection.rate_m2)

    @property
    def projected_low_m2(self) -> float:
        p = self.plan.projection
        return self._projected(min(p.rate_m2, p.mean_m2))

    @property
    def projected_high_m2(self) -> float:
        p = self.plan.projection
        return self._projected(max(p.rate_m2, p.mean_m2))


def period_projection(
    meter: Meter,
    contract: Contract,
    start: date,
    last_day: date,
    today: date,
    known: tuple[date, float] | None = None,
) -> PeriodProjection:
    """What [start, last_day] added up to today, plus the plan's rate for each later day.

    Days after today count at the rate; days up to today count as they are, so a period
    that is over projects exactly what it added. AUDIT's figures are signed. `known` is
    (day, billable area [start, day] added) when the caller has summed it already (a
    summary's `users_added_m2`): it is used when that day is the one needed.
    """
    through = min(last_day, today)
    if known is not None and known[0] == through:
        added = known[1]
    else:
        added = sum(users_added(meter, contract, start, through).values())
    remaining = max(0, (last_day - max(today, start - timedelta(days=1))).days)
    return PeriodProjection(plan(meter, contract, today), last_day, added, remaining)
