"""Prometheus metrics of one worker, in a registry of its own so tests can build many apps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
            "Messages not yet processed per partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.snapshots = Counter(
            "acreage_snapshots", "Daily snapshots sent, by finality.", ["final"], registry=r
        )

    def observe_lag(self, consumer: Any, message: Any) -> None:
        """Records behind the partition's end after this one, for input and metering
        topics alike: a value that stops falling marks a stuck partition."""
        tp = message.tp
        highwater = consumer.highwater(tp)
        if highwater is not None:
            self.lag.labels(tp.topic, tp.partition).set(max(0, highwater - message.offset - 1))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
