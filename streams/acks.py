"""Acks that follow the broker: Faust may commit a message only once the broker has
acknowledged everything the message caused to be written.

Writes leave through the producer, and before committing offsets Faust flushes its
buffer with `ProducerBuffer.flush()`, which gives up once 100 ms pass without a message
leaving it; a send's future resolves even later, when the broker acknowledges it. So a
commit can cover a message whose writes are still queued, and a kill -9, or a stop while
the broker is away, loses them for good: the input is never read again. The fault
matrix saw it for table writes (1 of 8 runs of its kill-between-event-and-tick case) and
for ingest's forwards (2 operations lost when the broker stopped right after a commit).

So agents read `noack` streams and hand each message's ack here: it runs when the
message's writes are acknowledged, on the producer's callbacks, never waiting for the
agent (an agent that held acks until its next message deadlocked a rebalance, which
waits for every ack). A write the broker rejects ends the process at once, without a
commit and without the clean-shutdown marker: the next start reads the message again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

from faust.types import TableT

from streams.shutdown import EXIT_UNACKNOWLEDGED

Ack = Callable[[], Awaitable[Any]]


class DurableAcks:
    """Acks waiting on the broker's acknowledgement of their messages' writes."""

    def __init__(self, stopping: Callable[[], bool], what: str) -> None:
        self._stopping = stopping
        self._what = what
        self._waiting: set[asyncio.Future[Any]] = set()

    def ack_after(self, writes: Iterable[Awaitable[Any]], ack: Ack) -> None:
        """Run `ack` once every one of `writes` is acknowledged."""
        waiting = asyncio.gather(*writes)
        self._waiting.add(waiting)
        waiting.add_done_callback(partial(self._acknowledged, ack))

    async def settled(self) -> None:
        """Return once every write handed over so far is acknowledged; raise if one failed."""
        await asyncio.gather(*self._waiting)

    def _acknowledged(self, ack: Ack, waiting: asyncio.Future[Any]) -> None:
        self._waiting.discard(waiting)
        failed = waiting.cancelled() or waiting.exception() is not None
        if not failed:
            asyncio.ensure_future(ack())
        elif not self._stopping():  # a stop cancels sends; their messages are read again
            detail = "cancelled" if waiting.cancelled() else repr(waiting.exception())
            os.write(2, f'level=critical msg="{self._what} failed: {detail}; '
                        f'exiting for a replay"\n'.encode())
            os._exit(EXIT_UNACKNOWLEDGED)


class ChangelogAcks(DurableAcks):
    """The acknowledgements of one table's changelog writes, and the acks waiting on them."""

    def __init__(self, table: TableT, stopping: Callable[[], bool]) -> None:
        super().__init__(stopping, "changelog write")
        self._written: list[asyncio.Future[Any]] = []  # since the last `ack_after_writes`
        send = table.send_changelog

        def sending(*args: Any, **kwargs: Any) -> Any:
            fut = send(*args, **kwargs)
            self._written.append(fut)
            return fut

        # Faust's Table.__setitem__ and __delitem__ end in self.send_changelog; an
        # instance attribute is the one place every write passes through.
        table.send_changelog = sending  # type: ignore[method-assign]

    def ack_after_writes(self, ack: Ack) -> None:
        """Run `ack` once every write made since the last call is acknowledged."""
        written, self._written = self._written, []
        self.ack_after(written, ack)

    async def settled(self) -> None:
        await asyncio.gather(*self._written)
        await super().settled()
