"""Acks of one consumer generation must not count in the next (a Faust bug guard).

On revoke, Faust's consumer drops each partition's ack bookkeeping and only then waits
for the agents' in-flight messages, so their acks land in fresh bookkeeping that no
longer knows the committed offset. Its commit then accepts an ack gap of one
(`min(acked) - committed > 1` in `Consumer._new_offset`, faust-streaming #312/#313):
a stale ack at committed+1 commits past the message at `committed`, and a rebalance
before that message is processed loses it for good. The fault matrix caught exactly
that: an input record never forwarded, its offset committed, right after a second
worker joined. Nothing is consumed between an assignment and the seek that follows
table recovery, so every ack held when partitions are assigned is stale.
"""

from __future__ import annotations

from typing import Any

from streams.app import Runtime


def register(rt: Runtime) -> None:
    def _forget_stale_acks(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        consumer: Any = rt.app.consumer  # the bookkeeping is private to Faust's Consumer
        for bookkeeping in (consumer._acked, consumer._acked_index, consumer._gap):
            bookkeeping.clear()

    rt.app.on_partitions_assigned.connect(_forget_stale_acks)
