"""/billing endpoints (camelCase): contracts, their daily consumption and quotas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from aggregates import usage
from aggregates.contracts import OWNER_SCOPE, Contract, user_scope
from aggregates.periods import Term
from aggregates.usage import ContractUsage, DayUsage
from schemas.api import (
    BillingQuery,
    BreakdownQuery,
    ConsumptionOut,
    ConsumptionQuery,
    ContractOut,
    ContractsQuery,
    DayOut,
    QuotaIn,
    ScopeDayOut,
    TermOut,
)
from schemas.codec import dumps
from schemas.internal import QuotaMessage
from schemas.units import Unit, convert, to_m2
from streams.api import params
from streams.api.deps import ADMIN, READ, Scope
from streams.api.errors import ERROR_RESPONSES, not_found
from streams.api.paging import TOTAL_HEADER, page_of, set_total
from streams.api.params import ContractId, LeafUserId

router = APIRouter(prefix="/billing/contracts", tags=["billing"], responses=ERROR_RESPONSES)


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
            responses=TOTAL_HEADER)
async def list_contracts(
    q: Annotated[ContractsQuery, Query()], scope: READ, response: Response
) -> list[ContractOut]:
    found = usage.owner_contracts(scope.meter, scope.acting_owner, q.product)
    items = [contract_out(usage.contract_usage(scope.meter, c, scope.now.date()), q.unit)
             for c in found]
    set_total(response, len(items))
    return page_of(items, q.page, q.size)


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
    day = params.day(q.timestamp, scope.now.date())
    params.date_range(day, day, "timestamp", "timestamp")
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


def _breakdown(
    scope: Scope, contract: Contract, scope_key: str, q: BreakdownQuery, response: Response
) -> list[DayOut]:
    today = scope.now.date()
    start, end = params.date_range(
        params.day(q.start_time, contract.term(today).start), params.day(q.end_time, today),
        "startTime", "endTime",
    )
    days = usage.daily_series(scope.meter, contract, scope_key, start, end, scope.now)
    set_total(response, len(days))
    return [day_out(d, q.unit) for d in page_of(days, q.page, q.size)]


@router.get("/{contractId}/consumption/api-owner", response_model=list[DayOut],
            summary="Daily breakdown of the API owner's scope", responses=TOTAL_HEADER)
async def owner_breakdown(
    contract_id: ContractId, q: Annotated[BreakdownQuery, Query()], scope: READ,
    response: Response,
) -> list[DayOut]:
    return _breakdown(scope, the_contract(scope, contract_id), OWNER_SCOPE, q, response)


@router.get("/{contractId}/consumption/leaf-user/{leafUserId}", response_model=list[DayOut],
            summary="Daily breakdown of one Leaf user's scope", responses=TOTAL_HEADER)
async def user_breakdown(
    contract_id: ContractId, leaf_user_id: LeafUserId,
    q: Annotated[BreakdownQuery, Query()], scope: READ, response: Response,
) -> list[DayOut]:
    contract = the_contract(scope, contract_id)
    if leaf_user_id not in usage.leaf_users(scope.meter, contract):
        raise not_found("Leaf user")
    return _breakdown(scope, contract, user_scope(leaf_user_id), q, response)


@router.put("/{contractId}/quota", response_model=ContractOut, status_code=202,
            summary="Admin: set the contract's quota per term")
async def put_quota(
    contract_id: ContractId, body: QuotaIn, q: Annotated[BillingQuery, Query()],
    scope: ADMIN,
) -> ContractOut:
    """Sent in-stream to the owner's partition; the reply is the contract as it will be."""
    contract = the_contract(scope, contract_id)
    quota_m2 = None if body.quota is None else to_m2(body.quota, body.unit)
    message = QuotaMessage(contract_id=contract.contract_id, quota_m2=quota_m2, now=scope.now)
    await scope.api.send(contract.api_owner, dumps(message.model_dump(mode="json")))
    pending = usage.contract_usage(scope.meter, contract.with_quota(quota_m2), scope.now.date())
    return contract_out(pending, q.unit)
