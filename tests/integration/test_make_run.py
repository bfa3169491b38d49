"""`make run` on a terminal: Ctrl-C once it is up ends it with status 0 and leaves no
worker, broker or shell of it running."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from pathlib import Path

from tests.aggregates.conftest import shared_dir
from tests.support.kafka import ROOT, free_port

BANNER = b"Ctrl-C stops everything."


def read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    """The terminal's output until `marker`, or until it closed or the time ran out."""
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal closed: every process of it exited
            break
        if not chunk:
            break
        out += chunk
    return out


def processes_of(data_dir: Path) -> dict[int, str]:
    """Every process started by this run, by pid: run.sh exports ACREAGE_DATA_DIR before
    it starts the broker and the worker, so all of them carry it in their environment."""
    marker = f"ACREAGE_DATA_DIR={data_dir}/worker".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
    return {pid: cmd.decode(errors="replace") for pid, cmd in found.items()}


def test_ctrl_c_ends_make_run_with_status_0_and_nothing_left(tmp_path: Path) -> None:
    kafka_port, web_port = free_port(span=2), free_port()  # run.sh: controller on port + 1
    env = dict(
        os.environ,
        ACREAGE_RUN_DIR=str(tmp_path),
        ACREAGE_KAFKA_PORT=str(kafka_port),
        ACREAGE_WEB_PORT=str(web_port),
        ACREAGE_SHARED_DIR=str(shared_dir()),
        ACREAGE_FIELD_WAIT_SECONDS="1",
    )
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        # -o: the virtualenv running this test is not reinstalled under it, even when
        # pyproject.toml is newer than its stamp (`make test` renews the stamp first).
        os.execvpe("make", ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
                   env)
    try:
        started = read_until(fd, BANNER, 300)
        assert BANNER in started, started.decode(errors="replace")[-2000:]
        assert processes_of(tmp_path), "the run's processes were not found"
        os.write(fd, b"\x03")  # what the terminal sends for Ctrl-C
        text = read_until(fd, b"\0", 90).decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        left = processes_of(tmp_path)
    finally:
        os.close(fd)
        for leftover in processes_of(tmp_path):
            os.kill(leftover, signal.SIGKILL)
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "Interrupt" not in text and "kafka stopped" in text, text
    assert left == {}
