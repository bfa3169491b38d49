"""Stored geometries decode to what was stored, in every format ever written."""
from __future__ import annotations

import shapely
from hypothesis import given
from shapely.geometry.base import BaseGeometry

from aggregates.codec import decode_version, encode_version, version_box
from tests.aggregates.strategies import events


@given(events(max_size=3))
def test_a_version_keeps_its_box_and_its_shape_and_a_bare_wkb_one_still_reads(
    evs: list[tuple[BaseGeometry, int]],
) -> None:
    """Versions written before their box was stored are bare WKB; a takeover must index
    both kinds, and reading either gives the same shape back."""
    for geom, _ in evs:
        for stored in (encode_version(geom), shapely.to_wkb(geom)):
            assert version_box(stored) == geom.bounds
            back = decode_version(stored)
            assert back is not None and shapely.equals_exact(back, geom, tolerance=0)
    assert version_box(encode_version(None)) is None
    assert decode_version(encode_version(None)) is None
