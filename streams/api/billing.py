"""/billing endpoints (camelCase): contracts, their daily consumption and quotas."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from aggregates import usage
from aggregates.contracts import OWNER_SCOPE, Contract, user_scope
from aggregates.exports import ReportLine, TermReport, TermTally, record_days, scope_days
from aggregates.exports import term_report as build_report
from aggregates.meter import Meter
from aggregates.periods import Term
from aggregates.usage import ContractUsage, DayUsage
from schemas import exports
from schemas.api import (
    BillingQuery,
    BreakdownQuery,
    ConsumptionOut,
    ConsumptionQuery,
    ContractOut,
    ContractsQuery,
    DayOut,
    QuotaIn,
    ReportLineOut,
    ReportQuery,
    ScopeDayOut,
    TermOut,
    TermReportOut,
)
from schemas.codec import dumps
from schemas.internal import QuotaMessage
from schemas.units import Unit, convert, to_m2
from streams.api.deps import ADMIN, READ, READ_ANY, Everyone, Scope
from streams.api.errors import ERROR_RESPONSES, not_found
from streams.api.everyone import gather, local_share, share_response
from streams.api.exports import (
    ALSO_CSV,
    CSV,
    CSV_ONLY,
    LIST_ALSO_CSV,
    CsvResponse,
    csv_response,
    tally,
)
from streams.api.paging import TOTAL_HEADER, PageSpan, page_of, set_total
from streams.api.params import ContractId, LeafUserId
from streams.api.settled import SettledRoute

router = APIRouter(prefix="/billing/contracts", tags=["billing"], responses=ERROR_RESPONSES,
                   route_class=SettledRoute)


def term_out(term: Term) -> TermOut:
    return TermOut(index=term.index, start_date=term.start, end_date=term.end)


def contract_out(u: ContractUsage, unit: Unit) -> ContractOut:
    def area(m2: float | None) -> float | None:
        return None if m2 is None else convert(m2, unit)

    c = u.contract
    return ContractOut(
        contract_id=c.contract_id, api_owner=c.api_owner, product=c.product,
        start_date=c.start, current_term=term_out(u.term), quota=area(u.quota_m2),
        used=convert(u.used_m2, unit), remaining=area(u.remaining_m2),
        percent_used=u.percent_used, footprint=convert(u.footprint_m2, unit), unit=unit,
    )


def day_out(d: DayUsage, unit: Unit) -> DayOut:
    return DayOut(date=d.day, area_added=convert(d.added_m2, unit),
                  total_area=convert(d.total_m2, unit), final=d.final, unit=unit)


def scope_day_out(leaf_user_id: str | None, d: DayUsage, unit: Unit) -> ScopeDayOut:
    return ScopeDayOut(leaf_user_id=leaf_user_id, area_added=convert(d.added_m2, unit),
                       total_area=convert(d.total_m2, unit), final=d.final, unit=unit)


def the_contract(scope: Scope, contract_id: str) -> Contract:
    contract = usage.find_contract(scope.meter, scope.owner, contract_id)
    if contract is None:
        raise not_found("contract")
    return contract


@router.get("", response_model=list[ContractOut], summary="List contracts",
            description="An owner's contracts in product order. The admin key without "
            "`apiOwner` lists every owner's, ordered by apiOwner, then contractId.",
            responses=TOTAL_HEADER)
async def list_contracts(
    q: Annotated[ContractsQuery, Query()], scope: READ_ANY, request: Request,
    response: Response,
) -> Any:
    if isinstance(scope, Everyone):
        return await _everyones_contracts(q, scope, request, response)
    found = usage.owner_contracts(scope.meter, scope.acting_owner, q.product)
    items = [contract_out(usage.contract_usage(scope.meter, c, scope.now.date()), q.unit)
             for c in found]
    set_total(response, len(items))
    return page_of(items, q.page, q.size)


async def _everyones_contracts(
    q: ContractsQuery, everyone: Everyone, request: Request, response: Response
) -> Any:
    """This worker's share when another worker asks for it, else every worker's."""
    def rows_of(meter: Meter) -> list[dict[str, Any]]:
        found = [c for c in meter.contracts.values() if q.product in (None, c.product)]
        return [contract_out(usage.contract_usage(meter, c, everyone.now.date()), q.unit)
                .model_dump(mode="json", by_alias=True) for c in found]

    share = local_share(everyone, rows_of)
    if everyone.forwarded:
        return share_response(share)
    rows = sorted(await gather(everyone, request, share, "apiOwner"),
                  key=lambda r: (r["apiOwner"], r["contractId"]))
    set_total(response, len(rows))
    return page_of(rows, q.page, q.size)


@router.get("/{contractId}", response_model=ContractOut,
            summary="One contract with its current term, quota and usage")
async def get_contract(
    contract_id: ContractId, q: Annotated[BillingQuery, Query()], scope: READ
) -> ContractOut:
    u = usage.contract_usage(scope.meter, the_contract(scope, contract_id), scope.now.date())
    return contract_out(u, q.unit)


@router.get("/{contractId}/consumption", response_model=ConsumptionOut,
            summary="One day's consumption: the API owner's and every Leaf user's",
            responses=TOTAL_HEADER)
async def consumption(
    contract_id: ContractId, q: Annotated[ConsumptionQuery, Query()], scope: READ,
    response: Response,
) -> ConsumptionOut:
    contract = the_contract(scope, contract_id)
    day = q.timestamp or scope.now.date()
    c = usage.consumption_on(scope.meter, contract, day, scope.now)
    users = [scope_day_out(u, d, q.unit) for u, d in c.users]
    set_total(response, len(users))
    return ConsumptionOut(
        contract_id=contract.contract_id, api_owner=contract.api_owner,
        product=contract.product, date=day, term=term_out(c.term),
        owner=scope_day_out(None, c.owner, q.unit), leaf_users=page_of(users, q.page, q.size),
        leaf_user_count=len(users), leaf_users_total_area=convert(c.users_total_m2, q.unit),
        overlap_area=convert(c.overlap_m2, q.unit),
        quota=None if contract.quota_m2 is None else convert(contract.quota_m2, q.unit),
        unit=q.unit,
    )


def _range(scope: Scope, contract: Contract, q: BreakdownQuery) -> tuple[date, date]:
    """Before the term's first day or ending before it starts, the range has no days."""
    today = scope.now.date()
    return q.start_time or contract.term(today).start, q.end_time or today


