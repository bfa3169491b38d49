"""The one place configuration is read: environment variables prefixed ACREAGE_."""

from __future__ import annotations

from pathlib import Path

from faust.utils.urls import urllist
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a worker needs to run; every field can be set as ACREAGE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="ACREAGE_")

    app_id: str = Field("acreage", description="Faust app id: consumer group and topic prefix.")
    broker: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap, Faust URL form.")
    data_dir: Path = Field(Path(".data/worker"), description="RocksDB tables and worker state.")
    partitions: int = Field(8, ge=1, description="Partitions of every topic the app creates.")
    web_host: str = Field("127.0.0.1", description="Interface the API listens on.")
    web_port: int = Field(6066, description="Port of the API and /metrics.")
    tick_seconds: float = Field(
        2.0, gt=0, description="How often provisional snapshots of changed days are sent."
    )
    grace_seconds: float = Field(
        1800.0,
        ge=0,
        description="How long after midnight UTC late events still join a day "
        "before its snapshot is final.",
    )
    max_vertices: int = Field(10_000, ge=4, description="Larger geometries are dead-lettered.")
    admin_key: str = Field("", description="Bearer key with access to every API owner.")
    rate_limit_per_min: int = Field(30, ge=1, description="Requests per key per minute.")
    check_rate_limit_per_min: int = Field(60, ge=1, description="POST /usage/check per minute.")
    log_level: str = Field("warn", description="Worker log level: crit, error, warn, info, debug.")
    store: str = Field("rocksdb://", description="Faust table store URL.")
    session_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Consumer session timeout: how soon a crashed worker's "
        "partitions move to a live one.",
    )
    max_event_age_days: float = Field(
        400.0,
        gt=0,
        le=36_500,
        description="Events dated further back are implausible and dead-lettered "
        "(timestamp_out_of_range): one event dated 1970 would otherwise move a contract.",
    )
    max_clock_skew_seconds: float = Field(
        3600.0,
        ge=0,
        le=31_536_000,
        description="Events dated further ahead of the worker's clock are dead-lettered "
        "(timestamp_out_of_range).",
    )
    dead_letter_max_payload_bytes: int = Field(
        256 * 1024,
        ge=1024,
        le=448 * 1024,
        description="Dead letters carry at most this much of the original record and as "
        "much of its key, so key and value together stay under the broker's 1 MB limit.",
    )
    lag_seconds: float = Field(
        5.0, gt=0, description="How often every partition's lag is read from the broker."
    )
    stall_seconds: float = Field(
        60.0,
        gt=0,
        description="An owned partition with lag whose committed offset has not moved for "
        "this long, or a rebalance with lag and no table-recovery progress for this long, "
        "is a stall: the worker exits non-zero for its supervisor to restart it.",
    )
    ready_max_lag: int = Field(
        100,
        ge=0,
        description="/ready answers 200 only when every owned partition's lag is at most this.",
    )
    log_burst: int = Field(
        5,
        ge=1,
        description="Identical log records (same logger and template) let through "
        "per log_window_seconds; the rest are counted in one summary line.",
    )
    log_window_seconds: float = Field(60.0, gt=0, description="See log_burst.")
    field_wait_seconds: float | None = Field(
        None,
        ge=0,
        description="How long an operation that names a field waits, after it arrives, for "
        "boundary events published with it, before it is clipped to the boundary in force "
        "at its event time (or counted unclipped when the field is unknown). Default: "
        "grace_seconds.",
    )
    max_event_area_km2: float = Field(
        50_000.0,
        gt=0,
        description="An event covering more than this is dead-lettered (area_too_large): "
        "a Sentinel-2 tile is about 12,000 km², so anything larger is a broken footprint.",
    )
    dedup_horizon_days: float = Field(
        30.0,
        gt=0,
        description="Event ids are remembered this long behind an owner's latest event time; "
        "an older re-delivery is metered again and adds no area (it is already counted).",
    )
    rocksdb_write_buffer_mb: int = Field(
        16,
        ge=1,
        description="Memtable size of each partition's RocksDB (two per partition). Faust's "
        "default is 64 MB, three of them.",
    )
    consumer_max_fetch_mb: int = Field(
        2,
        ge=1,
        description="Most one of Faust's fetches returns per partition (input topics, the "
        "metering topic, and whatever of the changelog the bulk restore left). At a "
        "rebalance Faust's consumer fetches each changelog partition a worker keeps from "
        "its earliest offset before recovery seeks it to its end: at 16 MB a partition "
        "that was 33.6 MB, received and thrown away, holding the GIL ~200 ms in the "
        "consumer's thread, the loop waiting as long (`make bench-ticks`); at 1 MB "
        "`make bench-pipeline` meters ~7 % fewer events a second.",
    )
    restore_fetch_mb: int = Field(
        16,
        ge=1,
        description="Most a fetch of a takeover's bulk changelog restore returns per "
        "partition (streams/restore.py): at 1 MB a worker waited on the broker most of the "
        "time (20,000 events of state: 53-107 s; at 16 MB, 20 s). aiokafka caps a whole "
        "fetch at 50 MB whatever the partitions.",
    )
    rocksdb_block_cache_mb: int = Field(
        16,
        ge=1,
        description="Block cache of each partition's RocksDB, which state read on demand "
        "(pieces, versions, records) goes through. Faust's default is 2 GB per partition. "
        "Metering reads pieces wherever events land, so a larger cache bought no speed "
        "(bench.state, 40,000 events: 503-521 events/s at 64 MB, 539-552 at 16 MB) and "
        "cost ~240 B an event of resident memory at 200,000 events.",
    )
    ui_modules: Path = Field(
        Path(__file__).resolve().parent.parent / "node_modules",
        description="Where `make` installed the page's npm packages (package-lock.json); "
        "/ui/vendor serves uPlot and Leaflet from there.",
    )
    map_tiles: str = Field(
        "",
        description="A basemap tile URL template for the page's map, e.g. "
        "https://tile.example/{z}/{x}/{y}.png; empty: the counted ground on a blank map, "
        "which needs no internet access.",
    )
    map_attribution: str = Field("", description="The basemap's attribution, if any.")

    webhook_retry_base_seconds: float = Field(
        5.0, gt=0, description="A webhook delivery's first retry waits about this long; each "
        "further failure doubles the wait (jittered to 75-125 %)."
    )
    webhook_retry_cap_seconds: float = Field(
        3600.0, gt=0, description="The longest wait between two attempts of a delivery."
    )
    webhook_give_up_hours: float = Field(
        72.0, gt=0, description="A delivery still failing this long after its event is "
        "dropped, and logged as gave_up in the delivery log."
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="A receiver that has not answered by then counts as a failure."
    )
    webhook_poll_seconds: float = Field(
        0.5, gt=0, description="How often a worker looks for deliveries that are due."
    )
    webhook_private_targets: bool = Field(
        False, description="Allow webhook URLs on loopback, private, link-local and other "
        "non-public addresses (a local receiver in tests or `make run`). Off, such a URL is "
        "refused when registered, and a delivery to a name that resolves only to such "
        "addresses fails without connecting."
    )
    webhook_per_endpoint: int = Field(
        4, ge=1, description="Requests in flight to one endpoint at most, so a slow or dead "
        "receiver holds at most this many of a worker's requests, never all of them."
    )

    def bootstrap_servers(self) -> list[str]:
        """`broker` as Faust's consumer reads it (any of `;`/`,` between URLs, scheme
        optional, port 9092 by default), so every client of ours, the CLI's included,
        reaches the brokers the worker does; stripping `kafka://` broke on a list."""
        return [
            f"{_host(url.host)}:{url.port or 9092}"
            for url in urllist(self.broker, default_scheme="kafka")
        ]

    def rocksdb_options(self) -> dict[str, int]:
        """The state table's RocksDB options (Faust's `RocksDBOptions` names), per
        partition: what the worker keeps of its state in memory is bounded by these."""
        return {
            "write_buffer_size": self.rocksdb_write_buffer_mb * 2**20,
            "max_write_buffer_number": 2,
            "block_cache_size": self.rocksdb_block_cache_mb * 2**20,
        }


def _host(host: str | None) -> str:
    """IPv6 in brackets, as aiokafka expects (yarl strips them); Faust's default host."""
    if not host:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
