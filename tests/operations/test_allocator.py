"""The worker starts again once with glibc's tcache enlarged, keeping its PID."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.allocator import DONE, TUNABLES, tuned_environment

ROOT = Path(__file__).resolve().parents[2]
OURS = "glibc.malloc.tcache_count=2000"

# Prints its PID as it starts, then after `start_tuned`: its PID, the tunables and the
# bytes glibc holds in fast bins after 1,000 small chunks are freed. A tcache of 7
# chunks a size sends ~990 of them to the fast bins; one of 2,000 keeps them all.
PROBE = """
import ctypes, os
print("start", os.getpid(), flush=True)
from streams.allocator import start_tuned
start_tuned()
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
                .split()]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
chunks = [libc.malloc(40) for _ in range(1000)]
for chunk in chunks:
    libc.free(chunk)
print("tuned", os.getpid(), os.environ.get("GLIBC_TUNABLES", ""), libc.mallinfo2().fsmblks)
"""


def probe(environ: dict[str, str]) -> tuple[list[int], str, int]:
    env = {k: v for k, v in os.environ.items() if k not in (TUNABLES, DONE)}
    env.update(environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True, timeout=60).stdout.split("\n")
    starts = [int(line.split()[1]) for line in out if line.startswith("start")]
    _, pid, tunables, fast = next(line for line in out if line.startswith("tuned")).split()
    return [*starts, int(pid)], tunables, int(fast)


def test_the_environment_gains_the_tunable_beside_others() -> None:
    assert tuned_environment({"A": "1"}) == {"A": "1", TUNABLES: OURS, DONE: "1"}
    other = "glibc.malloc.arena_max=2"
    assert tuned_environment({TUNABLES: other})[TUNABLES] == f"{other}:{OURS}"  # type: ignore[index]


def test_an_operators_tcache_count_wins_and_a_tuned_process_is_not_tuned_again() -> None:
    assert tuned_environment({TUNABLES: "glibc.malloc.tcache_count=7"}) is None
    assert tuned_environment({DONE: "1"}) is None


@pytest.mark.skipif(sys.platform != "linux", reason="glibc tunables exist on Linux only")
def test_the_process_runs_again_tuned_with_its_pid() -> None:
    pids, tunables, fast_bin_bytes = probe({})
    assert len(pids) == 3 and len(set(pids)) == 1, pids
    assert tunables == OURS
    assert fast_bin_bytes < 100 * 48, fast_bin_bytes


@pytest.mark.skipif(sys.platform != "linux", reason="glibc tunables exist on Linux only")
def test_glibcs_default_is_kept_when_the_operator_asks_for_it() -> None:
    pids, tunables, fast_bin_bytes = probe({TUNABLES: "glibc.malloc.tcache_count=7"})
    assert len(pids) == 2 and len(set(pids)) == 1, pids
    assert fast_bin_bytes > 900 * 48, fast_bin_bytes