def _breakdown(
    scope: Scope, contract: Contract, scope_key: str, q: BreakdownQuery, response: Response
) -> list[DayOut]:
    return _days_page(scope, contract, q, response, partial(
        usage.daily_series, scope.meter, contract, scope_key))


def _days_page(
    scope: Scope, contract: Contract, q: BreakdownQuery, response: Response,
    series: Callable[[date, date, datetime], list[DayUsage]],
) -> list[DayOut]:
    """Only the page's days are computed, so a range of any length costs one page."""
    start, end = _range(scope, contract, q)
    total = max(0, (end - start).days + 1)
    set_total(response, total)
    page = PageSpan.of(q.page, q.size, total)
    if page.empty:
        return []
    days = series(start + timedelta(days=page.first), start + timedelta(days=page.stop - 1),
                  scope.now)
    return [day_out(d, q.unit) for d in days]


def _breakdown_csv(
    scope: Scope, contract: Contract, leaf_user_id: str | None, q: BreakdownQuery
) -> CsvResponse:
    """Every day of the range, whatever `page` and `size` say; read from the Meter before
    the first await, as a thread may meter into it later (streams/holder.py)."""
    start, end = _range(scope, contract, q)
    days = list(scope_days(scope.meter, contract, leaf_user_id, start, end, scope.now))
    name = "api-owner" if leaf_user_id is None else "leaf-user"
    return csv_response(exports.consumption_header(q.unit),
                        (exports.consumption_row(contract, d, q.unit) for d in days),
                        f"consumption-{contract.contract_id}-{name}.csv",
                        max(0, (end - start).days + 1))


@router.get("/{contractId}/consumption/api-owner", response_model=list[DayOut],
            summary="Daily breakdown of the API owner's scope (CSV with Accept: text/csv)",
            responses=LIST_ALSO_CSV)
async def owner_breakdown(
    contract_id: ContractId, q: Annotated[BreakdownQuery, Query()], scope: READ,
    response: Response, csv: CSV,
) -> list[DayOut] | Response:
    contract = the_contract(scope, contract_id)
    if csv:
        return _breakdown_csv(scope, contract, None, q)
    return _breakdown(scope, contract, OWNER_SCOPE, q, response)


@router.get("/{contractId}/consumption/api-owner.csv", response_class=CsvResponse,
            summary="Daily breakdown of the API owner's scope, every day, as CSV",
            responses=CSV_ONLY)
async def owner_breakdown_csv(
    contract_id: ContractId, q: Annotated[BreakdownQuery, Query()], scope: READ,
) -> Response:
    return _breakdown_csv(scope, the_contract(scope, contract_id), None, q)


def _user_of(scope: Scope, contract: Contract, leaf_user_id: str) -> str:
    if leaf_user_id not in usage.leaf_users(scope.meter, contract):
        raise not_found("Leaf user")
    return leaf_user_id


# Leaf user ids may hold "/": the server decodes %2F before it matches a route, so the id
# is matched as a path. The CSV route comes first, or the JSON one would take
# "u1/daily.csv" for an id. (An id that itself ends in "/daily.csv" is reached by the CSV
# route only, and by ?leafUserId= on the record and report endpoints.)
@router.get("/{contractId}/consumption/leaf-user/{leafUserId:path}/daily.csv",
            response_class=CsvResponse,
            summary="Daily breakdown of one Leaf user's scope, every day, as CSV",
            responses=CSV_ONLY)
