"""glibc's allocator, tuned before the process allocates anything that lasts.

In a worker holding a million pieces GEOS's union of an event's cutters took 2.2× as
long as in a fresh process, on inputs of the same size: glibc's small-chunk caches
(7 chunks a size by default) overflow into a large, fragmented heap whose free lists
are long and cold. With 2,000 chunks cached a size the same calls stay flat (README,
"Engine": the scale ratio) and are ~14 % cheaper even on a fresh heap, for ~35 B an
event more memory. glibc reads `GLIBC_TUNABLES` only when a program starts, so the
process executes itself once more with it set: the same PID, arguments and working
directory, which keeps supervisors, tests and `kill` working on the PID they hold.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

TUNABLES = "GLIBC_TUNABLES"
TCACHE_COUNT = "glibc.malloc.tcache_count"
TCACHE_CHUNKS = 2000
# Set by the re-execution: had glibc dropped the tunable (a setuid start does) the
# process would otherwise execute itself forever.
DONE = "ACREAGE_ALLOCATOR_TUNED"


def tuned_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to start again with, or None when there is nothing to change.

    An operator's own `glibc.malloc.tcache_count` wins (that is also how a benchmark
    measures glibc's default: `GLIBC_TUNABLES=glibc.malloc.tcache_count=7`); other
    tunables are kept beside ours.
    """
    current = environ.get(TUNABLES, "")
    if environ.get(DONE) or f"{TCACHE_COUNT}=" in current:
        return None
    ours = f"{TCACHE_COUNT}={TCACHE_CHUNKS}"
    return {**environ, TUNABLES: f"{current}:{ours}" if current else ours, DONE: "1"}


def start_tuned() -> None:
    """Executes this process again with the tunable set, unless it is set or not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    environment = tuned_environment(os.environ)
    if environment is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
