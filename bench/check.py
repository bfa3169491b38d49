"""What `POST /usage/check` costs for a satellite scene: one ledger's preview of it, beside
the add that stores it, on open ground and over 2,000-3,000 stored fields.

A check previews the scene in up to four ledgers (its product and UNIFIED_AREA, user and
owner scope), on the worker's loop; issue 9 asks that no request hold it over 100 ms. An
add stores the scene cut into pieces of at most 256 vertices (~512 a square degree); a
preview stores nothing and takes what the stored pieces cover from the scene's area, so
it should cost a small part of the add and give the same area to rounding.
"""

from __future__ import annotations

import random
import time

from shapely.geometry.base import BaseGeometry

from aggregates.geometry import normalize_geometry
from aggregates.union import UniqueAreaLedger
from bench.goals import report_load, verdict
from streams.allocator import start_tuned

FIELD = (0.005, 0.004)  # a field's width and height in degrees (~450 m x 450 m at 40° N)
CASES = ((1.0, 0), (1.0, 2_000), (2.0, 0), (2.0, 3_000))  # scene side (°), stored fields


def box(lon: float, lat: float, width: float, height: float) -> BaseGeometry:
    return normalize_geometry({"type": "Polygon", "coordinates": [[
        [lon, lat], [lon + width, lat], [lon + width, lat + height], [lon, lat + height],
        [lon, lat]]]})


def measure(side: float, fields: int, rng: random.Random) -> None:
    ledger = UniqueAreaLedger()
    for _ in range(fields):
        ledger.add(box(10 + rng.random() * side, 40 + rng.random() * side, *FIELD), day=1)
    scene = box(10, 40, side, side)
    started = time.perf_counter()
    previewed = ledger.preview(scene, day=2)
    preview_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    added = ledger.add(scene, day=2)
    add_ms = (time.perf_counter() - started) * 1000
    print(f"{side:.0f}°x{side:.0f}° scene over {fields:5,} fields: preview {preview_ms:7.1f} ms, "
          f"four previews {4 * preview_ms:7.1f} ms ({verdict(4 * preview_ms < 100)} < 100 ms), "
          f"add {add_ms:7.1f} ms, preview vs add {abs(previewed - added) / added:.1e}")


def main() -> None:
    start_tuned()
    report_load("before")
    rng = random.Random(1)
    for side, fields in CASES:
        measure(side, fields, rng)
    report_load("after")


if __name__ == "__main__":
    main()
