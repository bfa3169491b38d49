"""`/health` (liveness) and `/ready` (readiness) for supervisors, load balancers and
`make run`: public, no key, JSON.

`/health` answers 200 while the event loop does. `/ready` answers 200 only when this
worker owns partitions, has built the metering state of each owned metering partition
from a fully recovered table, and has caught up on them (lag at most
`ready_max_lag`); otherwise 503 with what is not ready and why. A worker that
answers the API with stale data during recovery is alive, not ready.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from schemas.api import HealthOut, ReadyOut
from streams.lag import Partition, caught_up
from streams.runtime import Runtime
from streams.watchdog import PartitionWatch


@dataclass(frozen=True)
class NotReady:
    reason: str
    topic: str | None = None
    partition: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": self.reason}
        if self.topic is not None:
            body.update(topic=self.topic, partition=self.partition)
        return body


def not_ready(
    *,
    assigned: Set[Partition],
    rebalancing: bool,
    lag: Mapping[Partition, int] | None,
    state_ready: Mapping[int, bool],
    metering_topic: str,
    max_lag: int,
) -> list[NotReady]:
    """Everything standing between this worker and ready; empty means ready.
    `lag` is None when it could not be read: unknown lag is not caught up."""
    problems = []
    if rebalancing:
        problems.append(NotReady("rebalancing"))
    if not assigned:
        problems.append(NotReady("no partitions assigned"))
    if lag is None:
        problems.append(NotReady("lag unknown: offsets could not be read from the broker"))
    for topic, number in sorted(assigned):
        if topic == metering_topic and not state_ready.get(number, False):
            problems.append(
                NotReady("metering state not built from a recovered table", topic, number)
            )
        behind = (lag or {}).get((topic, number), 0)
        if not caught_up(behind, max_lag):
            problems.append(NotReady(f"lag {behind} > {max_lag}", topic, number))
    return problems


def lag_summary(lag: Mapping[Partition, int] | None, metering_topic: str) -> dict[str, int]:
    """Group-wide lag, so a caller can show progress: metering and input topics."""
    lag = lag or {}
    metering = sum(v for (topic, _), v in lag.items() if topic == metering_topic)
    return {"metering": metering, "inputs": sum(lag.values()) - metering}


def router(rt: Runtime, watch: PartitionWatch) -> APIRouter:
    metering_topic = rt.metering.get_topic_name()
    routes = APIRouter(tags=["operations"])

    @routes.get("/health", response_model=HealthOut, summary="Liveness: the event loop answers")
    async def health() -> HealthOut:
        return HealthOut(status="ok")

    @routes.get("/ready", response_model=ReadyOut, summary="Readiness: assigned, recovered, "
                "caught up", responses={503: {"model": ReadyOut, "description": "Not ready"}})
    async def ready() -> JSONResponse:
        lag = watch.offsets.lag() if watch.read_ok and watch.offsets else None
        assigned = watch.assigned()
        problems = not_ready(
            assigned=assigned,
            rebalancing=watch.rebalancing,
            lag=lag,
            state_ready=rt.holder.readiness(),
            metering_topic=metering_topic,
            max_lag=rt.settings.ready_max_lag,
        )
        body = ReadyOut(
            status="not_ready" if problems else "ready",
            assigned=len(assigned),
            lag=lag_summary(lag, metering_topic),
            not_ready=[p.to_json() for p in problems],
        )
        return JSONResponse(body.model_dump(mode="json", exclude_none=True),
                            status_code=503 if problems else 200)

    return routes
