"""What the CSV exports hold, in m², before any unit or text: a scope's days with the
revision last sent for each, and a contract term's report per Leaf user.

The term report (the "CSM report") needs each user's events and first and last activity
in the term, which only the usage records hold: `TermTally` takes them one at a time, so
the caller decides how a term of a million records is read (the API yields the event loop
between pages of them) and nothing here keeps more than a line per user.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from aggregates.contracts import OWNER_SCOPE, Contract, user_scope
from aggregates.periods import Term
from aggregates.records import UsageRecord
from aggregates.usage import DayUsage, daily_series, leaf_users

if TYPE_CHECKING:
    from aggregates.meter import Meter


@dataclass(frozen=True, slots=True)
class ScopeDay:
    """One day of a scope as `/consumption/api-owner` or `/leaf-user/{id}` states it, and
    the revision of the last snapshot `usage.consumption-daily` carried for it (None: no
    snapshot yet, e.g. an idle day, or one still waiting for the next tick)."""

    leaf_user_id: str | None
    day: DayUsage
    revision: int | None


def scope_days(
    meter: Meter, contract: Contract, leaf_user_id: str | None, start: date, end: date,
    now: datetime,
) -> Iterator[ScopeDay]:
    """The same zero-filled series the JSON breakdown pages through, every day of it."""
    scope = OWNER_SCOPE if leaf_user_id is None else user_scope(leaf_user_id)
    for d in daily_series(meter, contract, scope, start, end, now):
        revision = meter.snapshots.revision(contract.contract_id, scope, d.day)
        yield ScopeDay(leaf_user_id, d, revision)


@dataclass(slots=True)
class Activity:
    """A scope's events of one product in a term, and when the first and last happened."""

    events: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, at: datetime) -> None:
        self.events += 1
        self.first = at if self.first is None or at < self.first else self.first
        self.last = at if self.last is None or at > self.last else self.last


@dataclass(slots=True)
class TermTally:
    """Counts the usage records that metered `product`, per Leaf user and for the owner.

    A record counts when the product is among those it measured area for, whatever the
    area (an event inside ground already counted is still activity); duplicates and
    failures measure nothing and do not count.
    """

    product: str
    owner: Activity = field(default_factory=Activity)
    users: dict[str, Activity] = field(default_factory=dict)

    def add(self, record: UsageRecord) -> None:
        if self.product not in record.by_product:
            return
        self.owner.add(record.timestamp)
        self.users.setdefault(record.leaf_user_id, Activity()).add(record.timestamp)

    def add_all(self, records: Iterable[UsageRecord]) -> TermTally:
        for record in records:
            self.add(record)
        return self


def record_days(term: Term) -> tuple[date | None, date]:
    """The days whose usage records belong to a term: term 0 also holds late events
    dated before the contract's start (`aggregates.periods.term_for`)."""
    return (None if term.index == 0 else term.start), term.last_day


@dataclass(frozen=True, slots=True)
class ReportLine:
    """The owner's line (`leaf_user_id` None) or one Leaf user's, for one term.

    `share_percent` is of the owner's unique area: users' shares add up to more than
    100 % by exactly the area several of them processed.
    """

    leaf_user_id: str | None
    unique_m2: float
    share_percent: float
    activity: Activity


@dataclass(frozen=True, slots=True)
class TermReport:
    contract: Contract
    term: Term
    lines: list[ReportLine]


def term_report(
    meter: Meter, contract: Contract, term: Term, tally: TermTally,
    leaf_user_id: str | None = None,
) -> TermReport:
    """The owner's line, then every user with area or events in the term, largest unique
    area first (ties by id); for one `leaf_user_id`, that user's line alone.

    AUDIT's unions are live and span terms: its unique areas are the live ones; the
    events are still the term's.
    """
    ledger = term.index if contract.product.period_bounded else 0
    cid = contract.contract_id
    owner_m2 = meter.total_m2(cid, ledger, OWNER_SCOPE)

    def line(user: str | None, m2: float, activity: Activity) -> ReportLine:
        share = 100.0 * m2 / owner_m2 if owner_m2 > 0 else 0.0
        return ReportLine(user, m2, share, activity)

    if leaf_user_id is not None:
        m2 = meter.total_m2(cid, ledger, user_scope(leaf_user_id))
        found = tally.users.get(leaf_user_id, Activity())
        return TermReport(contract, term, [line(leaf_user_id, m2, found)])
    users = {u: meter.total_m2(cid, ledger, user_scope(u)) for u in leaf_users(meter, contract)}
    for user in tally.users:
        users.setdefault(user, 0.0)
    active = [(u, m2) for u, m2 in users.items() if m2 != 0.0 or u in tally.users]
    active.sort(key=lambda t: (-t[1], t[0]))
    lines = [line(None, owner_m2, tally.owner)]
    lines += [line(u, m2, tally.users.get(u, Activity())) for u, m2 in active]
    return TermReport(contract, term, lines)
