"""Pure spatial core of Acreage: geometry intake, geodesic area and unique-area ledgers."""

from aggregates.area import EPSILON_M2, geodesic_area_m2
from aggregates.codec import decode_piece, encode_piece
from aggregates.geometry import GeometryError, clip_to, normalize_geometry
from aggregates.live import LiveUnion
from aggregates.overlay import GRID_DEG
from aggregates.union import UniqueAreaLedger

__all__ = [
    "EPSILON_M2",
    "GRID_DEG",
    "GeometryError",
    "LiveUnion",
    "UniqueAreaLedger",
    "clip_to",
    "decode_piece",
    "encode_piece",
    "geodesic_area_m2",
    "normalize_geometry",
]
