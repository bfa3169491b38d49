"""One owner's usage over a date range, broken down by product, Leaf user and event type,
with the newest records of the range.

Areas come from the ledgers' day totals (as `usage.summary` reads them), counts from the
usage history's per-day counts, and the newest records are one page of that history, so
a breakdown never reads every record of its range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from aggregates.products import EVENT_TYPES, Product
from aggregates.records import UsageRecord
from aggregates.usage import ProductSummary, owner_contracts, product_summary, users_added

if TYPE_CHECKING:
    from aggregates.meter import Meter

__all__ = ["Breakdown", "TypeCount", "UserUsage", "breakdown"]


@dataclass(frozen=True, slots=True)
class UserUsage:
    """What one Leaf user's unions grew by in the range, per product, and their records."""

    leaf_user_id: str
    added_m2: dict[Product, float]
    events: int


@dataclass(frozen=True, slots=True)
class TypeCount:
    """Usage records of one event type in the range, counted or not."""

    event_type: str
    events: int


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Every figure of one range; `users` whole, for the API to page, since their order
    depends on all of them."""

    products: list[ProductSummary]
    users: list[UserUsage]
    event_types: list[TypeCount]
    events: int
    recent: list[UsageRecord]


def breakdown(meter: Meter, api_owner: str, start: date, end: date, recent: int) -> Breakdown:
    """Users (those with area added or a record in the range) come largest first by what
    their UNIFIED_AREA union grew by, ties by id; their per-product figures are the ones
    the product summaries sum, their events sum to the range's."""
    products, added = [], {}
    for contract in owner_contracts(meter, api_owner):
        by_user = users_added(meter, contract, start, end)
        products.append(product_summary(meter, contract, start, end, by_user))
        added[contract.product] = by_user
    names = {u for by_user in added.values() for u in by_user} | meter.records.users(api_owner)
    users = [
        UserUsage(
            u,
            {p: by_user.get(u, 0.0) for p, by_user in added.items()},
            len(meter.records.select(api_owner, leaf_user_id=u, start=start, end=end)),
        )
        for u in sorted(names)
    ]
    users = [u for u in users if u.events or any(u.added_m2.values())]
    users.sort(key=lambda u: (-u.added_m2.get(Product.UNIFIED_AREA, 0.0), u.leaf_user_id))
    types = [
        TypeCount(t, len(meter.records.select(api_owner, event_type=t, start=start, end=end)))
        for t in EVENT_TYPES
    ]
    newest = meter.records.select(api_owner, start=start, end=end)
    return Breakdown(products, users, [t for t in types if t.events], len(newest),
                     list(newest[:recent]))
