"""Area units of the API. What is stored and computed is m²; a unit is how a request asks
for it to be shown."""

from __future__ import annotations

from enum import StrEnum


class Unit(StrEnum):
    """Area units of the API; m² is what is stored."""

    ACRES = "acres"
    HECTARES = "hectares"
    M2 = "m2"


M2_PER_UNIT: dict[Unit, float] = {Unit.ACRES: 4046.8564224, Unit.HECTARES: 10_000.0, Unit.M2: 1.0}


def convert(m2: float, unit: Unit) -> float:
    """m² to `unit`; the international acre is exactly 4046.8564224 m²."""
    return m2 / M2_PER_UNIT[unit]


def to_m2(value: float, unit: Unit) -> float:
    return value * M2_PER_UNIT[unit]
