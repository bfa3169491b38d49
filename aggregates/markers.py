"""Usage records, and the marker that stores one with its event.

A metered event's marker is written with its other writes: it makes a replay of the event
recognisable (its seq and source) and keeps the record, so the usage history and the
records to send again survive restarts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aggregates.products import Product, products_for
from aggregates.records import MeterEvent, ProductArea, UsageRecord
from aggregates.state import dump


def record_for(
    ev: MeterEvent,
    products: list[str],
    counted: bool,
    by_product: dict[str, ProductArea],
    reason: str | None,
) -> UsageRecord:
    first = by_product.get(products[0], ProductArea(0.0, 0.0))
    return UsageRecord(
        ev.event_id,
        ev.type,
        ev.timestamp,
        ev.api_owner,
        ev.leaf_user_id,
        products
        + ([Product.UNIFIED_AREA.value] if Product.UNIFIED_AREA.value in by_product else []),
        ev.status,
        counted,
        first.user_m2,
        first.owner_m2,
        reason,
        by_product,
    )


def encode_marker(record: UsageRecord, seq: int, source: str | None) -> bytes:
    return dump(
        {
            "seq": seq,
            "src": source,
            "type": record.type,
            "ts": record.timestamp.isoformat(),
            "owner": record.api_owner,
            "user": record.leaf_user_id,
            "status": record.status,
            "counted": record.counted,
            "reason": record.reason,
            "areas": {p: [a.user_m2, a.owner_m2] for p, a in record.by_product.items()},
            "products": record.products,
        }
    )


# SPEC §2's order, the first a record names being its main product. Built once: every
# record an hourly series or a page of /usage/details reads is rebuilt here.
_ORDER = [p.value for p in Product]


def marker_area(raw: bytes, product: str) -> tuple[float, float] | None:
    """A product's (user, owner) area in a stored marker, None if the record names no
    area in it, read without decoding the marker: an hourly series reads thousands of
    markers for one number each, and decoding one and rebuilding its record was ~12 µs
    of the ~17 µs a record cost it. `dump` writes canonical JSON (sorted keys, no
    spaces), so `areas` comes first, and it holds arrays of numbers only: its object
    ends at the marker's first `}`, before any string a client chose."""
    name = _AREA_NAMES.get(product) or b'"' + product.encode() + b'":['
    at = raw.find(name, 0, raw.index(b"}"))
    if at < 0:
        return None
    start = at + len(name)
    user, owner = raw[start : raw.index(b"]", start)].split(b",")
    return float(user), float(owner)


_AREA_NAMES = {p.value: b'"' + p.value.encode() + b'":[' for p in Product}


def record_of_marker(event_id: str, marker: dict[str, Any]) -> UsageRecord:
    """The record an event produced, rebuilt from its marker so history survives restarts."""
    areas = {p: ProductArea(float(u), float(o)) for p, (u, o) in marker["areas"].items()}
    names = sorted((p for p in areas if p != Product.UNIFIED_AREA.value), key=_ORDER.index)
    names = names or products_of_type(str(marker["type"]))
    first = areas.get(names[0], ProductArea(0.0, 0.0)) if names else ProductArea(0.0, 0.0)
    unified = [Product.UNIFIED_AREA.value] if Product.UNIFIED_AREA.value in areas else []
    products = marker.get("products") or names + unified  # markers written before products
    return UsageRecord(
        event_id,
        str(marker["type"]),
        datetime.fromisoformat(str(marker["ts"])),
        str(marker["owner"]),
        str(marker["user"]),
        list(products),
        str(marker["status"]),
        bool(marker["counted"]),
        first.user_m2,
        first.owner_m2,
        marker.get("reason"),
        areas,
    )


def products_of_type(event_type: str) -> list[str]:
    """A failed satellite event's marker has no provider, so its product stays unknown."""
    try:
        return [p.value for p in products_for(event_type)]
    except ValueError:
        return []
