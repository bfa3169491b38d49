"""Two simulated users over real parcels: per-user and owner totals against the oracle."""

import random
from collections.abc import Callable, Sequence

import pytest
import shapely
from shapely.geometry.base import BaseGeometry

from aggregates import UniqueAreaLedger, normalize_geometry
from tests.aggregates.conftest import load_normalized

Oracle = Callable[[Sequence[BaseGeometry]], float]
CM = 3e-7  # ~3 cm in degrees: a boundary re-digitised slightly off


def redigitised(geom: BaseGeometry, rng: random.Random) -> BaseGeometry:
    moved = shapely.affinity.translate(geom, rng.uniform(-CM, CM), rng.uniform(-CM, CM))
    return normalize_geometry(shapely.geometry.mapping(moved))


def machine_files(geoms: list[BaseGeometry], rng: random.Random) -> list[BaseGeometry]:
    """Unions of runs of neighbouring parcels, like one file covering several fields."""
    starts = rng.sample(range(len(geoms) - 4), k=max(1, len(geoms) // 50))
    blocks = [shapely.union_all(geoms[s : s + rng.randint(2, 4)]) for s in starts]
    return [normalize_geometry(shapely.geometry.mapping(b)) for b in blocks]


def split_users(
    geoms: list[BaseGeometry], rng: random.Random
) -> tuple[list[BaseGeometry], list[BaseGeometry]]:
    """Some parcels under both users, some re-digitised for the second, some files."""
    first: list[BaseGeometry] = []
    second: list[BaseGeometry] = []
    for geom in geoms:
        roll = rng.random()
        if roll < 0.45:
            first.append(geom)
        elif roll < 0.8:
            second.append(geom)
        elif roll < 0.9:
            first.append(geom)
            second.append(geom)
        else:
            first.append(geom)
            second.append(redigitised(geom, rng))
    second.extend(machine_files(geoms, rng))
    return first, second


def test_users_and_owner_match_the_oracle(data_name: str, oracle: Oracle) -> None:
    rng = random.Random(20260301)
    users = split_users(load_normalized(data_name), rng)
    owner = UniqueAreaLedger()
    for geoms in users:
        ledger = UniqueAreaLedger()
        for geom in geoms:
            day = rng.randint(0, 30)
            ledger.add(geom, day)
            owner.add(geom, day)
        assert ledger.total_m2 == pytest.approx(oracle(geoms), rel=1e-6)
    everything = users[0] + users[1]
    assert owner.total_m2 == pytest.approx(oracle(everything), rel=1e-6)
    assert sum(owner.area_by_day().values()) == pytest.approx(owner.total_m2, rel=1e-9)
