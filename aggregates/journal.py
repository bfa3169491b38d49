"""A message's writes for one owner, all or nothing.

A crash loses a suffix of a changelog partition, so it can keep half of one message's
writes. Replayed on that half, an event saw as new the area its first pass had moved
between days (it had deleted the old piece, not yet stored the new one) and its record
claimed area another event's record already held. So each owner's writes of a message
are bracketed: first the owner's journal record holding the before-image of every key
they change, then the writes, then the journal record again, closed, naming the message
as applied. A rebuild puts back the before-images of a journal left open; the replay
then starts from exactly the state the first pass saw. The applied offset also tells a
replayed tick which owners it has already changed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence

from aggregates.state import SEP, Kind, Write, key, split_key

JOURNAL_PREFIX = Kind.JOURNAL.value + SEP  # every journal key starts so, and no other

_OPEN, _CLOSED = b"U", b"D"
_SEQ = struct.Struct(">q")
_LEN = struct.Struct(">i")  # -1: the key did not exist


def bracket(
    writes: Sequence[Write], seq: int, before: Callable[[str], bytes | None]
) -> list[Write]:
    """`writes` of message `seq`, each owner's between its open and closed journal.
    `before` reads the store as it is before any of them; owners keep their own order."""
    groups: dict[str, list[Write]] = {}
    for write in writes:
        groups.setdefault(split_key(write[0])[1], []).append(write)
    out: list[Write] = []
    for owner, group in groups.items():
        journal = key(Kind.JOURNAL, owner)
        images = {k: before(k) for k in dict.fromkeys(k for k, _ in group)}
        out.append((journal, _encode_open(seq, images)))
        out.extend(group)
        out.append((journal, _CLOSED + _SEQ.pack(seq)))
    return out


def repairs(journals: Iterable[tuple[str, bytes]]) -> list[Write]:
    """What puts back every change of a message a crash cut short, and closes its
    journal as applied up to the message before it."""
    out: list[Write] = []
    for journal, value in journals:
        if value[:1] == _OPEN:
            seq, images = _decode_open(value)
            out.extend(images)
            out.append((journal, _CLOSED + _SEQ.pack(seq - 1)))
    return out


def applied(value: bytes) -> int:
    """The last message whose writes for the owner are all stored (open: the one before)."""
    (seq,) = _SEQ.unpack_from(value, 1)
    return int(seq) if value[:1] == _CLOSED else int(seq) - 1


def _encode_open(seq: int, images: dict[str, bytes | None]) -> bytes:
    parts = [_OPEN, _SEQ.pack(seq)]
    for k, v in images.items():
        raw = k.encode()
        parts += [_LEN.pack(len(raw)), raw]
        parts += [_LEN.pack(-1)] if v is None else [_LEN.pack(len(v)), v]
    return b"".join(parts)


def _decode_open(value: bytes) -> tuple[int, list[Write]]:
    (seq,) = _SEQ.unpack_from(value, 1)
    at, images = 1 + _SEQ.size, []
    while at < len(value):
        k, at = _chunk(value, at)
        v, at = _chunk(value, at)
        assert k is not None
        images.append((k.decode(), v))
    return int(seq), images


def _chunk(value: bytes, at: int) -> tuple[bytes | None, int]:
    (size,) = _LEN.unpack_from(value, at)
    at += _LEN.size
    if size < 0:
        return None, at
    return value[at : at + size], at + size
