"""Quota threshold crossings: which alerts a change in usage owes (SPEC §5 usage.alerts),
and the book of what each contract term has announced, with its stored record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from aggregates.contracts import Contract
from aggregates.periods import Term
from aggregates.records import QuotaAlert
from aggregates.state import Kind, Write, dump, key, load

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


@dataclass(frozen=True, slots=True)
class AlertState:
    """The highest threshold announced in a term, and the alerts that announced it."""

    level: int
    seq: int
    alerts: tuple[QuotaAlert, ...]


def encode_alerts(state: AlertState) -> bytes:
    return dump(
        {
            "level": state.level,
            "seq": state.seq,
            "alerts": [
                {
                    "contractId": a.contract_id,
                    "apiOwner": a.api_owner,
                    "product": a.product,
                    "termStart": a.term_start.isoformat(),
                    "termEnd": a.term_end.isoformat(),
                    "threshold": a.threshold_percent,
                    "usedM2": a.used_m2,
                    "quotaM2": a.quota_m2,
                    "at": a.emitted_at.isoformat(),
                }
                for a in state.alerts
            ],
        }
    )


def decode_alerts(raw: bytes) -> AlertState:
    v = load(raw)
    alerts = tuple(
        QuotaAlert(
            a["contractId"],
            a["apiOwner"],
            a["product"],
            date.fromisoformat(a["termStart"]),
            date.fromisoformat(a["termEnd"]),
            a["threshold"],
            a["usedM2"],
            a["quotaM2"],
            datetime.fromisoformat(a["at"]),
        )
        for a in v["alerts"]
    )
    return AlertState(v["level"], v["seq"], alerts)


@dataclass
class Announcement:
    """Alerts a change in usage owes, and the write that stores them with their level."""

    alerts: list[QuotaAlert] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


class AlertBook:
    """The highest threshold announced per contract term, so each is announced once.

    The alerts ride along with the level in the stored record, stamped with the input
    that raised them, so a rebuild can send them if the stream layer had not yet.
    """

    def __init__(self) -> None:
        self._states: dict[tuple[str, int], AlertState] = {}

    def check(
        self, contract: Contract, term: Term, used_m2: float, now: datetime, seq: int
    ) -> Announcement:
        state = self._states.get((contract.contract_id, term.index))
        return self._announce(contract, term, used_m2, state.level if state else 0, now, seq)

    def restart(
        self, contract: Contract, term: Term, used_m2: float, now: datetime, seq: int
    ) -> Announcement:
        """A new limit: every threshold it is already past is announced again."""
        cleared = self._remember(contract, term.index, AlertState(0, seq, ()))
        announced = self._announce(contract, term, used_m2, 0, now, seq)
        announced.writes.insert(0, cleared)
        return announced

    def unsent(self, sent_up_to: Callable[[str], int]) -> list[QuotaAlert]:
        """Alerts stored by inputs after the owner's last known send."""
        return [
            alert
            for _, state in sorted(self._states.items())
            for alert in state.alerts
            if state.seq > sent_up_to(alert.api_owner)
        ]

    def restore(self, kind: Kind, parts: list[str], value: bytes) -> bool:
        if kind is not Kind.ALERTED:
            return False
        self._states[(parts[0], int(parts[1]))] = decode_alerts(value)
        return True

    def _announce(
        self,
        contract: Contract,
        term: Term,
        used_m2: float,
        previous: int,
        now: datetime,
        seq: int,
    ) -> Announcement:
        crossed = new_crossings(previous, used_m2, contract.quota_m2)
        if not crossed:
            return Announcement()
        assert contract.quota_m2 is not None
        alerts = [
            QuotaAlert(
                contract.contract_id,
                contract.api_owner,
                contract.product.value,
                term.start,
                term.end,
                threshold,
                used_m2,
                contract.quota_m2,
                now,
            )
            for threshold in crossed
        ]
        state = AlertState(crossed[-1], seq, tuple(alerts))
        return Announcement(alerts, [self._remember(contract, term.index, state)])

    def _remember(self, contract: Contract, term: int, state: AlertState) -> Write:
        self._states[(contract.contract_id, term)] = state
        return key(Kind.ALERTED, contract.api_owner, contract.contract_id, term), encode_alerts(
            state
        )
