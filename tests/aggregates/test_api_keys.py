"""An API key's record: created once, used forward only, revoked for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aggregates.api_keys import (
    KeyAction,
    KeyRecord,
    changed,
    decode,
    encode,
    owner_range,
    record_key,
)
from aggregates.state import dump

SHA = "ab" * 32
T = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_create_then_uses_then_revoke() -> None:
    made = changed(KeyAction.CREATE, SHA, T, None)
    assert made == KeyRecord(SHA, T) and made.active and made.key_id == SHA[:16]
    assert changed(KeyAction.CREATE, SHA, T + timedelta(1), made) is None
    used = changed(KeyAction.USED, SHA, T + timedelta(minutes=5), made)
    assert used is not None and used.last_used_at == T + timedelta(minutes=5)
    assert changed(KeyAction.USED, SHA, T + timedelta(minutes=4), used) is None  # late report
    revoked = changed(KeyAction.REVOKE, SHA, T + timedelta(hours=1), used)
    assert revoked is not None and not revoked.active
    assert revoked.last_used_at == used.last_used_at and revoked.created_at == T


def test_a_revoked_or_missing_key_stays_as_it_is() -> None:
    revoked = KeyRecord(SHA, T, None, T + timedelta(hours=1))
    for action in KeyAction:
        assert changed(action, SHA, T + timedelta(hours=2), revoked) is None
    assert changed(KeyAction.USED, SHA, T, None) is None
    assert changed(KeyAction.REVOKE, SHA, T, None) is None


def test_records_round_trip_and_old_records_read() -> None:
    full = KeyRecord(SHA, T, T + timedelta(minutes=1), T + timedelta(minutes=2))
    assert decode(SHA, encode(full)) == full
    assert decode(SHA, dump({"createdAt": T.isoformat()})) == KeyRecord(SHA, T)


def test_an_owners_range_holds_its_keys_and_no_other_owners() -> None:
    lo, hi = owner_range("o@x")
    assert lo <= record_key("o@x", SHA) < hi
    for other in ("o@", "o@xy", "o@x\x1e", "o@x ", "p"):
        assert not lo <= record_key(other, SHA) < hi, other
