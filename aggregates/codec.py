"""Byte encoding of one ledger piece, the unit of persistence."""

import struct

import shapely
from shapely.geometry.base import BaseGeometry

from aggregates.area import geodesic_area_m2

# Big-endian signed 32-bit day ordinal, a format tag, the piece's area as a double, then
# WKB, because it round-trips doubles exactly.
_DAY = struct.Struct(">i")
_AREA = struct.Struct(">d")
# WKB opens with its byte-order flag, 0 or 1; pieces written before the area was stored
# have their WKB right after the day, so this tag tells the two formats apart.
_WITH_AREA = b"\x02"


def encode_piece(day: int, geom: BaseGeometry, area_m2: float) -> bytes:
    """Day first so a store can read attribution without parsing the geometry, and the
    area stored so a rebuild need not measure every piece again."""
    wkb: bytes = shapely.to_wkb(geom)
    return _DAY.pack(day) + _WITH_AREA + _AREA.pack(area_m2) + wkb


def decode_piece(data: bytes) -> tuple[int, BaseGeometry, float]:
    """Inverse of encode_piece; a piece stored without its area is measured."""
    (day,) = _DAY.unpack_from(data)
    start = _DAY.size
    if data[start : start + 1] != _WITH_AREA:
        old: BaseGeometry = shapely.from_wkb(data[start:])
        return day, old, geodesic_area_m2(old)
    (area,) = _AREA.unpack_from(data, start + 1)
    geom: BaseGeometry = shapely.from_wkb(data[start + 1 + _AREA.size :])
    return day, geom, area
