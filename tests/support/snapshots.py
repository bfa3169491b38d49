"""Reading usage.consumption-daily the way a compacting billing consumer would."""

from __future__ import annotations

from typing import Any

from tests.support.kafka import Broker, read_topic


def latest_snapshots(broker: Broker, owner: str) -> dict[str, dict[str, Any]]:
    """The highest revision per snapshot key, for one API owner."""
    latest: dict[str, dict[str, Any]] = {}
    for key, value in read_topic(broker.bootstrap, "usage.consumption-daily"):
        if value is None or value["apiOwner"] != owner:
            continue
        k = (key or b"").decode()
        if k not in latest or value["revision"] > latest[k]["revision"]:
            latest[k] = value
    return latest


def last_totals(snapshots: dict[str, dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Each (product, scope)'s total as of its latest day: what the term bills."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for snap in snapshots.values():
        k = (snap["product"], snap["scope"])
        if k not in last or snap["date"] > last[k]["date"]:
            last[k] = snap
    return {k: v["totalAreaM2"] for k, v in last.items()}
