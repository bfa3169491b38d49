"""How metering state splits into small records, each written on its own.

Every record lives under one key in one Faust table, so all the writes an event causes go
to one changelog partition in order. The event's marker is written last: if it survived a
crash, everything before it did too.

A key is its kind, then the API owner, then the record's own parts. The owner comes second
so a partition's records can be told apart by owner alone. Each part is escaped, so no
character an upstream id may hold (the separator included) can split a key differently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from enum import StrEnum
from typing import Any

from aggregates.contracts import Contract
from aggregates.products import Product

SEP = "\x1f"
_ESCAPES = (("%", "%25"), (SEP, "%1F"))


class Kind(StrEnum):
    """The first field of every key: what kind of record it holds."""

    CONTRACT = "c"
    PIECE = "p"
    LIVE = "l"
    LIVE_TOTAL = "a"  # area of a scope's live union, so a rebuild needs no union of it
    EVENT = "e"
    SEEDED = "t"
    SNAPSHOT = "s"
    ALERTED = "q"
    API_KEY = "k"  # hashed API key of an owner (streams.api.keys); Meter ignores it
    SENT = "o"  # how far an owner's outputs are known to have reached the broker
    VERSION = "v"  # one boundary version of a field, for clipping operations
    HELD = "h"  # an operation waiting for its field
    FAILED = "x"  # a FAILED event's record; it does not use up the event id
    AUDIT_DAY = "d"  # AUDIT's net change on one day, for one scope
    NOTICED = "n"  # when a FIELDS_BOUNDARY term's start was first seen passed, on a tick
    JOURNAL = "j"  # an owner's writes of one message: open with before-images, or closed
    RECORD = "r"  # a usage record, filed by event time for /usage/details (history.py)
    WEBHOOK = "w"  # an owner's webhook endpoint (aggregates/webhooks.py); Meter ignores it
    DELIVERY = "y"  # a webhook message still owed to an endpoint
    DELIVERY_LOG = "g"  # one attempt of a webhook delivery, for the delivery log
    COVERED = "f"  # the ground an event counted, filed by event time (coverage.py)


Write = tuple[str, bytes | None]  # a key and its new value; None deletes it
ReadKey = Callable[[str], bytes | None]  # the table's value at a key, None if absent
Scan = Callable[[str, str], Iterator[str]]  # the table's keys in [lo, hi), last first


def escape(part: object) -> str:
    """Every key is built here, on every read and write: ids without a `%` or a
    separator, nearly all of them, pass through untouched."""
    text = str(part)
    if "%" not in text and SEP not in text:
        return text
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


def unescape(part: str) -> str:
    """Every escape starts with `%`; a rebuild unescapes every part of every key."""
    if "%" not in part:
        return part
    for raw, escaped in reversed(_ESCAPES):
        part = part.replace(escaped, raw)
    return part


def join_parts(*parts: object) -> str:
    """Several ids as one string that splits back into exactly those ids."""
    return SEP.join(escape(p) for p in parts)


def split_parts(joined: str) -> list[str]:
    """A takeover splits every key: one without an escape, nearly all, splits as is."""
    if "%" not in joined:
        return joined.split(SEP)
    return [unescape(p) for p in joined.split(SEP)]


def key(kind: Kind, api_owner: str, *parts: object) -> str:
    return join_parts(kind.value, api_owner, *parts)


def split_key(raw: str) -> tuple[Kind, str, list[str]]:
    """Kind, API owner and the record's own parts of a key made by `key`; a takeover
    splits ~1M keys, so the kind is a dict lookup, not an Enum call."""
    head, owner, *parts = split_parts(raw)
    return _KINDS.get(head) or Kind(head), owner, parts


_KINDS = {kind.value: kind for kind in Kind}


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
