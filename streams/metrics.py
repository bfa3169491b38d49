"""Prometheus metrics of one worker, in a registry of its own so tests can build many apps."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter(
            "acreage_events", "Input events by type and outcome.", ["type", "outcome"], registry=r
        )
        self.area_added = Counter(
            "acreage_area_added_m2",
            "Unique area added to owner scopes (m²).",
            ["product"],
            registry=r,
        )
        self.dead_letters = Counter(
            "acreage_dead_letters",
            "Input records sent to usage.dead-letter.",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "acreage_processing_seconds",
            "Metering time per event.",
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.pieces = Gauge("acreage_stored_pieces", "Disjoint pieces held in unions.", registry=r)
        self.lag = Gauge(
            "acreage_consumer_lag",
            "Records the group has not committed yet (end offset - committed offset), "
            "per partition of every consumed topic, owned by this worker or not.",
            ["topic", "partition"],
            registry=r,
        )
        self.assigned = Gauge(
            "acreage_partition_assigned",
            "1 when the partition is assigned to this worker, else 0.",
            ["topic", "partition"],
            registry=r,
        )
        self.lag_read_ok = Gauge(
            "acreage_lag_scrape_ok",
            "1 when the last lag reading from the broker succeeded; on 0 the lag "
            "gauges keep their last values.",
            registry=r,
        )
        self.stall_heals = Counter(
            "acreage_stall_heals",
            "Stalled partitions or rebalances the watchdog healed by restarting the worker.",
            registry=r,
        )
        self.snapshots = Counter(
            "acreage_snapshots", "Daily snapshots sent, by finality.", ["final"], registry=r
        )
        self.metering_errors = Counter(
            "acreage_metering_errors",
            "Metering messages that raised; each is dead-lettered as internal_error.",
            registry=r,
        )

        self.webhook_backlog = Gauge(
            "acreage_webhook_backlog",
            "Webhook deliveries this worker's partitions still owe (due, in flight or "
            "waiting for a retry).",
            registry=r,
        )
        self.webhook_failures = Counter(
            "acreage_webhook_failures",
            "Webhook attempts that failed: no answer, or an answer other than 2xx.",
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