async def user_breakdown_csv(
    contract_id: ContractId, leaf_user_id: LeafUserId,
    q: Annotated[BreakdownQuery, Query()], scope: READ,
) -> Response:
    contract = the_contract(scope, contract_id)
    return _breakdown_csv(scope, contract, _user_of(scope, contract, leaf_user_id), q)


@router.get("/{contractId}/consumption/leaf-user/{leafUserId:path}", response_model=list[DayOut],
            summary="Daily breakdown of one Leaf user's scope (CSV with Accept: text/csv)",
            responses=LIST_ALSO_CSV)
async def user_breakdown(
    contract_id: ContractId, leaf_user_id: LeafUserId,
    q: Annotated[BreakdownQuery, Query()], scope: READ, response: Response, csv: CSV,
) -> list[DayOut] | Response:
    contract = the_contract(scope, contract_id)
    user = _user_of(scope, contract, leaf_user_id)
    if csv:
        return _breakdown_csv(scope, contract, user, q)
    return _breakdown(scope, contract, user_scope(user), q, response)


async def _term_report(scope: Scope, contract_id: str, q: ReportQuery) -> TermReport:
    """The term's usage records are read once, the loop handed back between batches."""
    contract = the_contract(scope, contract_id)
    day = q.timestamp or scope.now.date()
    user = None if q.leaf_user_id is None else _user_of(scope, contract, q.leaf_user_id)
    term = contract.term(day)
    start, end = record_days(term)
    records = scope.meter.records.select(contract.api_owner, leaf_user_id=user, start=start,
                                         end=end)
    found = await tally(records, TermTally(contract.product.value))
    return build_report(await scope.settled_meter(), contract, term, found, user)


def report_line_out(line: ReportLine, unit: Unit) -> ReportLineOut:
    a = line.activity
    return ReportLineOut(
        scope="api-owner" if line.leaf_user_id is None else "leaf-user",
        leaf_user_id=line.leaf_user_id, unique_area=convert(line.unique_m2, unit),
        share_of_owner_percent=line.share_percent, events=a.events, first_activity=a.first,
        last_activity=a.last, unit=unit,
    )


def _report_csv(r: TermReport, unit: Unit) -> CsvResponse:
    name = f"report-{r.contract.contract_id}-term{r.term.index}.csv"
    return csv_response(exports.report_header(unit), exports.report_rows(r, unit), name,
                        len(r.lines))


@router.get("/{contractId}/report", response_model=TermReportOut,
            summary="A term's report: the API owner's and each Leaf user's unique area, "
            "share, events and first and last activity (CSV with Accept: text/csv)",
            responses=ALSO_CSV)
async def term_report(
    contract_id: ContractId, q: Annotated[ReportQuery, Query()], scope: READ, csv: CSV,
) -> TermReportOut | Response:
    r = await _term_report(scope, contract_id, q)
    if csv:
        return _report_csv(r, q.unit)
    return TermReportOut(
        contract_id=r.contract.contract_id, api_owner=r.contract.api_owner,
        product=r.contract.product, term=term_out(r.term),
        lines=[report_line_out(line, q.unit) for line in r.lines], unit=q.unit,
    )


@router.get("/{contractId}/report.csv", response_class=CsvResponse,
            summary="A term's report as CSV", responses=CSV_ONLY)
async def term_report_csv(
    contract_id: ContractId, q: Annotated[ReportQuery, Query()], scope: READ,
) -> Response:
    return _report_csv(await _term_report(scope, contract_id, q), q.unit)


@router.get("/{contractId}/consumption/leaf-users", response_model=list[DayOut],
            summary="Daily breakdown of the billable area: the sum of every Leaf user's scope",
            responses=TOTAL_HEADER)
async def users_breakdown(
    contract_id: ContractId, q: Annotated[BreakdownQuery, Query()], scope: READ,
    response: Response,
) -> list[DayOut]:
    """What a quota is compared with (SPEC §3); the page at /ui charts it."""
    contract = the_contract(scope, contract_id)
    return _days_page(scope, contract, q, response,
                      partial(usage.billable_series, scope.meter, contract))


@router.put("/{contractId}/quota", response_model=ContractOut, status_code=202,
            summary="Admin: set the contract's quota per term")
async def put_quota(
    contract_id: ContractId, body: QuotaIn, q: Annotated[BillingQuery, Query()],
    scope: ADMIN,
) -> ContractOut:
    """Sent in-stream to the owner's partition; the reply is the contract as it will be,
    read before the send's await: after it, a tick may be changing the Meter, and a 503
    would tell the client that a quota it sent was not."""
    contract = the_contract(scope, contract_id)
    quota_m2 = None if body.quota is None else to_m2(body.quota, body.unit)
    pending = usage.contract_usage(scope.meter, contract.with_quota(quota_m2), scope.now.date())
    message = QuotaMessage(contract_id=contract.contract_id, quota_m2=quota_m2, now=scope.now)
    await scope.api.send(contract.api_owner, dumps(message.model_dump(mode="json")))
    return contract_out(pending, q.unit)
