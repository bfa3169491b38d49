"""What metering tells the outside world: records, daily snapshots and quota alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from shapely.geometry.base import BaseGeometry

from aggregates.contracts import OWNER_SCOPE


@dataclass(frozen=True, slots=True)
class MeterEvent:
    """A validated input event with its geometry already normalised."""

    event_id: str
    type: str
    timestamp: datetime
    api_owner: str
    leaf_user_id: str
    status: str = "SUCCESS"
    field_id: str | None = None
    provider: str | None = None
    geometry: BaseGeometry | None = None


@dataclass(frozen=True, slots=True)
class ProductArea:
    """Area one event added to one product, in the user's and in the owner's union."""

    user_m2: float
    owner_m2: float


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One per input event, counted or not, so every event is accounted for."""

    event_id: str
    type: str
    timestamp: datetime
    api_owner: str
    leaf_user_id: str
    products: list[str]
    status: str
    counted: bool
    area_added_user_m2: float
    area_added_owner_m2: float
    reason: str | None = None
    by_product: dict[str, ProductArea] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DailySnapshot:
    """Consumption of one scope on one day; keyed so compaction keeps the latest revision."""

    contract_id: str
    api_owner: str
    scope: str
    product: str
    date: date
    area_added_m2: float
    total_area_m2: float
    quota_m2: float | None
    final: bool
    revision: int
    emitted_at: datetime

    @property
    def leaf_user_id(self) -> str | None:
        return None if self.scope == OWNER_SCOPE else self.scope.removeprefix("leaf-user:")

    @property
    def key(self) -> str:
        return f"{self.contract_id}:{self.scope}:{self.date.isoformat()}"


@dataclass(frozen=True, slots=True)
class QuotaAlert:
    """A quota threshold crossed in a term; sent once per threshold and term."""

    contract_id: str
    api_owner: str
    product: str
    term_start: date
    term_end: date
    threshold_percent: int
    used_m2: float
    quota_m2: float
    emitted_at: datetime
