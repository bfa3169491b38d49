"""Local table files are trusted only after a clean shutdown.

In at-least-once mode Faust writes RocksDB before the changelog is acknowledged, so after
a crash the local files can hold writes Kafka never got. Kafka Streams wipes its stores
after an unclean exit for the same reason; so do we, and the changelog restores them.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "CLEAN_SHUTDOWN"


def open_state_dir(data_dir: Path, table_dir: Path) -> bool:
    """Prepare the data dir for a run; True when local tables were discarded."""
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / MARKER
    discarded = False
    if table_dir.exists() and not marker.exists():
        log.warning("unclean shutdown: discarding %s, tables restore from changelogs", table_dir)
        shutil.rmtree(table_dir)
        discarded = True
    marker.unlink(missing_ok=True)
    return discarded


def close_state_dir(data_dir: Path) -> None:
    (data_dir / MARKER).touch()
