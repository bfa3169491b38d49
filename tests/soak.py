"""`make soak`: the fault matrix (tests/integration/test_fault_matrix.py) run again and again.

Each run is one pytest process; every case appends its Report (tests/support/faults.py) as
a JSON line to a file of the run. Printed per run and in total: stalls, losses (scopes below
the oracle or missing), duplicates (scopes above it) and API 5xx (other than 503), then
the failed cases (any finding at all, or no verdict because the case broke before its
check), the secondary findings, and stalls the worker's watchdog healed by a restart
(allowed). Stalls, losses, duplicates, 5xx and failed must all be 0, or the exit status is 1.

    python -m tests.soak --runs 10 [-k kill9] [--out .data/soak]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.faults import REPORT_ENV, SEED_ENV

ROOT = Path(__file__).resolve().parents[1]
MATRIX = "tests/integration/test_fault_matrix.py"
MAIN = ("stalls", "losses", "duplicates", "5xx")  # must all be 0
MORE = ("revision_conflicts", "missing_records", "double_counted", "api_mismatches", "other")


def counts(reports: list[dict[str, Any]]) -> Counter[str]:
    c: Counter[str] = Counter()
    for r in reports:
        c["stalls"] += r["stall"] is not None
        c["losses"] += len(r["losses"])
        c["duplicates"] += len(r["duplicates"])
        c["5xx"] += len(r["api_5xx"])
        for name in MORE:
            c[name] += len(r[name])
        c["healed"] += len(r["healed"])
        findings = ("losses", "duplicates", "api_5xx", *MORE)
        c["failed"] += bool(r["stall"] or any(r[k] for k in findings))
    return c


def line(c: Counter[str]) -> str:
    return " ".join(f"{k}={c[k]}" for k in (*MAIN, "failed", *MORE, "healed"))


def collected(select: str | None) -> list[str]:
    args = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"]
    out = subprocess.run(
        [*args, MATRIX, *(["-k", select] if select else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [ln.split("::", 1)[1] for ln in out.splitlines() if "::" in ln]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("-k", dest="select", default=None, help="pytest -k: a subset of cases")
    parser.add_argument("--out", type=Path, default=ROOT / ".data" / "soak")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = collected(args.select)
    if not cases:
        print("no fault-matrix cases collected", file=sys.stderr)
        return 2
    total: Counter[str] = Counter()
    seconds: dict[str, list[float]] = {}
    started = time.monotonic()
    print(f"soak: {args.runs} runs of {len(cases)} cases; pytest output in {args.out}/")
    for i in range(1, args.runs + 1):
        reports_path = args.out / f"run-{i:02d}.jsonl"
        reports_path.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k != SEED_ENV}
        env[REPORT_ENV] = str(reports_path)
        t0 = time.monotonic()
        with open(args.out / f"run-{i:02d}.log", "w") as log:
            rc = subprocess.call(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s", MATRIX]
                + (["-k", args.select] if args.select else []),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        reports = (
            [json.loads(ln) for ln in reports_path.read_text().splitlines() if ln.strip()]
            if reports_path.exists()
            else []
        )
        c = counts(reports)
        c["failed"] += len(set(cases) - {r["case"] for r in reports})  # no verdict
        total.update(c)
        print(f"run {i:2d}: {time.monotonic() - t0:5.0f}s pytest={rc} {line(c)}")
        for r in reports:
            seconds.setdefault(r["case"], []).append(r["seconds"])
            bad = counts([r])
            if bad["failed"] or bad["healed"]:
                print(f"    {r['case']} (seed {r['seed']}): {line(bad)}")
                for name in ("stall", "losses", "duplicates", "api_5xx", "other"):
                    found = r[name]
                    if found:
                        first = found if isinstance(found, str) else found[0]
                        print(f"      {name}: {first.splitlines()[0][:160]}")
        for case in sorted(set(cases) - {r["case"] for r in reports}):
            print(f"    {case}: no verdict (failed before its check; see run-{i:02d}.log)")
        sys.stdout.flush()
    print(f"\ntotal over {args.runs} runs ({(time.monotonic() - started) / 60:.1f} min):")
    print(f"  {line(total)}")
    for case, secs in sorted(seconds.items()):
        print(f"  {case}: {min(secs):.0f}–{max(secs):.0f}s")
    return 0 if all(total[k] == 0 for k in (*MAIN, "failed")) else 1


if __name__ == "__main__":
    sys.exit(main())
