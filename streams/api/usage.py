"""/usage endpoints (snake_case): summaries, records, series, rankings, checks and plans."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from aggregates import GeometryError, normalize_geometry
from aggregates import usage as figures
from aggregates.breakdown import breakdown
from aggregates.contracts import OWNER_SCOPE, Contract, user_scope
from aggregates.pages import Window
from aggregates.periods import Calendar, day_of, period_start
from aggregates.records import UsageRecord
from aggregates.usage import PeriodType, PeriodUsage
from schemas import exports
from schemas.api import (
    AreaPairOut,
    ByPeriodOut,
    ByPeriodQuery,
    CheckIn,
    CheckOut,
    CheckQuery,
    DetailsOut,
    DetailsQuery,
    EventTypeOut,
    PeriodOut,
    PlanOut,
    PlanQuery,
    ProductSummaryOut,
    ProjectionOut,
    QuotaCheckOut,
    RecordOut,
    SummaryOut,
    SummaryQuery,
    TopUserOut,
    TopUsersOut,
    TopUsersQuery,
    UsageBreakdownOut,
    UsageBreakdownQuery,
    UserBreakdownOut,
)
from schemas.units import Unit, convert
from streams.api import wording
from streams.api.deps import CHECK, READ, Scope
from streams.api.errors import ERROR_RESPONSES, bad_parameter
from streams.api.exports import CSV, CSV_ONLY, LIST_ALSO_CSV, CsvResponse, csv_response
from streams.api.paging import TOTAL_HEADER, PageSpan, page_of, set_total
from streams.api.settled import SettledRoute
from streams.decode import Limits

router = APIRouter(prefix="/usage", tags=["usage"], responses=ERROR_RESPONSES,
                   route_class=SettledRoute)


def _id(contract: Contract | None) -> str | None:
    return None if contract is None else contract.contract_id


def _summary_range(
    q: SummaryQuery, today: date, contract: Contract | None
) -> tuple[date, date, date]:
    """The range asked for, and the last day of its `period` (where projections end)."""
    end = q.end_date or today
    first, last = figures.span_bounds(q.period, end, contract)
    return q.start_date or first, end, last


def projection_out(p: figures.PeriodProjection, unit: Unit) -> ProjectionOut:
    return ProjectionOut(
        period_end=p.last_day, days_remaining=p.days_remaining,
        daily_average=convert(p.plan.daily_average_m2, unit),
        projected_area_added=convert(p.projected_m2, unit),
        projected_area_added_low=convert(p.projected_low_m2, unit),
        projected_area_added_high=convert(p.projected_high_m2, unit),
        projected_term_total=convert(p.plan.projected_m2, unit),
        will_exceed_limit=p.plan.will_exceed, projected_exceed_date=p.plan.exceed_on,
        confidence=p.plan.confidence,
    )


def _summaries_out(
    scope: Scope, q: SummaryQuery, found: list[figures.ProductSummary],
    span: tuple[date, date, date],
) -> list[ProductSummaryOut]:
    """Each product's summary over [start, end], with its projection to `last` when asked
    for, which reuses what the summary summed when the projection needs that range."""
    today, (start, end, last) = scope.now.date(), span
    return [
        product_summary_out(s, q.unit, figures.period_projection(
            scope.meter, s.contract, start, last, today, (end, s.users_added_m2),
        ) if q.include_projections else None)
        for s in found
    ]


def product_summary_out(
    s: figures.ProductSummary, unit: Unit, projection: figures.PeriodProjection | None = None
) -> ProductSummaryOut:
    quota = s.usage.quota_m2
    return ProductSummaryOut(
        product=s.contract.product, contract_id=s.contract.contract_id,
        area_added=convert(s.added_m2, unit),
        leaf_users_area_added=convert(s.users_added_m2, unit),
        overlap=convert(s.overlap_m2, unit), total_area=convert(s.total_m2, unit),
        quota=None if quota is None else convert(quota, unit),
        used=convert(s.usage.used_m2, unit), percent_used=s.usage.percent_used,
        leaf_users=s.leaf_users, unit=unit,
        projection=None if projection is None else projection_out(projection, unit),
    )


@router.get("/summary", response_model=SummaryOut, summary="Totals per product for a period")
async def summary(q: Annotated[SummaryQuery, Query()], scope: READ) -> SummaryOut:
    owner = scope.acting_owner
    unified = scope.meter.contract_for(owner, figures.Product.UNIFIED_AREA)
    span = _summary_range(q, scope.now.date(), unified)
    start, end, _ = span
    found = figures.summary(scope.meter, owner, start, end)
    return SummaryOut(
        api_owner=owner, start_date=start, end_date=end, period=q.period,
        products=_summaries_out(scope, q, found, span), unit=q.unit,
    )


@router.get("/breakdown", response_model=UsageBreakdownOut,
            summary="By product, Leaf user and event type, newest records",
            responses=TOTAL_HEADER)
async def usage_breakdown(
    q: Annotated[UsageBreakdownQuery, Query()], scope: READ, response: Response
) -> UsageBreakdownOut:
    owner = scope.acting_owner
    unified = scope.meter.contract_for(owner, figures.Product.UNIFIED_AREA)
    span = _summary_range(q, scope.now.date(), unified)
    start, end, _ = span
    found = breakdown(scope.meter, owner, start, end, q.recent)
    users = [
        UserBreakdownOut(leaf_user_id=u.leaf_user_id, events=u.events, unit=q.unit,
                         area_added={p: convert(m2, q.unit) for p, m2 in u.added_m2.items()})
        for u in page_of(found.users, q.page, q.page_size)
    ]
    set_total(response, len(found.users))
    return UsageBreakdownOut(
        api_owner=owner, start_date=start, end_date=end, period=q.period,
        products=_summaries_out(scope, q, found.products, span), events=found.events,
        event_types=[EventTypeOut(type=t.event_type, events=t.events)
                     for t in found.event_types],
        page=q.page, page_size=q.page_size, total=len(found.users), users=users,
        recent=[record_out(r, q.unit) for r in found.recent], unit=q.unit,
    )


def record_out(r: UsageRecord, unit: Unit) -> RecordOut:
    return RecordOut(
        event_id=r.event_id, type=r.type, timestamp=r.timestamp, leaf_user_id=r.leaf_user_id,
        status=r.status, counted=r.counted, reason=r.reason, products=r.products,
        area_added_user=convert(r.area_added_user_m2, unit),
        area_added_owner=convert(r.area_added_owner_m2, unit),
        by_product={
            p: AreaPairOut(user=convert(a.user_m2, unit), owner=convert(a.owner_m2, unit),
                           unit=unit)
            for p, a in r.by_product.items()
        },
        unit=unit,
    )


def _records(scope: Scope, q: DetailsQuery) -> Window[UsageRecord]:
    return scope.meter.records.select(scope.acting_owner, event_type=q.type,
                                      leaf_user_id=q.leaf_user_id, start=q.start_date,
                                      end=q.end_date)


def _records_csv(scope: Scope, q: DetailsQuery) -> CsvResponse:
    """Every page of the filter, newest first, read from the table as it is sent."""
    found = _records(scope, q)
    rows = (exports.record_row(r, q.unit) for r in found)
    return csv_response(exports.records_header(q.unit), rows, "usage-details.csv", len(found))


@router.get("/details", response_model=DetailsOut,
            summary="Usage records, newest first (CSV of every page with Accept: text/csv)",
            responses=LIST_ALSO_CSV)
async def details(
    q: Annotated[DetailsQuery, Query()], scope: READ, response: Response, csv: CSV,
) -> DetailsOut | Response:
    if csv:
        return _records_csv(scope, q)
    found = _records(scope, q)
    page = [record_out(r, q.unit) for r in page_of(found, q.page, q.page_size)]
    set_total(response, len(found))
    return DetailsOut(api_owner=scope.acting_owner, page=q.page, page_size=q.page_size,
                      total=len(found), records=page)


@router.get("/details.csv", response_class=CsvResponse,
            summary="Usage records, every page, newest first, as CSV", responses=CSV_ONLY)
async def details_csv(q: Annotated[DetailsQuery, Query()], scope: READ) -> Response:
    return _records_csv(scope, q)


@router.get("/by-period", response_model=ByPeriodOut,
            summary="Time series by hour, day, week, month, quarter or year",
            responses=TOTAL_HEADER)
async def by_period(
    q: Annotated[ByPeriodQuery, Query()], scope: READ, response: Response
) -> ByPeriodOut:
    owner, today = scope.acting_owner, scope.now.date()
    contract = scope.meter.contract_for(owner, q.product)
    start = q.start_date or (contract.term(today).start if contract else today)
    end = q.end_date or today
    total, series = (0, []) if contract is None else _series_page(scope, contract, q, start, end)
    periods = [PeriodOut(period_start=p.start, area_added=convert(p.added_m2, q.unit),
                         total_area=convert(p.total_m2, q.unit), unit=q.unit)
               for p in series]
    set_total(response, total)
    return ByPeriodOut(
        api_owner=owner, product=q.product, contract_id=_id(contract),
        leaf_user_id=q.leaf_user_id, period_type=q.period_type, start_date=start,
        end_date=end, page=q.page, page_size=q.page_size, total=total, periods=periods,
    )


def _series_page(
    scope: Scope, contract: Contract, q: ByPeriodQuery, start: date, end: date
) -> tuple[int, Sequence[PeriodUsage]]:
    """How many periods [start, end] holds, and the page's periods, computed alone: a
    series of any span costs one page."""
    key = OWNER_SCOPE if q.leaf_user_id is None else user_scope(q.leaf_user_id)
    if q.period_type is PeriodType.HOUR:
        hours = 24 * _buckets(start, end, Calendar.DAY)
        page = PageSpan.of(q.page, q.page_size, hours)
        if page.empty:
            return hours, []
        first_day, last_day = page.first // 24, (page.stop - 1) // 24
        series = figures.by_period(scope.meter, contract, key, q.period_type,
                                   start + timedelta(days=first_day),
                                   start + timedelta(days=last_day), scope.now)
        return hours, series[page.first - 24 * first_day:page.stop - 24 * first_day]
    period = Calendar(q.period_type.value)
    total = _buckets(start, end, period)
    page = PageSpan.of(q.page, q.page_size, total)
    if page.empty:
        return total, []
    first = max(start, _nth_period(start, period, page.first))
    last = min(end, _nth_period(start, period, page.stop) - timedelta(days=1))
    return total, figures.by_period(scope.meter, contract, key, q.period_type, first, last,
                                    scope.now)


MONTHS = {Calendar.MONTH: 1, Calendar.QUARTER: 3, Calendar.YEAR: 12}


def _buckets(start: date, end: date, period: Calendar) -> int:
    """Calendar periods [start, end] touches; none when it ends before it starts."""
    if end < start:
        return 0
    a, b = period_start(start, period), period_start(end, period)
    if period is Calendar.DAY:
        return (b - a).days + 1
    if period is Calendar.WEEK:
        return (b - a).days // 7 + 1
    return ((b.year - a.year) * 12 + b.month - a.month) // MONTHS[period] + 1


def _nth_period(start: date, period: Calendar, n: int) -> date:
    """First day of the n-th calendar period from the one holding `start` (0: that one)."""
    first = period_start(start, period)
    if period is Calendar.DAY:
        return first + timedelta(days=n)
    if period is Calendar.WEEK:
        return first + timedelta(weeks=n)
    months = first.month - 1 + n * MONTHS[period]
    return date(first.year + months // 12, months % 12 + 1, 1)


@router.get("/top-users", response_model=TopUsersOut, summary="Leaf users ranked by unique area",
            responses=TOTAL_HEADER)
async def top_users(
    q: Annotated[TopUsersQuery, Query()], scope: READ, response: Response
) -> TopUsersOut:
    owner = scope.acting_owner
    contract = scope.meter.contract_for(owner, q.product)
    day = q.date_ or scope.now.date()
    ranked = [] if contract is None else figures.top_users(scope.meter, contract, day)
    first = PageSpan.of(q.page, q.page_size, len(ranked)).first
    users = [TopUserOut(rank=first + i + 1, leaf_user_id=u.leaf_user_id,
                        total_area=convert(u.total_m2, q.unit), share_percent=u.share_percent,
                        unit=q.unit)
             for i, u in enumerate(page_of(ranked, q.page, q.page_size))]
    term = contract.term(day) if contract else None
    set_total(response, len(ranked))
    return TopUsersOut(
        api_owner=owner, product=q.product, contract_id=_id(contract),
        term_start=term.start if term else None,
        term_end=term.end if term else None, page=q.page,
        page_size=q.page_size, total=len(ranked), users=users,
    )


def _area(m2: float | None, unit: Unit) -> float | None:
    return None if m2 is None else convert(m2, unit)


def quota_check_out(v: figures.QuotaVerdict, unit: Unit) -> QuotaCheckOut:
    return QuotaCheckOut(
        product=v.product, contract_id=_id(v.contract), required=convert(v.user_m2, unit),
        area_added_owner=convert(v.owner_m2, unit), used=convert(v.used_m2, unit),
        footprint=convert(v.footprint_m2, unit), quota=_area(v.quota_m2, unit),
        available=_area(v.available_m2, unit), can_proceed=v.can_proceed, unit=unit,
    )


@router.post("/check", response_model=CheckOut,
             summary="Pre-flight: area a geometry would add, quota verdict")
async def check(body: CheckIn, q: Annotated[CheckQuery, Query()], scope: CHECK) -> CheckOut:
    """Nothing is sent anywhere: a check reads the unions and changes nothing. A shape
    ingest would dead-letter is refused for the same reason, so the check never meters
    what no event could."""
    unit: Unit = q.unit
    try:
        limits = Limits.from_settings(scope.api.settings)
        geom = normalize_geometry(body.geometry.model_dump(), max_vertices=limits.max_vertices,
                                  max_area_m2=limits.max_area_m2)
    except (GeometryError, ValueError, TypeError) as exc:
        raise bad_parameter("geometry", f"geometry: {exc}") from None
    day = day_of(body.timestamp) if body.timestamp else scope.now.date()
    owner = scope.acting_owner
    r = figures.check(scope.meter, owner, body.leaf_user_id, body.product, geom, day,
                      body.field_id)
    return CheckOut(
        api_owner=owner, leaf_user_id=body.leaf_user_id, product=body.product,
        contract_id=_id(r.contract),
        area_added_user=convert(r.user_m2, unit), area_added_owner=convert(r.owner_m2, unit),
        required=convert(r.user_m2, unit), available=_area(r.available_m2, unit),
        used=convert(r.used_m2, unit), quota=_area(r.quota_m2, unit),
        can_proceed=r.can_proceed, message=wording.check_message(r, unit), unit=unit,
        footprint=convert(r.footprint_m2, unit), blocked_by=r.blocked_by,
        quotas=[quota_check_out(v, unit) for v in r.verdicts], field_id=body.field_id,
        field_clip=r.field_clip,
    )


@router.get("/plan", response_model=PlanOut,
            summary="Term utilisation, projection and recommendations")
async def plan(q: Annotated[PlanQuery, Query()], scope: READ) -> PlanOut:
    owner = scope.acting_owner
    contract = scope.meter.contract_for(owner, q.product)
    if contract is None:
        return _no_plan(owner, q)
    p = figures.plan(scope.meter, contract, scope.now.date())
    u = p.usage
    return PlanOut(
        api_owner=owner, product=q.product, contract_id=contract.contract_id,
        term_start=u.term.start, term_end=u.term.end, days_elapsed=p.days_elapsed,
        days_remaining=p.days_remaining, used=convert(u.used_m2, q.unit),
        quota=_area(u.quota_m2, q.unit),
        percent_used=u.percent_used, daily_average=convert(p.daily_average_m2, q.unit),
        projected_term_total=convert(p.projected_m2, q.unit), will_exceed_limit=p.will_exceed,
        projected_exceed_date=p.exceed_on, leaf_users_total=convert(p.users_total_m2, q.unit),
        overlap=convert(p.overlap_m2, q.unit), unit=q.unit,
        recommendations=wording.recommendations(p, q.unit),
        footprint=convert(p.footprint_m2, q.unit),
        projected_term_total_low=convert(p.projected_low_m2, q.unit),
        projected_term_total_high=convert(p.projected_high_m2, q.unit),
        active_days=p.projection.active_days, confidence=p.confidence,
    )


def _no_plan(owner: str, q: PlanQuery) -> PlanOut:
    return PlanOut(
        api_owner=owner, product=q.product, contract_id=None, term_start=None, term_end=None,
        days_elapsed=0, days_remaining=0, used=0.0, quota=None, percent_used=None,
        daily_average=0.0, projected_term_total=0.0, will_exceed_limit=False,
        projected_exceed_date=None, leaf_users_total=0.0, overlap=0.0,
        recommendations=[f"No {q.product.value} usage yet: its contract starts with the "
                         "first counted event."],
        unit=q.unit, footprint=0.0, projected_term_total_low=0.0,
        projected_term_total_high=0.0, active_days=0, confidence=figures.Confidence.LOW,
    )
