"""Shared fixtures: the real field polygons from the shared data directory."""

import json
import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry.base import BaseGeometry

from aggregates import geodesic_area_m2, normalize_geometry

DATA_FILES = ("chofu_fude_2019", "east_africa_fields", "fiboa_parcels")


def shared_dir() -> Path:
    """ACREAGE_SHARED_DIR wins, so CI can mount the data elsewhere."""
    override = os.environ.get("ACREAGE_SHARED_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2].parent / "shared"


@cache
def load_features(name: str) -> list[dict[str, Any]]:
    with (shared_dir() / "data" / f"{name}.geojson").open(encoding="utf-8") as handle:
        features: list[dict[str, Any]] = json.load(handle)["features"]
    return features


@cache
def load_normalized(name: str) -> list[BaseGeometry]:
    return [normalize_geometry(f["geometry"]) for f in load_features(name)]


def union_area(geoms: Sequence[BaseGeometry]) -> float:
    """The oracle: area of a plain one-shot union, independent of the ledgers' grid."""
    if not geoms:
        return 0.0
    return geodesic_area_m2(shapely.union_all(list(geoms)))


@pytest.fixture(params=DATA_FILES)
def data_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def oracle() -> Callable[[Sequence[BaseGeometry]], float]:
    return union_area
