"""streams/acks.py: a message's ack waits for its table writes' acknowledgements."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

from streams.acks import ChangelogAcks
from streams.shutdown import EXIT_UNACKNOWLEDGED


class Table:
    """Stands in for a Faust table: each changelog send returns a future we settle."""

    def __init__(self) -> None:
        self.sent: list[asyncio.Future[Any]] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append(fut)
        return fut


async def test_an_ack_runs_only_once_every_write_of_its_message_is_acknowledged() -> None:
    table = Table()
    acks = ChangelogAcks(table, stopping=lambda: False)  # type: ignore[arg-type]
    acked: list[str] = []

    async def ack(name: str) -> None:
        acked.append(name)

    table.send_changelog("k1")
    table.send_changelog("k2")
    acks.ack_after_writes(lambda: ack("first"))
    acks.ack_after_writes(lambda: ack("no writes"))
    await asyncio.sleep(0.01)
    assert acked == ["no writes"]
    table.sent[0].set_result(None)
    await asyncio.sleep(0.01)
    assert acked == ["no writes"]
    table.sent[1].set_result(None)
    await acks.settled()
    await asyncio.sleep(0.01)
    assert acked == ["no writes", "first"]


async def test_writes_cancelled_by_a_stop_leave_their_message_unacked() -> None:
    table = Table()
    acks = ChangelogAcks(table, stopping=lambda: True)  # type: ignore[arg-type]
    acked: list[int] = []

    async def ack() -> None:
        acked.append(1)

    table.send_changelog("k")
    acks.ack_after_writes(ack)
    table.sent[0].cancel()
    await asyncio.sleep(0.01)
    assert acked == []


def test_a_rejected_write_ends_the_worker_for_a_replay() -> None:
    code = textwrap.dedent(
        """
        import asyncio
        from tests.streams.test_acks import Table
        from streams.acks import ChangelogAcks

        async def main():
            table = Table()
            acks = ChangelogAcks(table, stopping=lambda: False)
            table.send_changelog("k")
            async def ack():
                print("acked")
            acks.ack_after_writes(ack)
            table.sent[0].set_exception(OSError("broker said no"))
            await asyncio.sleep(1)
            print("still running")

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_UNACKNOWLEDGED
    assert "acked" not in done.stdout and "still running" not in done.stdout
    assert "changelog write failed" in done.stderr
