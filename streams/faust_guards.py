"""Guards around two Faust bugs that lose events under at-least-once delivery.

Both were found by the fault matrix (tests/integration/test_fault_matrix.py).

1. Acks of one consumer generation counted in the next. On revoke, Faust's consumer drops
   a partition's ack bookkeeping and only then waits for the agents' in-flight messages,
   whose acks land in fresh bookkeeping that no longer knows the committed offset. Its
   commit accepts a one-offset gap at the head (`min(acked) - committed > 1` in
   `Consumer._new_offset`, faust-streaming #312/#313), so a stale ack at committed+1
   commits past the message at `committed`; a rebalance before that message is processed
   loses it. Nothing is consumed between an assignment and the seek after table recovery,
   so every ack held when partitions are assigned is stale, and is dropped.

2. A flush that does not flush. Table writes go to the changelog through the producer's
   buffer (`send_soon`). `ProducerBuffer.flush()` returns as soon as 100 ms pass with no
   message sent, and the consumer commits right after it: on a busy machine the commit
   can go out while table writes are still buffered, and a crash then loses writes whose
   input will never be read again. The buffer's flush is made to wait until nothing is
   queued or on its way to the Kafka client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.app import Runtime


def register(rt: Runtime) -> None:
    rt.app.on_partitions_assigned.connect(_forgetting_stale_acks(rt))
    drain_on_flush(rt.app.producer.buffer)


def _forgetting_stale_acks(rt: Runtime) -> Any:
    def forget(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        consumer: Any = rt.app.consumer  # the bookkeeping is private to Faust's Consumer
        for bookkeeping in (consumer._acked, consumer._acked_index, consumer._gap):
            bookkeeping.clear()

    return forget


def drain_on_flush(buffer: Any) -> None:
    """Patch one ProducerBuffer instance before its sender task starts (the task reads
    `_send_pending` once, when it starts)."""
    in_flight = 0
    send = buffer._send_pending

    async def counted(fut: Any) -> None:
        nonlocal in_flight
        in_flight += 1
        try:
            await send(fut)
        finally:
            in_flight -= 1

    async def flush() -> None:
        while buffer.size or in_flight:
            if buffer.size:
                await buffer.flush_atmost(None)
            else:
                await asyncio.sleep(0.001)

    buffer._send_pending = counted
    buffer.flush = flush
