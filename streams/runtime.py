"""What every agent and view shares: the Faust app, its topics, its table and the
metering state. `build_runtime` makes it; streams/app.py wires agents and views to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import faust
from fastapi import FastAPI
from faust.types import TableT

from aggregates.meter import Meter
from schemas.events import TOPIC_TYPES
from streams.acks import ChangelogAcks, DurableAcks
from streams.holder import MeterHolder
from streams.metrics import Metrics
from streams.restore import BulkRestoredTable
from streams.settings import Settings
from streams.topics import OUTPUT_TOPICS, metering_topic

RECORDS_TOPIC, DAILY_TOPIC, ALERTS_TOPIC, DEAD_LETTER_TOPIC = OUTPUT_TOPICS


@dataclass
class Runtime:
    """Everything agents and views share; built once per app instance."""

    settings: Settings
    app: faust.App
    state: TableT
    metering: faust.TopicT
    inputs: dict[str, faust.TopicT]
    outputs: dict[str, faust.TopicT]
    holder: MeterHolder
    changelog: ChangelogAcks
    forwards: DurableAcks
    record_sends: DurableAcks
    metrics: Metrics = field(default_factory=Metrics)
    api: FastAPI | None = None  # what streams/web.py serves


def _raw_topic(
    app: faust.App,
    name: str,
    settings: Settings,
    *,
    internal: bool = False,
    compacting: bool = False,
) -> faust.TopicT:
    """Bytes in, bytes out: decoding is ours, so a bad record is a dead letter, not a crash."""
    return app.topic(
        name,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        internal=internal,
        compacting=compacting,
    )


def meter_rules(s: Settings) -> dict[str, Any]:
    """The Meter's time rules, from the settings."""
    wait = s.grace_seconds if s.field_wait_seconds is None else s.field_wait_seconds
    return {
        "grace": timedelta(seconds=s.grace_seconds),
        "field_wait": timedelta(seconds=wait),
        "dedup_horizon": timedelta(days=s.dedup_horizon_days),
    }


def build_runtime(s: Settings) -> Runtime:
    app = faust.App(
        s.app_id,
        broker=s.broker,
        store=s.store,
        datadir=str(s.data_dir),
        topic_partitions=s.partitions,
        topic_replication_factor=1,
        processing_guarantee="at_least_once",
        producer_acks=-1,
        autodiscover=False,
        web_host=s.web_host,
        web_port=s.web_port,
        web_bind=s.web_host,
        web_in_thread=False,
        # uvicorn serves HTTP (streams/api/server.py); web_host and web_port stay set for
        # canonical_url, which the assignor shares so workers can forward to each other.
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        broker_commit_interval=1.0,
        # A worker restarted after a crash waits for its dead member's session to expire.
        broker_session_timeout=s.session_timeout_seconds,
        broker_heartbeat_interval=1.0,
        producer_linger_ms=5,  # lets an event's changelog writes share a batch
        consumer_max_fetch_size=s.consumer_max_fetch_mb * 2**20,
    )
    # bytes types make Faust use the raw codec for the changelog; its JSON fallback would
    # fail on binary pieces during recovery.
    state = BulkRestoredTable(
        app, name="state", beacon=app.tables.beacon, key_type=bytes, value_type=bytes,
        partitions=s.partitions, options=s.rocksdb_options(),
        bootstrap=s.bootstrap_servers(), fetch_bytes=s.restore_fetch_mb * 2**20,
    )
    app.tables.add(state)
    rt = Runtime(
        settings=s,
        app=app,
        state=state,
        metering=_raw_topic(app, metering_topic(s.app_id), s, internal=True),
        inputs={name: _raw_topic(app, name, s) for name in TOPIC_TYPES},
        outputs={
            name: _raw_topic(app, name, s, compacting=name == DAILY_TOPIC) for name in OUTPUT_TOPICS
        },
        holder=MeterHolder(state, partial(Meter.from_state, **meter_rules(s)), s.partitions),
        changelog=ChangelogAcks(state, stopping=lambda: app.should_stop),
        forwards=DurableAcks(lambda: app.should_stop, "forward to metering"),
        record_sends=DurableAcks(lambda: app.should_stop, "usage record send"),
    )
    return rt
