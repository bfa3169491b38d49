"""Input event envelope published by the platform's processing services (SPEC §5)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

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


MAX_ID_LENGTH = 256
MAX_OWNER_LENGTH = 320  # an e-mail address can be this long (RFC 3696 errata)
# Unicode category Cc: C0 controls, DEL and C1 controls. "\x1f" separates the parts of
# state keys, and no control character has any business in an identifier.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _id_check(max_length: int) -> AfterValidator:
    """One error type (`invalid_id`) for every id rule, so ingest can name the reason."""

    def check(value: str) -> str:
        if not value:
            raise PydanticCustomError("invalid_id", "id is empty")
        if len(value) > max_length:
            raise PydanticCustomError(
                "invalid_id", "id is longer than {limit} characters", {"limit": max_length}
            )
        found = CONTROL_CHARACTERS.search(value)
        if found:
            raise PydanticCustomError(
                "invalid_id",
                "id contains control character {char}",
                {"char": f"U+{ord(found.group()):04X}"},
            )
        return value

    return AfterValidator(check)


Id = Annotated[str, _id_check(MAX_ID_LENGTH)]
OwnerId = Annotated[str, _id_check(MAX_OWNER_LENGTH)]


class EventEnvelope(BaseModel):
    """Everything of an event but its geometry: what travels on once geometry is normalised."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    id: Id
    type: EventType
    timestamp: datetime
    api_owner: OwnerId
    leaf_user_id: Id
    status: Literal["SUCCESS", "FAILED"] = "SUCCESS"
    field_id: Id | None = None
    file_id: Id | None = None
    operation_id: Id | None = None
    image_id: Id | None = None
    provider: Literal["planet", "sentinel"] | None = None

    @field_validator("timestamp")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        """Naive timestamps are ambiguous for day boundaries, so they are read as UTC.

        0001-01-01T00:30+01:00 is a valid datetime whose UTC form is not: the overflow
        becomes a validation error of its own type, which ingest turns into a reason.
        """
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise PydanticCustomError(
                "timestamp_out_of_range", "timestamp cannot be represented in UTC"
            ) from None


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
