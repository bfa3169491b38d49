"""Guards around Faust's offset commits, which lose events under at-least-once delivery.
All were found by the fault matrix (tests/integration/test_fault_matrix.py).

Faust commits, per partition, the end of the first run of consecutive acked offsets
(`Consumer._new_offset`). Four holes let a commit pass records never processed:

1. Its head check is off by one (`min(acked) - committed > 1`, faust-streaming
   #312/#313): an ack at committed+1 commits past the message at `committed`.
2. It has no head check at all where the group has never committed (None) or committed
   offset 0 (falsy): the first acks of a fresh partition are trusted whatever they are.
3. It fills "gaps" the fetcher inferred from a jump in offsets, meant for compacted or
   transactional topics. Ours are neither, so a jump means records were not fetched.
4. Records the client fetched while Faust had their partition paused (a recovery) are
   dropped, and the seek after recovery only rewinds partitions with a committed offset
   (`perform_seek`); a partition never committed stays past them. That is how the first
   records of fresh input partitions went missing.

The matrix lost the first 8 records of fresh input partitions (never forwarded) in 6 of
9 runs of two cases. Here a partition never committed is seeked back to its beginning
after Faust's seek, and the guarded `_new_offset` commits a run only if it starts exactly
where this generation started reading: the committed offset, or that beginning.
A hole then stops commits instead of skipping records, and is healed where it is found:
when no message below the first ack is still being processed, the partition is seeked
back to the committed offset and the missing records are read again (dedup makes the
re-read ones harmless). The 10-run soak saw 29 such holes, healed then by the stall
watchdog's restart, 30-60 s each; a worker with no supervisor never came back.

Acks of one consumer generation can also land in the next: on revoke, Faust drops a
partition's ack bookkeeping and only then waits for the agents' in-flight messages.
Nothing is consumed between an assignment and the seek after table recovery, so every
ack held when partitions are assigned is stale, and is dropped.

Faust also acks messages nobody processed (its stream acks a message it skips because
it was fetched in an earlier generation or while flow control was off, and the conductor
acks what it cannot decode). The soak lost two operations around a broker restart whose
offsets were committed although ingest never forwarded them. So an offset counts only if
our agent noted it as processed (`processed_ack`), after the broker acknowledged what
it wrote; any other ack is dropped, and the hole it leaves is read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers

from streams.runtime import Runtime

_perform_seek = Consumer.perform_seek
REWIND_AGAIN_SECONDS = 15.0  # a rewind's records may take this long to reach the agent


def processed_ack(stream: Any, event: Any) -> Callable[[], Awaitable[Any]]:
    """The ack of a message our agent has processed, and whose writes are durable."""
    async def ack() -> Any:
        message = event.message
        processed = _processed(stream.app.consumer)
        processed.setdefault(message.tp, set()).add(message.offset)
        return await stream.ack(event)
    return ack


def _processed(consumer: Any) -> dict[TP, set[int]]:
    found: dict[TP, set[int]] = consumer.__dict__.setdefault("_acreage_processed", {})
    return found


def register(rt: Runtime) -> None:
    rt.app.on_partitions_assigned.connect(_forgetting_stale_acks(rt))
    Consumer.perform_seek = _seek_and_note_starts  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]


def _forgetting_stale_acks(rt: Runtime) -> Any:
    def forget(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        consumer: Any = rt.app.consumer  # the bookkeeping is private to Faust's Consumer
        for bookkeeping in (consumer._acked, consumer._acked_index, consumer._gap,
                            _processed(consumer)):
            bookkeeping.clear()
        consumer._acreage_starts = {}

    return forget


async def _seek_and_note_starts(self: Any) -> None:
    """Faust's seek to the committed offsets, which leaves a partition the group never
    committed wherever the client last fetched: records fetched while Faust had it paused
    (during a recovery) were dropped, so that position can lie past unread records. Such
    a partition is seeked back to its beginning. Then each partition's start is noted:
    its committed offset, or the first offset its log holds. Not the position after the
    seek: the consumer thread fetches meanwhile, and records Faust drains then drops move
    it on (soak: a run starting there committed past two boundaries never forwarded)."""
    await _perform_seek(self)
    self._acreage_starts = {}  # no commits until the starts are known
    ours = [tp for tp in self.assignment() if self.app.topics.acks_enabled_for(tp.topic)]
    never = [tp for tp in ours if self._committed_offset.get(tp) is None]
    starts: dict[TP, int] = {tp: self._committed_offset[tp] for tp in ours if tp not in never}
    try:
        if never:
            fresh = [TopicPartition(*tp) for tp in never]
            await self._thread.seek_to_beginning(*fresh)
            beginnings = await self.earliest_offsets(*fresh)
            starts.update({tp: beginnings[TopicPartition(*tp)] for tp in never})
    except KafkaError:  # the assignment moved on, or the broker is away: no commits until
        return  # the next seek (each assignment, or Faust's seek when flow stops)
    self._acreage_starts = starts


def _new_offset(self: Any, tp: TP) -> int | None:
    """The offset to commit for `tp`, or None: the end of the run of acked offsets that
    begins exactly at the last commit (or this generation's start)."""
    acked: list[int] = self._acked[tp]
    committed = self._committed_offset[tp]
    start = committed if committed is not None else getattr(self, "_acreage_starts", {}).get(tp)
    if not acked or start is None:
        return None
    acked.sort()
    processed = _processed(self).setdefault(tp, set())
    processed.difference_update([o for o in processed if o < start])
    dropped = [offset for offset in acked if offset < start or offset not in processed]
    if dropped:
        _drop(self, tp, dropped, start)
    if not acked:
        return None
    if acked[0] != start:
        _rewind_if_lost(self, tp, start, acked[0])
        return None
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    processed.difference_update(batch)
    return int(batch[-1]) + 1


def _drop(self: Any, tp: TP, offsets: list[int], start: int) -> None:
    """Acks below the start are stale; acks we did not note were never processed."""
    unprocessed = [o for o in offsets if o >= start]
    if unprocessed:
        self.log.warning("offsets %s of %s were acked but never processed: not committed",
                         unprocessed, tp)
    gone = set(offsets)
    self._acked[tp][:] = [o for o in self._acked[tp] if o not in gone]
    self._acked_index[tp].difference_update(gone)
    _processed(self)[tp].difference_update(gone)


def _rewind_if_lost(self: Any, tp: TP, start: int, first_acked: int) -> None:
    """Records from `start` up to the first ack were not delivered in this generation
    unless one of them is still being processed: if none is, read them again. While an
    earlier rewind's records are on their way (fetched, not yet taken by the agent, so
    not tracked), its range is not rewound again."""
    if any(m.tp == tp and m.offset < first_acked for m in self._unacked_messages):
        return
    rewinds: dict[TP, tuple[int, float]] = self.__dict__.setdefault("_acreage_rewinds", {})
    now = time.monotonic()
    pending = rewinds.get(tp)
    if pending is not None and start < pending[0] and now - pending[1] < REWIND_AGAIN_SECONDS:
        return
    rewinds[tp] = (first_acked, now)
    self.log.warning("offsets %d-%d of %s were never processed: reading them again",
                     start, first_acked - 1, tp)
    asyncio.ensure_future(_seek(self, tp, start))


async def _seek(self: Any, tp: TP, offset: int) -> None:
    with contextlib.suppress(IllegalStateError):  # revoked meanwhile: the next owner
        await self.seek(tp, offset)  # starts at the commit anyway
