"""The worker's state table keeps RocksDB's memory bounded by settings, not by Faust's
defaults (three 64 MB memtables and a 2 GB block cache per partition), and its consumer
and the bulk restore fetch as much per partition as the settings say."""
from __future__ import annotations

from pathlib import Path

from streams.runtime import build_runtime
from streams.settings import Settings


def test_each_partitions_rocksdb_opens_with_the_configured_buffers(tmp_path: Path) -> None:
    rt = build_runtime(Settings(data_dir=tmp_path, partitions=1, rocksdb_write_buffer_mb=8,
                                rocksdb_block_cache_mb=32))
    options = rt.state.data.rocksdb_options  # what the store opens each partition with
    assert (options.write_buffer_size, options.max_write_buffer_number) == (8 * 2**20, 2)
    db = options.open(tmp_path / "probe.db")
    try:
        assert db.property_int_value("rocksdb.block-cache-capacity") == 32 * 2**20
    finally:
        db.close()


def test_the_bulk_restore_fetches_big_and_the_streams_small(tmp_path: Path) -> None:
    """A takeover's bulk restore reads the changelog in big fetches; Faust's consumer
    fetches little, as at a rebalance it fetched changelog partitions it kept from their
    start, only to seek past what it got."""
    defaults = build_runtime(Settings(data_dir=tmp_path / "a", partitions=1))
    assert defaults.app.conf.consumer_max_fetch_size == 2 * 2**20
    assert defaults.state.fetch_bytes == 16 * 2**20
    rt = build_runtime(Settings(data_dir=tmp_path / "b", partitions=1, consumer_max_fetch_mb=3,
                                restore_fetch_mb=32))
    assert (rt.app.conf.consumer_max_fetch_size, rt.state.fetch_bytes) == (3 * 2**20, 32 * 2**20)
