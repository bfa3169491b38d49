"""A guard around a Faust bug that loses events under at-least-once delivery, found by
the fault matrix (tests/integration/test_fault_matrix.py).

Acks of one consumer generation counted in the next. On revoke, Faust's consumer drops
a partition's ack bookkeeping and only then waits for the agents' in-flight messages,
whose acks land in fresh bookkeeping that no longer knows the committed offset. Its
commit accepts a one-offset gap at the head (`min(acked) - committed > 1` in
`Consumer._new_offset`, faust-streaming #312/#313), so a stale ack at committed+1
commits past the message at `committed`; a rebalance before that message is processed
loses it. Nothing is consumed between an assignment and the seek after table recovery,
so every ack held when partitions are assigned is stale, and is dropped.
"""

from __future__ import annotations

from typing import Any

from streams.app import Runtime


def register(rt: Runtime) -> None:
    rt.app.on_partitions_assigned.connect(_forgetting_stale_acks(rt))


def _forgetting_stale_acks(rt: Runtime) -> Any:
    def forget(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        consumer: Any = rt.app.consumer  # the bookkeeping is private to Faust's Consumer
        for bookkeeping in (consumer._acked, consumer._acked_index, consumer._gap):
            bookkeeping.clear()

    return forget
