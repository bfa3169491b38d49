"""/billing endpoints (camelCase): contracts, their daily consumption and quotas."""

from __future__ import annotations

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
from streams.api.core import Call, Endpoint, Reply, page_of
from streams.api.errors import not_found


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


def the_contract(call: Call) -> Contract:
    contract = usage.find_contract(call.meter, call.owner, call.path["contractId"])
    if contract is None:
        raise not_found("contract")
    return contract


async def list_contracts(call: Call) -> Reply:
    q: ContractsQuery = call.query
    assert call.owner is not None
    found = usage.owner_contracts(call.meter, call.owner, q.product)
    items = [contract_out(usage.contract_usage(call.meter, c, call.now.date()), q.unit)
             for c in found]
    return Reply(page_of(items, q.page, q.size), total=len(items))


async def get_contract(call: Call) -> Reply:
    u = usage.contract_usage(call.meter, the_contract(call), call.now.date())
    return Reply(contract_out(u, call.query.unit))


async def consumption(call: Call) -> Reply:
    q: ConsumptionQuery = call.query
    contract = the_contract(call)
    day = params.day(q.timestamp, call.now.date())
    params.date_range(day, day, "timestamp", "timestamp")
    c = usage.consumption_on(call.meter, contract, day, call.now)
    users = [scope_day_out(u, d, q.unit) for u, d in c.users]
    return Reply(ConsumptionOut(
        contract_id=contract.contract_id, api_owner=contract.api_owner,
        product=contract.product, date=day, term=term_out(c.term),
        owner=scope_day_out(None, c.owner, q.unit), leaf_users=page_of(users, q.page, q.size),
        leaf_user_count=len(users), leaf_users_total_area=convert(c.users_total_m2, q.unit),
        overlap_area=convert(c.overlap_m2, q.unit),
        quota=None if contract.quota_m2 is None else convert(contract.quota_m2, q.unit),
        unit=q.unit,
    ), total=len(users))


def _breakdown(call: Call, scope: str) -> Reply:
    q: BreakdownQuery = call.query
    contract = the_contract(call)
    today = call.now.date()
    start, end = params.date_range(
        params.day(q.start_time, contract.term(today).start), params.day(q.end_time, today),
        "startTime", "endTime",
    )
    days = usage.daily_series(call.meter, contract, scope, start, end, call.now)
    return Reply([day_out(d, q.unit) for d in page_of(days, q.page, q.size)], total=len(days))


async def owner_breakdown(call: Call) -> Reply:
    return _breakdown(call, OWNER_SCOPE)


async def user_breakdown(call: Call) -> Reply:
    if call.path["leafUserId"] not in usage.leaf_users(call.meter, the_contract(call)):
        raise not_found("Leaf user")
    return _breakdown(call, user_scope(call.path["leafUserId"]))


async def put_quota(call: Call) -> Reply:
    """Sent in-stream to the owner's partition; the reply is the contract as it will be."""
    body: QuotaIn = call.body
    contract = the_contract(call)
    quota_m2 = None if body.quota is None else to_m2(body.quota, body.unit)
    message = QuotaMessage(contract_id=contract.contract_id, quota_m2=quota_m2, now=call.now)
    await call.api.send(contract.api_owner, dumps(message.model_dump(mode="json")))
    pending = usage.contract_usage(call.meter, contract.with_quota(quota_m2), call.now.date())
    return Reply(contract_out(pending, call.query.unit), status=202)


CONTRACT = "/billing/contracts/{contractId}"
ENDPOINTS = [
    Endpoint("GET", "/billing/contracts", "List contracts", list_contracts, list[ContractOut],
             ContractsQuery, paged=True, tag="billing"),
    Endpoint("GET", CONTRACT, "One contract with its current term, quota and usage",
             get_contract, ContractOut, BillingQuery, tag="billing"),
    Endpoint("GET", f"{CONTRACT}/consumption",
             "One day's consumption: the API owner's and every Leaf user's", consumption,
             ConsumptionOut, ConsumptionQuery, paged=True, tag="billing"),
    Endpoint("GET", f"{CONTRACT}/consumption/api-owner",
             "Daily breakdown of the API owner's scope", owner_breakdown, list[DayOut],
             BreakdownQuery, paged=True, tag="billing"),
    Endpoint("GET", f"{CONTRACT}/consumption/leaf-user/{{leafUserId}}",
             "Daily breakdown of one Leaf user's scope", user_breakdown, list[DayOut],
             BreakdownQuery, paged=True, tag="billing"),
    Endpoint("PUT", f"{CONTRACT}/quota", "Admin: set the contract's quota per term", put_quota,
             ContractOut, BillingQuery, QuotaIn, status=202, admin_only=True, tag="billing"),
]
