"""How metering state splits into small records, each written on its own.

Every record lives under one key in one Faust table, so all the writes an event causes go
to one changelog partition in order. The event's marker is written last: if it survived a
crash, everything before it did too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from aggregates.contracts import Contract
from aggregates.products import Product
from aggregates.snapshots import Emitted

SEP = "\x1f"


class Kind(StrEnum):
    """The first field of every key: what kind of record it holds."""

    CONTRACT = "c"
    PIECE = "p"
    LIVE = "l"
    EVENT = "e"
    SEEDED = "t"
    SNAPSHOT = "s"
    ALERTED = "q"
    API_KEY = "k"  # hashed API key of an owner (streams.api.keys); Meter ignores it


def key(kind: Kind, *parts: object) -> str:
    return SEP.join((kind.value, *(str(p) for p in parts)))


def split_key(raw: str) -> tuple[Kind, list[str]]:
    head, *parts = raw.split(SEP)
    return Kind(head), parts


def dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def load(raw: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw)
    return loaded


def encode_contract(c: Contract) -> bytes:
    return dump(
        {
            "apiOwner": c.api_owner,
            "product": c.product.value,
            "start": c.start.isoformat(),
            "quotaM2": c.quota_m2,
        }
    )


def decode_contract(contract_id: str, raw: bytes) -> Contract:
    v = load(raw)
    return Contract(
        contract_id,
        v["apiOwner"],
        Product(v["product"]),
        date.fromisoformat(v["start"]),
        v["quotaM2"],
    )


@dataclass(frozen=True, slots=True)
class LiveEntry:
    """A boundary's latest version; deleted ones stay as tombstones.

    The tombstone keeps the time so an older update arriving late cannot resurrect it,
    and `event_id` with the deltas let a replayed event find the change it already made
    in the user's and in the owner's union.
    """

    timestamp: str
    event_id: str
    delta_user_m2: float
    delta_owner_m2: float
    wkb: bytes | None


def encode_live(e: LiveEntry) -> bytes:
    return dump(
        {
            "ts": e.timestamp,
            "eventId": e.event_id,
            "deltas": [e.delta_user_m2, e.delta_owner_m2],
            "wkb": e.wkb.hex() if e.wkb is not None else None,
        }
    )


def decode_live(raw: bytes) -> LiveEntry:
    v = load(raw)
    wkb = bytes.fromhex(v["wkb"]) if v["wkb"] is not None else None
    return LiveEntry(v["ts"], v["eventId"], v["deltas"][0], v["deltas"][1], wkb)


def encode_emitted(e: Emitted) -> bytes:
    return dump({"r": e.revision, "a": e.added_m2, "t": e.total_m2, "f": e.final})


def decode_emitted(raw: bytes) -> Emitted:
    v = load(raw)
    return Emitted(v["r"], v["a"], v["t"], v["f"])
