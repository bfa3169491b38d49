"""Byte encoding of the stored geometries: ledger pieces and boundary versions."""

import struct
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from aggregates.area import geodesic_area_m2

Bounds = tuple[float, float, float, float]

# Big-endian signed 32-bit day ordinal, a format tag, the piece's area and the box of its
# index entry as doubles, then WKB, because it round-trips doubles exactly.
_DAY = struct.Struct(">i")
_AREA = struct.Struct(">d")
_AREA_AND_BOX = struct.Struct(">5d")
# WKB opens with its byte-order flag, 0 or 1; pieces written before the area was stored
# have their WKB right after the day, so the tags tell the four formats apart. The
# current one puts the origin (aggregates/origin.py), length first, between the header
# and the WKB: a rebuild copies the header and never reaches it.
_WITH_AREA = b"\x02"
_WITH_BOX = b"\x03"
_WITH_ORIGIN = b"\x05"
_ORIGIN_LENGTH = struct.Struct(">H")
_HEADED = (_WITH_BOX, _WITH_ORIGIN)


@dataclass(frozen=True, slots=True)
class PieceHeader:
    """What indexing and totals need of a stored piece: enough to rebuild a ledger
    without parsing a single geometry."""

    day: int
    area_m2: float
    box: Bounds  # its R-tree entry's box: pieces only shrink, so it may be wider


def encode_piece(
    day: int, geom: BaseGeometry, area_m2: float, box: Bounds, origin: bytes = b""
) -> bytes:
    """Day, area and box first, so a rebuild reads them without the geometry; then the
    encoded origin of the piece's ground (b"" when unknown)."""
    wkb: bytes = shapely.to_wkb(geom)
    head = _DAY.pack(day) + _WITH_ORIGIN + _AREA_AND_BOX.pack(area_m2, *box)
    return head + _ORIGIN_LENGTH.pack(len(origin)) + origin + wkb


# The whole header of the current format: a takeover copies each piece's header as it is
# and parses a ledger's all at once, as HEADERS.
_HEADER = struct.Struct(">ic5d")
HEADERS = np.dtype([("day", ">i4"), ("tag", "S1"), ("area", ">f8"), ("box", ">f8", (4,))])
assert HEADERS.itemsize == _HEADER.size


def header_bytes(data: bytes) -> bytes:
    """A stored piece's header in the current format, whatever format it was stored in."""
    if data[_DAY.size : _DAY.size + 1] in _HEADED:
        return data[: _HEADER.size]
    header = decode_header(data)
    return _HEADER.pack(header.day, _WITH_BOX, header.area_m2, *header.box)


def decode_header(data: bytes) -> PieceHeader:
    """The header alone; pieces stored in the older formats are parsed (and measured)."""
    (day,) = _DAY.unpack_from(data)
    start = _DAY.size
    if data[start : start + 1] in _HEADED:
        area, *box = _AREA_AND_BOX.unpack_from(data, start + 1)
        return PieceHeader(day, area, (box[0], box[1], box[2], box[3]))
    return decode_piece(data)[0]


def decode_piece(data: bytes) -> tuple[PieceHeader, BaseGeometry]:
    """Inverse of encode_piece; a piece stored without its area is measured, one stored
    without its box is indexed by its geometry's."""
    (day,) = _DAY.unpack_from(data)
    start = _DAY.size
    tag = data[start : start + 1]
    if tag == _WITH_ORIGIN:
        (length,) = _ORIGIN_LENGTH.unpack_from(data, _HEADER.size)
        wkb_at = _HEADER.size + _ORIGIN_LENGTH.size + length
        return decode_header(data), shapely.from_wkb(data[wkb_at:])
    if tag == _WITH_BOX:
        header = decode_header(data)
        return header, shapely.from_wkb(data[start + 1 + _AREA_AND_BOX.size :])
    if tag == _WITH_AREA:
        (area,) = _AREA.unpack_from(data, start + 1)
        geom: BaseGeometry = shapely.from_wkb(data[start + 1 + _AREA.size :])
    else:
        geom = shapely.from_wkb(data[start:])
        area = geodesic_area_m2(geom)
    return PieceHeader(day, area, geom.bounds), geom


def piece_origin(data: bytes) -> bytes:
    """A stored piece's encoded origin; b"" for pieces stored before origins were."""
    if data[_DAY.size : _DAY.size + 1] != _WITH_ORIGIN:
        return b""
    (length,) = _ORIGIN_LENGTH.unpack_from(data, _HEADER.size)
    start = _HEADER.size + _ORIGIN_LENGTH.size
    return data[start : start + length]


# A boundary version: a tag, its box, then WKB; b"" when the version deletes its field.
# Versions written before the box have bare WKB, which opens with 0 or 1, never the tag.
_VERSION_WITH_BOX = b"\x04"
_BOX = struct.Struct(">4d")


def encode_version(geom: BaseGeometry | None) -> bytes:
    """The box first, so a rebuild indexes the version without parsing it."""
    if geom is None:
        return b""
    box: Bounds = geom.bounds
    return _VERSION_WITH_BOX + _BOX.pack(*box) + shapely.to_wkb(geom)


def version_box(data: bytes) -> Bounds | None:
    if not data:
        return None
    if data[:1] == _VERSION_WITH_BOX:
        x0, y0, x1, y1 = _BOX.unpack_from(data, 1)
        return x0, y0, x1, y1
    bounds: Bounds = shapely.from_wkb(data).bounds
    return bounds


def version_wkb_size(data: bytes) -> int:
    """The size of a stored version's shape, told without parsing it (0: deleted)."""
    if data[:1] == _VERSION_WITH_BOX:
        return len(data) - 1 - _BOX.size
    return len(data)


def decode_version(data: bytes) -> BaseGeometry | None:
    if not data:
        return None
    if data[:1] == _VERSION_WITH_BOX:
        return shapely.from_wkb(data[1 + _BOX.size :])
    return shapely.from_wkb(data)
