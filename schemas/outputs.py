"""Output topic values (SPEC §5): camelCase JSON, one model per topic."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    """camelCase on the wire, snake_case in Python, built from domain dataclasses."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)

    def to_wire(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


class ProductAreaOut(Wire):
    user_m2: float
    owner_m2: float


class UsageRecordOut(Wire):
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
    reason: str | None
    by_product: dict[str, ProductAreaOut]


class DailySnapshotOut(Wire):
    contract_id: str
    api_owner: str
    leaf_user_id: str | None
    scope: str
    product: str
    date: date
    area_added_m2: float
    total_area_m2: float
    quota_m2: float | None
    final: bool
    revision: int
    emitted_at: datetime


class QuotaAlertOut(Wire):
    contract_id: str
    api_owner: str
    product: str
    term_start: date
    term_end: date
    threshold_percent: int
    used_m2: float
    quota_m2: float
    emitted_at: datetime


class DeadLetterOut(Wire):
    """The original record, cut to a size the broker accepts; size and sha256 are always
    those of the whole original, so a truncated payload can still be matched to it."""

    error: str
    reason: str
    topic: str
    partition: int
    offset: int
    payload: str
    payload_encoding: str
    payload_truncated: bool
    payload_size: int
    payload_sha256: str
