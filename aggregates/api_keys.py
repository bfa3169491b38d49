"""An owner API key's record: created, last used, revoked.

The record lives under `k␟apiOwner␟sha256` in the owner's partition of the state table
and is changed only by commands on the metering topic, so every change is ordered with
the owner's other state and replayed identically. A revoked key keeps its record, so
the owner can still see when it was made, last used and revoked; the secret itself is
never stored, only its sha256.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from aggregates.state import Kind, dump, key, load

KEY_ID_HEX = 16  # the fingerprint prefix a key is listed and revoked by


class KeyAction(StrEnum):
    CREATE = "create"
    REVOKE = "revoke"
    USED = "used"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    sha256: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def key_id(self) -> str:
        return self.sha256[:KEY_ID_HEX]

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def record_key(api_owner: str, sha256: str) -> str:
    return key(Kind.API_KEY, api_owner, sha256)


def owner_range(api_owner: str) -> tuple[str, str]:
    """[lo, hi) of the owner's key records in the table's key order."""
    lo = key(Kind.API_KEY, api_owner, "")
    return lo, lo[:-1] + chr(ord(lo[-1]) + 1)


def encode(record: KeyRecord) -> bytes:
    value = {"createdAt": record.created_at.isoformat()}
    if record.last_used_at is not None:
        value["lastUsedAt"] = record.last_used_at.isoformat()
    if record.revoked_at is not None:
        value["revokedAt"] = record.revoked_at.isoformat()
    return dump(value)


def decode(sha256: str, raw: bytes) -> KeyRecord:
    """Records written before keys could be revoked hold only `createdAt`."""
    value = load(raw)
    return KeyRecord(sha256, datetime.fromisoformat(value["createdAt"]),
                     _time(value.get("lastUsedAt")), _time(value.get("revokedAt")))


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def changed(
    action: KeyAction, sha256: str, now: datetime, current: KeyRecord | None
) -> KeyRecord | None:
    """The record after `action`, or None when nothing is to be written.

    Creating an existing key, revoking a missing or revoked one, and a use of a missing
    or revoked key change nothing: a use reported just before the revocation must not
    bring the key back. Last-used only moves forward, as uses may be reported late.
    """
    if action is KeyAction.CREATE:
        return KeyRecord(sha256, now) if current is None else None
    if current is None or not current.active:
        return None
    if action is KeyAction.REVOKE:
        return replace(current, revoked_at=now)
    if current.last_used_at is not None and current.last_used_at >= now:
        return None
    return replace(current, last_used_at=now)
