"""Input event envelope published by the platform's processing services (SPEC §5)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

EventType = Literal[
    "fieldBoundaryCreated",
    "fieldBoundaryUpdated",
    "fieldBoundaryDeleted",
    "providerFileProcessingFinished",
    "operationProcessingFinished",
    "satelliteImageProcessingFinished",
]

TOPIC_TYPES: dict[str, frozenset[str]] = {
    "events.field-boundaries": frozenset(
        {"fieldBoundaryCreated", "fieldBoundaryUpdated", "fieldBoundaryDeleted"}
    ),
    "events.provider-files": frozenset({"providerFileProcessingFinished"}),
    "events.operations": frozenset({"operationProcessingFinished"}),
    "events.satellite": frozenset({"satelliteImageProcessingFinished"}),
}


class EventEnvelope(BaseModel):
    """Everything of an event but its geometry: what travels on once geometry is normalised."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    id: str = Field(min_length=1, max_length=256)
    type: EventType
    timestamp: datetime
    api_owner: str = Field(min_length=1, max_length=320)
    leaf_user_id: str = Field(min_length=1, max_length=256)
    status: Literal["SUCCESS", "FAILED"] = "SUCCESS"
    field_id: str | None = None
    file_id: str | None = None
    operation_id: str | None = None
    image_id: str | None = None
    provider: Literal["planet", "sentinel"] | None = None

    @field_validator("timestamp")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        """Naive timestamps are ambiguous for day boundaries, so they are read as UTC."""
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class InputEvent(EventEnvelope):
    """One processing event as upstream publishes it; camelCase on the wire."""

    geometry: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _required_by_type(self) -> InputEvent:
        """Each type names the object it measured; without it the record cannot be traced."""
        needs: dict[str, tuple[str, ...]] = {
            "fieldBoundaryCreated": ("field_id", "geometry"),
            "fieldBoundaryUpdated": ("field_id", "geometry"),
            "fieldBoundaryDeleted": ("field_id",),
            "providerFileProcessingFinished": ("file_id", "geometry"),
            "operationProcessingFinished": ("operation_id", "geometry"),
            "satelliteImageProcessingFinished": ("image_id", "provider", "geometry"),
        }
        missing = [name for name in needs[self.type] if getattr(self, name) is None]
        if missing and not (self.status == "FAILED" and missing == ["geometry"]):
            raise ValueError(f"{self.type} requires {', '.join(to_camel(m) for m in missing)}")
        return self
