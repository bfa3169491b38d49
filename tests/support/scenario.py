"""A billing scenario from real field boundaries, and its oracle computed independently.

Events mimic the platform: two Leaf users of one API owner connect overlapping fields
(shared and re-digitised a few centimetres off), machine files and satellite footprints
cover several fields, operations name the field they ran on, some boundaries are updated
or deleted, some events are duplicated or FAILED, and a few records are garbage.
The oracle unions every counted geometry of a scope at once with `shapely.union_all`.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping

from aggregates import geodesic_area_m2, normalize_geometry
from aggregates.contracts import OWNER_SCOPE, user_scope

SHARED = Path(os.environ.get("ACREAGE_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
DAY0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def load_features(name: str) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = json.loads((SHARED / "data" / name).read_text())["features"]
    return features


@dataclass
class Scenario:
    owner: str
    users: tuple[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_records: list[tuple[str, bytes]] = field(default_factory=list)
    counted_geoms: dict[tuple[str, str], list[Any]] = field(
        default_factory=lambda: defaultdict(list)
    )
    live: dict[tuple[str, str], Any] = field(default_factory=dict)
    duplicates: int = 0
    failed: int = 0

    def event(self, type_: str, user: str, day: int, **fields: Any) -> dict[str, Any]:
        ts = DAY0 + timedelta(days=day, seconds=len(self.events))
        ev = {
            "id": f"{self.owner}:{len(self.events)}",
            "type": type_,
            "timestamp": ts.isoformat().replace("+00:00", "Z"),
            "apiOwner": self.owner,
            "leafUserId": user,
            **fields,
        }
        self.events.append(ev)
        return ev

    def count(self, product: str, user: str, geom: Any) -> None:
        """Every period-bounded product also feeds UNIFIED_AREA."""
        for scope in (user_scope(user), OWNER_SCOPE):
            self.counted_geoms[(product, scope)].append(geom)
            self.counted_geoms[("UNIFIED_AREA", scope)].append(geom)

    def oracle(self) -> dict[tuple[str, str], float]:
        """m² per (product, scope): every counted geometry of the scope unioned at once."""
        result = {
            key: geodesic_area_m2(shapely.union_all(geoms))
            for key, geoms in self.counted_geoms.items()
        }
        audit: dict[str, list[Any]] = defaultdict(list)
        for (user, _), geom in self.live.items():
            audit[user_scope(user)].append(geom)
            audit[OWNER_SCOPE].append(geom)
        for scope, geoms in audit.items():
            result[("AUDIT_FIELDS_BOUNDARY", scope)] = geodesic_area_m2(shapely.union_all(geoms))
        return result


def geo(geom: Any) -> dict[str, Any]:
    """GeoJSON as it arrives off the wire: arrays, not tuples."""
    out: dict[str, Any] = json.loads(json.dumps(mapping(geom)))
    return out


def _shifted(geojson: dict[str, Any], dx: float) -> dict[str, Any]:
    """The same field re-digitised: every vertex a few centimetres east."""
    return geo(shapely.transform(shapely.geometry.shape(geojson), lambda xy: xy + [dx, 0.0]))


def build(
    owner: str,
    *,
    boundaries: int = 2200,
    seed: int = 7,
    first: int = 0,
    operations: int = 150,
    clip_operations: bool = True,
    failed: int = 30,
    duplicates: int = 100,
    wide_scenes: int = 0,
) -> Scenario:
    """`boundaries` real fields (Chofu first, then East Africa) plus everything else.

    `first` skips that many fields, so several owners can get fields of their own.
    `clip_operations=False` sends operations without a `fieldId`: they count unclipped, and
    the oracle stays exact whatever order the input topics are read in. `wide_scenes` adds
    scenes of 0.1° a side, which the worker meters in a thread. The defaults reproduce the
    original scenario exactly (same events, same random draws).
    """
    rng = random.Random(seed)
    features = (
        load_features("chofu_fude_2019.geojson") + load_features("east_africa_fields.geojson")
    )[first : first + boundaries]
    users = ("user-a", "user-b")
    sc = Scenario(owner, users)
    norm = [normalize_geometry(f["geometry"]) for f in features]

    def create(user: str, fid: str, geojson: dict[str, Any], geom: Any, day: int) -> None:
        sc.event("fieldBoundaryCreated", user, day, fieldId=fid, geometry=geojson)
        sc.count("FIELDS_BOUNDARY", user, geom)
        sc.live[(user, fid)] = geom

    for i, (feat, geom) in enumerate(zip(features, norm, strict=True)):
        user, other = users[i % 2], users[(i + 1) % 2]
        create(user, f"f{i}", feat["geometry"], geom, day=i % 2)
        if i % 5 == 0:
            create(other, f"shared{i}", feat["geometry"], geom, day=1)
        if i % 7 == 0:
            moved = _shifted(feat["geometry"], 3e-7)
            create(other, f"redigitised{i}", moved, normalize_geometry(moved), day=1)

    for start in range(0, min(len(norm), 600), 10):
        hull = shapely.union_all(norm[start : start + 10]).convex_hull
        user = users[(start // 10) % 2]
        sc.event(
            "providerFileProcessingFinished", user, 2, fileId=f"file{start}", geometry=geo(hull)
        )
        sc.count("OPERATIONS_FILE", user, normalize_geometry(geo(hull)))

    untouched = [i for i in range(len(norm)) if i % 60 and i % 50 != 13]
    for i in rng.sample(untouched, operations):
        user = users[i % 2]
        op = shapely.buffer(norm[i], 0.00005, quad_segs=2)
        if not clip_operations:  # no fieldId: clipping across topics is issue 8's subject
            sc.event("operationProcessingFinished", user, 3, operationId=f"op{i}", geometry=geo(op))
            sc.count("OPERATIONS_OPERATION", user, normalize_geometry(geo(op)))
            continue
        sc.event(
            "operationProcessingFinished",
            user,
            3,
            operationId=f"op{i}",
            fieldId=f"f{i}",
            geometry=geo(op),
        )
        sc.count(
            "OPERATIONS_OPERATION",
            user,
            shapely.intersection(normalize_geometry(geo(op)), norm[i]),
        )
    for k in range(20):
        user = users[k % 2]
        op = norm[rng.randrange(len(norm))].envelope
        sc.event("operationProcessingFinished", user, 3, operationId=f"free{k}", geometry=geo(op))
        sc.count("OPERATIONS_OPERATION", user, normalize_geometry(geo(op)))

    for k in range(20):
        provider = "planet" if k % 2 else "sentinel"
        start = rng.randrange(max(1, min(len(norm), 1884) - 40))
        footprint = shapely.union_all(norm[start : start + 40]).envelope
        user = users[(k // 2) % 2]
        sc.event(
            "satelliteImageProcessingFinished",
            user,
            3,
            imageId=f"img{k}",
            provider=provider,
            geometry=geo(footprint),
        )
        sc.count(
            f"SATELLITE_PROCESS_{provider.upper()}", user, normalize_geometry(geo(footprint))
        )
    for k in range(wide_scenes):  # over 256 vertices once densified: metered off the loop
        user = users[k % 2]
        middle = norm[(k * 37) % len(norm)].centroid
        footprint = shapely.box(middle.x - 0.05, middle.y - 0.05, middle.x + 0.05, middle.y + 0.05)
        sc.event("satelliteImageProcessingFinished", user, 2 + k % 3, imageId=f"wide{k}",
                 provider="planet", geometry=geo(footprint))
        sc.count("SATELLITE_PROCESS_PLANET", user, normalize_geometry(geo(footprint)))

    for i in range(0, len(norm), 60):
        user = users[i % 2]
        grown = shapely.buffer(norm[i], 0.00002, quad_segs=2)
        sc.event("fieldBoundaryUpdated", user, 4, fieldId=f"f{i}", geometry=geo(grown))
        geom = normalize_geometry(geo(grown))
        sc.count("FIELDS_BOUNDARY", user, geom)
        sc.live[(user, f"f{i}")] = geom
    for i in range(13, len(norm), 50):
        user = users[i % 2]
        sc.event("fieldBoundaryDeleted", user, 5, fieldId=f"f{i}")
        sc.live.pop((user, f"f{i}"), None)

    for k in range(failed):
        sc.event(
            "satelliteImageProcessingFinished",
            users[k % 2],
            3,
            imageId=f"failed{k}",
            provider="planet",
            status="FAILED",
            geometry={"type": "Polygon", "coordinates": [[[1, 1], [2, 1], [2, 2], [1, 1]]]},
        )
        sc.failed += 1
    originals = [e for e in sc.events if e.get("status") != "FAILED"]
    for ev in rng.sample(originals, duplicates):
        sc.events.append(dict(ev))
        sc.duplicates += 1

    sc.bad_records = [
        ("events.field-boundaries", b"{not json"),
        ("events.satellite", json.dumps({"id": "x1", "type": "nope"}).encode()),
        (
            "events.operations",
            json.dumps(
                {
                    "id": "x2",
                    "type": "operationProcessingFinished",
                    "timestamp": "2026-03-02T00:00:00Z",
                }
            ).encode(),
        ),
        (
            "events.provider-files",
            json.dumps(
                {
                    "id": "x3",
                    "type": "providerFileProcessingFinished",
                    "apiOwner": owner,
                    "leafUserId": "user-a",
                    "timestamp": "2026-03-02T00:00:00Z",
                    "fileId": "bad",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[200, 1], [201, 1], [201, 2], [200, 1]]],
                    },
                }
            ).encode(),
        ),
        (
            "events.provider-files",
            json.dumps(
                {
                    "id": "x4",
                    "type": "providerFileProcessingFinished",
                    "apiOwner": owner,
                    "leafUserId": "user-a",
                    "timestamp": "2026-03-02T00:00:00Z",
                    "fileId": "flat",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[1, 1], [2, 1], [3, 1], [1, 1]]],
                    },
                }
            ).encode(),
        ),
        (
            "events.provider-files",
            json.dumps(
                {
                    "id": "x5",
                    "type": "fieldBoundaryCreated",
                    "apiOwner": owner,
                    "leafUserId": "user-a",
                    "timestamp": "2026-03-02T00:00:00Z",
                    "fieldId": "wrong",
                    "geometry": {"type": "Point", "coordinates": [1, 1]},
                }
            ).encode(),
        ),
        ("events.field-boundaries", b"\xff\xfe binary"),
    ]
    return sc
