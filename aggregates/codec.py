"""Byte encoding of one ledger piece, the unit of persistence."""

import struct

import shapely
from shapely.geometry.base import BaseGeometry

# Big-endian signed 32-bit day ordinal; WKB follows because it round-trips doubles exactly.
_DAY = struct.Struct(">i")


def encode_piece(day: int, geom: BaseGeometry) -> bytes:
    """Day first so a store can read attribution without parsing the geometry."""
    wkb: bytes = shapely.to_wkb(geom)
    return _DAY.pack(day) + wkb


def decode_piece(data: bytes) -> tuple[int, BaseGeometry]:
    """Inverse of encode_piece."""
    (day,) = _DAY.unpack_from(data)
    geom: BaseGeometry = shapely.from_wkb(data[_DAY.size :])
    return day, geom
