"""aggregates/ must stay pure: no Kafka, web, JSON-speed or metrics libraries."""

import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("faust", "aiokafka", "orjson", "prometheus_client")
PACKAGE = Path(__file__).resolve().parents[2] / "aggregates"


def test_no_forbidden_imports_in_source() -> None:
    for module in PACKAGE.glob("*.py"):
        text = module.read_text(encoding="utf-8")
        for name in FORBIDDEN:
            assert f"import {name}" not in text and f"from {name}" not in text, module


def test_importing_aggregates_loads_none_of_them() -> None:
    names = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}: importlib.import_module('aggregates.' + n)\n"
        f"print(sorted(set(m.split('.')[0] for m in sys.modules) & set({FORBIDDEN!r})))\n"
    )
    root = PACKAGE.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
