"""The stop deadline hard-exits a worker whose graceful stop hangs (broker down)."""

from __future__ import annotations

import subprocess
import sys
import time

from streams.shutdown import EXIT_SHUTDOWN_TIMEOUT, EXIT_STALL

PROGRAM = """
import time
from streams.shutdown import ShutdownDeadline
deadline = ShutdownDeadline(seconds=0.3)
{setup}
deadline.arm()
{after}
time.sleep(1.5)  # a graceful stop that never ends
"""


def run(setup: str = "", after: str = "") -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(setup=setup, after=after)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, time.monotonic() - started, done.stderr


def test_a_stop_that_outlasts_the_deadline_is_cut_short() -> None:
    code, _, stderr = run()
    assert code == EXIT_SHUTDOWN_TIMEOUT  # not 0: the sleep did not get to end
    assert "graceful shutdown timed out" in stderr


def test_a_failed_run_keeps_its_exit_code() -> None:
    code, _, _ = run(setup=f"deadline.fail({EXIT_STALL})")
    assert code == EXIT_STALL


def test_a_stop_that_finished_in_time_disarms_it() -> None:
    code, seconds, _ = run(after="deadline.disarm()")
    assert code == 0 and seconds >= 1.5
