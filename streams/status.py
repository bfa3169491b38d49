"""`acreage status`: the group's partitions as the broker sees them, from any machine.

/ready answers for one worker and only while it runs; an operator asking "who owns
what, and is anyone behind?" needs the group's view, including partitions nobody
owns. The figures come from the same `LagReader` the worker's lag gauges use, and
"caught up" is /ready's rule, so the three never disagree.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka.errors import KafkaError

from streams.cli_errors import broker_error
from streams.lag import Group, LagReader, Member, Offsets, caught_up
from streams.settings import Settings
from streams.topics import consumed_topics

COLUMNS = ("TOPIC", "PARTITION", "MEMBER", "COMMITTED", "END", "LAG", "CAUGHT-UP")


@dataclass(frozen=True)
class Row:
    topic: str
    partition: int
    member: Member | None
    committed: int | None
    end: int
    lag: int
    caught_up: bool


@dataclass(frozen=True)
class Status:
    group: str
    state: str
    members: int
    max_lag: int
    rows: list[Row]


def status_of(group_id: str, offsets: Offsets, group: Group, max_lag: int) -> Status:
    lag = offsets.lag()
    rows = [
        Row(
            topic,
            partition,
            group.assignment.get((topic, partition)),
            offsets.committed.get((topic, partition)),
            end,
            lag[(topic, partition)],
            caught_up(lag[(topic, partition)], max_lag),
        )
        for (topic, partition), end in sorted(offsets.end.items())
    ]
    return Status(group_id, group.state, group.members, max_lag, rows)


async def read_status(settings: Settings, timeout: float) -> Status:
    reader = LagReader(
        settings.bootstrap_servers(), settings.app_id, consumed_topics(settings.app_id), timeout
    )
    try:
        offsets = await reader.read()
        group = await reader.group()
    finally:
        await reader.close()
    return status_of(settings.app_id, offsets, group, settings.ready_max_lag)


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def render_table(status: Status) -> str:
    plural = "" if status.members == 1 else "s"
    lines = [
        f"group {status.group}: {status.state}, {status.members} member{plural}; "
        f"caught up = lag <= {status.max_lag} (ACREAGE_READY_MAX_LAG)",
    ]
    cells = [COLUMNS] + [
        (
            row.topic,
            str(row.partition),
            f"{row.member.client_id}/{row.member.host}" if row.member else "-",
            _cell(row.committed),
            str(row.end),
            str(row.lag),
            "yes" if row.caught_up else "no",
        )
        for row in status.rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
              for line in cells]
    return "\n".join(lines)


def render_json(status: Status) -> str:
    body: dict[str, Any] = asdict(status)
    return json.dumps(body, indent=2)


def run_status(settings: Settings, as_json: bool, timeout: float) -> int:
    try:
        status = asyncio.run(read_status(settings, timeout))
    except (KafkaError, OSError) as exc:
        raise broker_error(settings.bootstrap_servers(), exc) from exc
    print(render_json(status) if as_json else render_table(status))
    return 0
