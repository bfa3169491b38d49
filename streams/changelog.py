"""Acks that follow the changelog: Faust may commit a message only once the broker has
acknowledged every table write it caused.

Table writes reach the changelog through Faust's producer buffer (`send_soon`), and
before committing offsets Faust flushes that buffer with `ProducerBuffer.flush()`, which
gives up once 100 ms pass without a message leaving it. On a busy worker the commit can
then cover a message whose writes are still queued, and a kill -9 loses them for good:
the table restores without them and the input is never read again. The fault matrix
saw it in 1 of 8 runs of its kill-between-event-and-tick case.

So the metering agent reads a `noack` stream and hands each message's ack here: it runs
when the message's writes are acknowledged, on the producer's callbacks, never waiting
for the agent (an agent that held acks until its next message deadlocked a rebalance,
which waits for every ack). A write the broker rejects ends the process at once, without
a commit and without the clean-shutdown marker: the next start restores the table and
meters the message again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from faust.types import TableT

from streams.shutdown import EXIT_CHANGELOG

Ack = Callable[[], Awaitable[Any]]


class ChangelogAcks:
    """The acknowledgements of one table's changelog writes, and the acks waiting on them."""

    def __init__(self, table: TableT, stopping: Callable[[], bool]) -> None:
        self._stopping = stopping
        self._written: list[asyncio.Future[Any]] = []  # since the last `ack_after_writes`
        self._waiting: set[asyncio.Future[Any]] = set()
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
        waiting = asyncio.gather(*written)
        self._waiting.add(waiting)
        waiting.add_done_callback(partial(self._acknowledged, ack))

    async def settled(self) -> None:
        """Return once every write made so far is acknowledged; raise if one failed."""
        await asyncio.gather(*self._written, *self._waiting)

    def _acknowledged(self, ack: Ack, waiting: asyncio.Future[Any]) -> None:
        self._waiting.discard(waiting)
        failed = waiting.cancelled() or waiting.exception() is not None
        if not failed:
            asyncio.ensure_future(ack())
        elif not self._stopping():  # a stop cancels sends; their messages are read again
            detail = "cancelled" if waiting.cancelled() else repr(waiting.exception())
            os.write(2, f'level=critical msg="changelog write failed: {detail}; '
                        f'exiting for a replay"\n'.encode())
            os._exit(EXIT_CHANGELOG)
