"""Which billable products an event counts towards (SPEC §2)."""

from __future__ import annotations

from enum import StrEnum


class Product(StrEnum):
    """Product IDs as the platform's billing API names them."""

    FIELDS_BOUNDARY = "FIELDS_BOUNDARY"
    AUDIT_FIELDS_BOUNDARY = "AUDIT_FIELDS_BOUNDARY"
    OPERATIONS_FILE = "OPERATIONS_FILE"
    OPERATIONS_OPERATION = "OPERATIONS_OPERATION"
    SATELLITE_PROCESS_PLANET = "SATELLITE_PROCESS_PLANET"
    SATELLITE_PROCESS_SENTINEL = "SATELLITE_PROCESS_SENTINEL"
    UNIFIED_AREA = "UNIFIED_AREA"

    @property
    def period_bounded(self) -> bool:
        """AUDIT is the only live product: its union follows deletes, never resets."""
        return self is not Product.AUDIT_FIELDS_BOUNDARY


BOUNDARY_TYPES = frozenset({"fieldBoundaryCreated", "fieldBoundaryUpdated", "fieldBoundaryDeleted"})
# Every event type metering accepts (schemas.events.EventType, in SPEC §5's order).
EVENT_TYPES = (
    "fieldBoundaryCreated",
    "fieldBoundaryUpdated",
    "fieldBoundaryDeleted",
    "providerFileProcessingFinished",
    "operationProcessingFinished",
    "satelliteImageProcessingFinished",
)


def products_for(event_type: str, provider: str | None = None) -> tuple[Product, ...]:
    """The products whose union an event's geometry joins, before UNIFIED_AREA.

    A boundary delete is listed under AUDIT only: deleting never adds area to a term.
    """
    if event_type in ("fieldBoundaryCreated", "fieldBoundaryUpdated"):
        return (Product.FIELDS_BOUNDARY, Product.AUDIT_FIELDS_BOUNDARY)
    if event_type == "fieldBoundaryDeleted":
        return (Product.AUDIT_FIELDS_BOUNDARY,)
    if event_type == "providerFileProcessingFinished":
        return (Product.OPERATIONS_FILE,)
    if event_type == "operationProcessingFinished":
        return (Product.OPERATIONS_OPERATION,)
    if event_type == "satelliteImageProcessingFinished":
        if provider == "planet":
            return (Product.SATELLITE_PROCESS_PLANET,)
        if provider == "sentinel":
            return (Product.SATELLITE_PROCESS_SENTINEL,)
        raise ValueError(f"unknown satellite provider {provider!r}")
    raise ValueError(f"unknown event type {event_type!r}")
