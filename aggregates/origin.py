"""The event that first counted a piece of ground, stored in the piece itself.

"Explain my bill" names, for any point of a counted area, the event, Leaf user, event
time and type that counted it. Keeping that in each piece costs one short string per
piece and no lookup at all; the piece's header, which a rebuild reads, stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aggregates.state import join_parts, split_parts


@dataclass(frozen=True, slots=True)
class Origin:
    event_id: str
    leaf_user_id: str
    event_type: str
    timestamp: datetime

    def encode(self) -> bytes:
        """Escaped parts, so an id holding the separator still splits back as it was."""
        parts = (self.event_id, self.leaf_user_id, self.event_type, self.timestamp.isoformat())
        return join_parts(*parts).encode()


def decode_origin(raw: bytes) -> Origin | None:
    """None for a piece stored before pieces kept their origin."""
    if not raw:
        return None
    event_id, user, event_type, at = split_parts(raw.decode())
    return Origin(event_id, user, event_type, datetime.fromisoformat(at))
