"""50,000 overlay operations on nasty tiny inputs: nothing may raise but GeometryError."""

import random
from typing import Any

from aggregates import GeometryError, LiveUnion, UniqueAreaLedger, normalize_geometry

OPERATIONS = 50_000  # 1,000 fresh ledgers of 50 operations each
STEP = 1e-5  # ~1 m lattice: touching, nested and identical shapes are frequent
RESET_EVERY = 50  # keeps each ledger small so 50k operations stay fast


def nasty(rng: random.Random) -> dict[str, Any]:
    """Slivers, duplicate vertices, bowties, nested or touching boxes, on a tiny lattice."""

    def point() -> list[float]:
        jitter = rng.choice([0.0, 0.0, 1e-9, -1e-9, 3e-10])
        return [10 + rng.randint(0, 5) * STEP + jitter, 0.5 + rng.randint(0, 5) * STEP]

    kind = rng.randrange(4)
    if kind == 0:  # quadrilateral, often a bowtie or a sliver
        ring = [point() for _ in range(4)]
    elif kind == 1:  # box with a duplicated vertex
        (x0, y0), (x1, y1) = point(), point()
        ring = [[x0, y0], [x1, y0], [x1, y0], [x1, y1], [x0, y1]]
    elif kind == 2:  # triangle
        ring = [point() for _ in range(3)]
    else:  # near-degenerate sliver
        (x0, y0) = point()
        ring = [[x0, y0], [x0 + 4 * STEP, y0], [x0 + 4 * STEP, y0 + 1e-9], [x0, y0 + 2e-9]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def test_fuzz_overlay_never_raises() -> None:
    rng = random.Random(7)
    ledger, live = UniqueAreaLedger(), LiveUnion()
    done = rejected = 0
    while done < OPERATIONS:
        if done % RESET_EVERY == 0:
            ledger, live = UniqueAreaLedger(), LiveUnion()
        try:
            geom = normalize_geometry(nasty(rng))
        except GeometryError:
            rejected += 1
            continue
        op = rng.randrange(4)
        if op == 0:
            ledger.add(geom, rng.randint(0, 3))
        elif op == 1:
            ledger.preview(geom, rng.randint(0, 3))
        elif op == 2:
            live.put(str(rng.randrange(8)), geom)
        else:
            live.remove(str(rng.randrange(8)))
        done += 1
        assert ledger.total_m2 >= 0.0
        assert live.total_m2 >= -1e-3  # signed deltas drift by float dust, never by area
    assert rejected < OPERATIONS
