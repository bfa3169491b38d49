"""Table writes the metering agent waits for before Faust may commit past them.

Table writes reach the changelog through Faust's producer buffer (`send_soon`), and
before committing offsets Faust flushes that buffer with `ProducerBuffer.flush()`, which
gives up once 100 ms pass without a message leaving it. On a busy worker the commit can
then cover a message whose writes are still queued, and a kill -9 loses them for good:
the table restores without them and the input is never read again. The fault matrix
saw it in 1 of 8 runs of its kill-between-event-and-tick case.

So the agent does not let a message go before its writes are acknowledged by the
broker: the futures of every changelog send are collected here and awaited. A write the
broker never acknowledges ends the process at once, without a commit and without the
clean-shutdown marker: the next start restores the table and meters the message again.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from faust.types import TableT

from streams.shutdown import EXIT_CHANGELOG


class ChangelogAcks:
    """Collects the acknowledgements of one table's changelog writes."""

    def __init__(self, table: TableT) -> None:
        self._pending: list[asyncio.Future[Any]] = []
        send = table.send_changelog

        def sending(*args: Any, **kwargs: Any) -> Any:
            fut = send(*args, **kwargs)
            self._pending.append(fut)
            return fut

        # Faust's Table.__setitem__ ends in self.send_changelog; an instance attribute
        # is the one place every write passes through.
        table.send_changelog = sending  # type: ignore[method-assign]

    async def settled(self) -> None:
        """Return once every write so far is acknowledged; never return otherwise."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            await asyncio.gather(*pending)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means the writes may be lost
            os.write(2, f'level=critical msg="changelog write failed: {exc!r}; '
                        f'exiting for a replay"\n'.encode())
            os._exit(EXIT_CHANGELOG)
