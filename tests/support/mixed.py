"""Issue 8's mixed scenario: every input topic, two API owners, events meant to be read in
any interleaving, and an oracle computed from the event list alone.

The builder writes events in the order upstream would send them (`Mixed.events`), with the
awkward cases SPEC §2, §3 and §5 name: boundaries created, updated (twice), deleted and
re-created; operations that name a field before, between and after its versions, after
its delete, a field of another Leaf user, no field at all, or lie outside their field;
machine files and Planet/Sentinel scenes; FAILED events, some retried as SUCCESS with the
same id; re-deliveries; late events dated before what was already sent; and a second API
owner whose event ids are the first owner's ids. `Mixed.ordered` gives the cross-topic
orders the integration test publishes.

`oracle(events)` does not replay anything: it reads the set of events (in whatever order
they come), keeps one SUCCESS per (apiOwner, id), and unions every counted geometry of a
scope at once with `shapely.union_all`, clipping operations to the version of their field
in force at their event time. Timestamps are relative to the moment of building (the last
five days), so the scenario never ages out of the plausibility window.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from aggregates import geodesic_area_m2, normalize_geometry
from tests.support.scenario import geo, load_features

OWNER_SCOPE = "api-owner"
BOUNDARY_TOPIC_TYPES = ("fieldBoundaryCreated", "fieldBoundaryUpdated", "fieldBoundaryDeleted")
OPERATION = "operationProcessingFinished"
ORDERS = ("operations-first", "boundaries-last", "random")
DAYS = 5

Key = tuple[str, str, str]  # apiOwner, product, scope


def user_scope(user: str) -> str:
    return f"leaf-user:{user}"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _buffer(geom: BaseGeometry, deg: float) -> dict[str, Any]:
    return geo(shapely.buffer(geom, deg, quad_segs=2))


def _shift(geom: BaseGeometry, dx: float, dy: float = 0.0) -> dict[str, Any]:
    return geo(shapely.transform(geom, lambda xy: xy + [dx, dy]))


@dataclass
class _Owner:
    """One API owner's events, with a clock that makes every event time unique."""

    name: str
    start: datetime  # 00:00 UTC of the scenario's first day
    events: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0
    _tick: int = 0

    def when(self, day: float) -> str:
        """A time on `day` (0–4), one hour in, then 5 s apart per event: never two equal
        timestamps under one owner, so no rule depends on how ties are broken."""
        self._tick += 1
        return stamp(self.start + timedelta(days=day, hours=1, seconds=5 * self._tick))

    def new_id(self) -> str:
        # Ids repeat across owners on purpose: (apiOwner, id) is what must be unique.
        self._next_id += 1
        return f"evt-{self._next_id:05d}"

    def event(
        self, type_: str, user: str, day: float, *, late: bool = False, **fields: Any
    ) -> dict[str, Any]:
        ev = {
            "id": self.new_id(),
            "type": type_,
            "timestamp": self.when(day),
            "apiOwner": self.name,
            "leafUserId": user,
            **fields,
        }
        (self.late if late else self.events).append(ev)
        return ev


@dataclass
class Mixed:
    owners: tuple[str, ...]
    events: list[dict[str, Any]]  # upstream order: each topic's own sequence
    seed: int

    def ordered(self, order: str) -> list[dict[str, Any]]:
        """The whole list in one cross-topic order; each topic keeps its own sequence
        except under `random`, a seeded shuffle of everything."""
        if order == "operations-first":
            return [e for e in self.events if e["type"] == OPERATION] + [
                e for e in self.events if e["type"] != OPERATION
            ]
        if order == "boundaries-last":
            return [e for e in self.events if e["type"] not in BOUNDARY_TOPIC_TYPES] + [
                e for e in self.events if e["type"] in BOUNDARY_TOPIC_TYPES
            ]
        if order == "random":
            shuffled = list(self.events)
            random.Random(self.seed).shuffle(shuffled)
            return shuffled
        raise ValueError(order)

    def composition(self) -> dict[str, int]:
        """Counts by kind, for the report: types, and the awkward cases among them."""
        out: Counter[str] = Counter()
        sent: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        latest: dict[str, str] = {}
        for e in self.events:
            kind = e["type"]
            if kind == "satelliteImageProcessingFinished":
                kind += f"/{e['provider']}"
            out[kind] += 1
            k = (e["apiOwner"], e["id"])
            if e in sent[k]:
                out["re-deliveries (a copy of an event sent before)"] += 1
            elif e.get("status") == "FAILED":
                out["FAILED"] += 1
            elif any(s.get("status") == "FAILED" for s in sent[k]):
                out["SUCCESS retries of a FAILED id"] += 1
            sent[k].append(e)
            if e["timestamp"] < latest.get(e["apiOwner"], ""):
                out["late (dated before an event of its owner sent earlier)"] += 1
            latest[e["apiOwner"]] = max(latest.get(e["apiOwner"], ""), e["timestamp"])
        out["total"] = len(self.events)
        out["days"] = len({e["timestamp"][:10] for e in self.events})
        owners_of_id: dict[str, set[str]] = defaultdict(set)
        for e in self.events:
            owners_of_id[e["id"]].add(e["apiOwner"])
        out["ids used by both owners"] = sum(1 for o in owners_of_id.values() if len(o) > 1)
        return dict(out)


def build_mixed(
    owners: Sequence[str],
    *,
    now: datetime | None = None,
    seed: int = 8,
    fields_per_user: int = 38,
) -> Mixed:
    """Two owners (three Leaf users, then two) on real Chofu parcels of their own.

    Every event lies in the last five whole days before `now`; late events are listed
    after events dated later than them.
    """
    now = now or datetime.now(UTC)
    start = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=DAYS)
    rng = random.Random(seed)
    # Parcels in rows of ~400 m, west to east, so each owner's parcels are neighbours.
    features = sorted(
        load_features("chofu_fude_2019.geojson"),
        key=lambda f: (
            round(shapely.geometry.shape(f["geometry"]).centroid.y / 0.004),
            shapely.geometry.shape(f["geometry"]).centroid.x,
        ),
    )
    per_owner = fields_per_user * 3 + 40
    mixed = Mixed(tuple(owners), [], seed)
    for k, name in enumerate(owners):
        users = ("u1", "u2", "u3") if k == 0 else ("u1", "u2")
        pool = features[k * per_owner : (k + 1) * per_owner]
        mixed.events += _owner_events(_Owner(name, start), users, pool, fields_per_user, rng)
    return mixed


def _owner_events(
    o: _Owner,
    users: tuple[str, ...],
    pool: list[dict[str, Any]],
    n: int,
    rng: random.Random,
) -> list[dict[str, Any]]:
    raw = [f["geometry"] for f in pool]
    norm = [normalize_geometry(g) for g in raw]
    # user -> field id -> index into the pool; the same ids "f0".. under every user name
    # different parcels, so a field is only ever looked up under its own user.
    fields: dict[str, dict[str, int]] = {
        u: {f"f{j}": j * len(users) + i for j in range(n)} for i, u in enumerate(users)
    }
    boundary = "fieldBoundaryCreated"
    op = OPERATION

    def ops_on(user: str, fid: str, day: float, shape: dict[str, Any] | None = None) -> None:
        j = fields[user].get(fid)
        geom = shape or _buffer(norm[j] if j is not None else norm[-1], 0.00005)
        o.event(op, user, day, operationId=f"op-{user}-{fid}-{day}", fieldId=fid, geometry=geom)

    # Day 0 and 1: every field created; half on each day.
    early_ops: list[tuple[str, str]] = []
    for user in users:
        for fid, j in fields[user].items():
            day = 0 if int(fid[1:]) % 2 == 0 else 1
            o.event(boundary, user, day, fieldId=fid, geometry=raw[j])
            if int(fid[1:]) % 5 == 1:
                early_ops.append((user, fid))
    # The same parcel connected by a second user (overlap between users), and a parcel
    # re-digitised a few centimetres east by the last user (the second, for two users).
    shared = [(users[0], users[1], j) for j in range(0, n, 4)]
    for src, dst, j in shared:
        o.event(boundary, dst, 1, fieldId=f"s{j}", geometry=raw[fields[src][f"f{j}"]])
    for j in range(1, n, 6):
        src = users[1]
        dst = users[-1]
        moved = _shift(norm[fields[src][f"f{j}"]], 3e-7)
        o.event(boundary, dst, 1, fieldId=f"r{j}", geometry=moved)
    # Operations on day 0: before their field existed (odd ids, created on day 1: clipped
    # to that first version) or just after it (even ids).
    for user, fid in early_ops:
        ops_on(user, fid, 0.0 if int(fid[1:]) % 2 else 0.5)
    # Operations on day 1.5 on fields created day 0/1: clipped to the created shape.
    for user in users:
        for fid in list(fields[user])[::2]:
            ops_on(user, fid, 1.5)

    # Machine files and satellite scenes over neighbouring parcels.
    tree = shapely.STRtree(norm)

    def around(j: int, deg: float) -> BaseGeometry:
        near = tree.query(shapely.buffer(norm[j].centroid, deg))
        return shapely.union_all([norm[i] for i in near] + [norm[j]])

    for g in range(0, len(norm) - 40, 3):
        user = users[(g // 3) % len(users)]
        o.event(
            "providerFileProcessingFinished",
            user,
            0.5 + (g % 3),
            fileId=f"file{g}",
            geometry=geo(around(g, 0.0006).convex_hull),
        )
    for s in range(20):
        a = rng.randrange(len(norm))
        provider = "planet" if s % 2 else "sentinel"
        o.event(
            "satelliteImageProcessingFinished",
            users[(s // 2) % len(users)],
            1 + s % 3,
            imageId=f"img{s}",
            provider=provider,
            geometry=geo(around(a, 0.002).envelope),
        )
    for s in range(2):  # 0.1° a side, over 256 vertices once densified: metered in a thread
        middle = norm[s * 37 % len(norm)].centroid
        o.event("satelliteImageProcessingFinished", users[s % len(users)], 1 + s,
                imageId=f"wide{s}", provider="planet", geometry=geo(shapely.box(
                    middle.x - 0.05, middle.y - 0.05, middle.x + 0.05, middle.y + 0.05)))

    # Day 2: updates (grown or moved ~1 m); operations after them clip to the new shape.
    updated: list[tuple[str, str, int]] = []
    for user in users:
        for fid, j in list(fields[user].items())[::4]:
            shape = _buffer(norm[j], 0.00002) if j % 2 else _shift(norm[j], 1e-5, 5e-6)
            o.event("fieldBoundaryUpdated", user, 2, fieldId=fid, geometry=shape)
            updated.append((user, fid, j))
    for user, fid, _ in updated:
        ops_on(user, fid, 2.5)
    # Day 3: a second update of some, deletes of others; operations after a delete and
    # on fields nobody (or only another user) has count unclipped; one lies outside.
    for user, fid, j in updated[1::3]:
        o.event("fieldBoundaryUpdated", user, 3, fieldId=fid, geometry=_buffer(norm[j], 0.00004))
        ops_on(user, fid, 3.5)
    deleted: list[tuple[str, str, int]] = []
    for user in users:
        for fid, j in list(fields[user].items())[3::7]:
            o.event("fieldBoundaryDeleted", user, 3, fieldId=fid)
            deleted.append((user, fid, j))
    for user, fid, _ in deleted:
        ops_on(user, fid, 3.5)
    for user in users:
        ops_on(user, f"nowhere-{user}", 3.5)
    # "s0" is users[1]'s copy of users[0]'s "f0": clipped for users[1]; users[0] has no
    # field "s0" (another user's field is not looked up), so it counts unclipped there.
    around_s0 = _buffer(norm[fields[users[0]]["f0"]], 0.00005)
    ops_on(users[1], "s0", 3.5, shape=around_s0)
    ops_on(users[0], "s0", 3.6, shape=around_s0)
    far = _shift(norm[fields[users[0]]["f5"]], 0.01)
    ops_on(users[0], "f5", 3.5, shape=far)  # outside its field: counts nothing
    for k in range(50):
        j = rng.randrange(len(norm))
        o.event(
            op,
            users[k % len(users)],
            1 + k % 4,
            operationId=f"free{k}",
            geometry=geo(norm[j].envelope),
        )
    # Day 4: two deleted fields come back with an update; operations clip to that.
    for user, fid, j in deleted[:2]:
        o.event("fieldBoundaryUpdated", user, 4, fieldId=fid, geometry=_buffer(norm[j], 0.00001))
        ops_on(user, fid, 4.2)
    for user in users:
        for fid in list(fields[user])[1::3]:
            ops_on(user, fid, 4.5)

    # Late events, sent after everything above although dated earlier.
    for user in users:
        j = len(norm) - 40 + users.index(user) * 3
        o.event(boundary, user, 0.2, late=True, fieldId=f"late{j}", geometry=raw[j])
        ops_on(user, f"late{j}", 2.2, shape=_buffer(norm[j], 0.00005))
    for user, fid, j in updated[2:8:2]:
        # An older shape than the day-2 update: FIELDS_BOUNDARY counts it, AUDIT keeps
        # the day-2 shape, and an operation dated between the two clips to it.
        o.event(
            "fieldBoundaryUpdated",
            user,
            1.7,
            late=True,
            fieldId=fid,
            geometry=_shift(norm[j], -1e-5),
        )
        ops_on(user, fid, 1.8)
    for user, fid, _ in updated[1:7:3]:
        o.event("fieldBoundaryDeleted", user, 2.8, late=True, fieldId=fid)  # day-3 update wins
    for user in users:
        o.event("fieldBoundaryDeleted", user, 4.8, late=True, fieldId="f9")  # the latest word
    o.event(
        "providerFileProcessingFinished",
        users[0],
        0.1,
        late=True,
        fileId="late-file",
        geometry=_buffer(norm[-5], 0.0003),
    )
    o.event(
        "satelliteImageProcessingFinished",
        users[-1],
        0.3,
        late=True,
        imageId="late-img",
        provider="planet",
        geometry=geo(norm[-10].envelope),
    )

    # FAILED events that never succeed: had they counted, every total would differ.
    huge = _buffer(norm[0], 0.002)
    o.event(
        "satelliteImageProcessingFinished",
        users[0],
        2,
        status="FAILED",
        imageId="bad",
        provider="sentinel",
        geometry=huge,
    )
    o.event(
        "providerFileProcessingFinished", users[1], 2, status="FAILED", fileId="bad", geometry=huge
    )
    o.event(op, users[0], 2.7, status="FAILED", operationId="bad", fieldId="f2", geometry=huge)
    o.event(op, users[1], 2.7, status="FAILED", operationId="bad2", geometry=huge)
    o.event("fieldBoundaryUpdated", users[0], 3.9, status="FAILED", fieldId="f4", geometry=huge)
    o.event("fieldBoundaryDeleted", users[1], 3.9, status="FAILED", fieldId="f6")
    # FAILED, then retried as SUCCESS with the same id (later, as a retry is).
    retries: list[dict[str, Any]] = []
    for k, user in enumerate(users * 2):
        j = fields[user][f"f{10 + k}"]
        kinds: list[tuple[str, dict[str, Any]]] = [
            (
                op,
                {
                    "operationId": f"retry{k}",
                    "fieldId": f"f{10 + k}",
                    "geometry": _buffer(norm[j], 0.00006),
                },
            ),
            (
                "providerFileProcessingFinished",
                {"fileId": f"retry{k}", "geometry": _buffer(norm[j], 0.0002)},
            ),
            (
                "satelliteImageProcessingFinished",
                {"imageId": f"retry{k}", "provider": "planet", "geometry": geo(norm[j].envelope)},
            ),
            (
                "fieldBoundaryUpdated",
                {"fieldId": f"f{10 + k}", "geometry": _buffer(norm[j], 0.00003)},
            ),
        ]
        type_, body = kinds[k % len(kinds)]
        failed = o.event(type_, user, 2 + 0.3 * (k % 3), status="FAILED", **body)
        retries.append({**failed, "status": "SUCCESS", "timestamp": o.when(2.6 + 0.3 * (k % 3))})
    out = o.events + retries + o.late
    # Re-deliveries: copies of sent events (FAILED ones too), somewhere after the original.
    for _ in range(len(out) // 8):
        i = rng.randrange(len(out))
        out.insert(rng.randrange(i + 1, len(out) + 1), dict(out[i]))
    return out


# ---- the oracle ------------------------------------------------------------------------


def _polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    union = shapely.union_all(parts)
    return None if union.is_empty or union.area == 0 else union


def _product_of(ev: dict[str, Any]) -> str:
    if ev["type"] in ("fieldBoundaryCreated", "fieldBoundaryUpdated"):
        return "FIELDS_BOUNDARY"
    if ev["type"] == "providerFileProcessingFinished":
        return "OPERATIONS_FILE"
    if ev["type"] == OPERATION:
        return "OPERATIONS_OPERATION"
    if ev["type"] == "satelliteImageProcessingFinished":
        return f"SATELLITE_PROCESS_{ev['provider'].upper()}"
    raise ValueError(ev["type"])


@dataclass(frozen=True)
class _Version:
    moment: datetime
    event_id: str
    geom: BaseGeometry | None  # None: deleted


def oracle(events: Iterable[dict[str, Any]]) -> dict[Key, float]:
    """m² per (apiOwner, product, scope) for the set of `events`, in any order.

    - one SUCCESS per (apiOwner, id) counts; FAILED counts nothing and uses up no id;
    - FIELDS_BOUNDARY: union of every created/updated shape (one term: five days);
    - AUDIT_FIELDS_BOUNDARY: union of each (user, field)'s latest version by event time,
      unless that version is a delete;
    - OPERATIONS_FILE, SATELLITE_*: union of the footprints;
    - OPERATIONS_OPERATION: with a fieldId, clipped to that user's field version in force
      at the operation's time (latest at or before it, else the first); unclipped when
      that version is a delete or the user has no such field; without one, unclipped;
    - UNIFIED_AREA: union of everything the period-bounded products count.
    Scopes: `leaf-user:{id}` for each user, `api-owner` for the owner's union.
    """
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in events:
        if ev.get("status", "SUCCESS") == "FAILED":
            continue
        k = (ev["apiOwner"], ev["id"])
        if k in unique:
            assert unique[k] == ev, f"{k}: two different SUCCESS events"
            continue
        unique[k] = ev
    shapes = {k: normalize_geometry(e["geometry"]) for k, e in unique.items() if "geometry" in e}

    history: dict[tuple[str, str, str], list[_Version]] = defaultdict(list)
    for k, ev in unique.items():
        if ev["type"] in BOUNDARY_TOPIC_TYPES:
            fkey = (ev["apiOwner"], ev["leafUserId"], ev["fieldId"])
            history[fkey].append(_Version(parse(ev["timestamp"]), ev["id"], shapes.get(k)))
    for fkey, versions in history.items():
        versions.sort(key=lambda v: v.moment)
        moments = [v.moment for v in versions]
        assert len(set(moments)) == len(moments), f"{fkey}: two versions at one time"

    counted: dict[Key, list[BaseGeometry]] = defaultdict(list)
    audit_scopes: set[tuple[str, str]] = set()

    def count(owner: str, user: str, product: str, geom: BaseGeometry) -> None:
        for scope in (user_scope(user), OWNER_SCOPE):
            counted[(owner, product, scope)].append(geom)
            counted[(owner, "UNIFIED_AREA", scope)].append(geom)

    for k, ev in unique.items():
        owner, user = ev["apiOwner"], ev["leafUserId"]
        if ev["type"] == "fieldBoundaryDeleted":
            audit_scopes.add((owner, user))
            continue
        geom = shapes[k]
        if ev["type"] in BOUNDARY_TOPIC_TYPES:
            audit_scopes.add((owner, user))
        if ev["type"] == OPERATION and ev.get("fieldId") is not None:
            versions = history.get((owner, user, ev["fieldId"]), [])
            if versions:
                moments = [v.moment for v in versions]
                at = bisect.bisect_right(moments, parse(ev["timestamp"]))
                in_force = versions[at - 1] if at else versions[0]
                if in_force.geom is not None:
                    clipped = _polygonal(shapely.intersection(geom, in_force.geom))
                    if clipped is None:
                        continue  # outside its field: nothing processed there
                    geom = clipped
        count(owner, user, _product_of(ev), geom)

    result = {k: geodesic_area_m2(shapely.union_all(g)) for k, g in counted.items()}
    live: dict[Key, list[BaseGeometry]] = defaultdict(list)
    for (owner, user, _), versions in history.items():
        latest = versions[-1]
        if latest.geom is not None:
            live[(owner, "AUDIT_FIELDS_BOUNDARY", user_scope(user))].append(latest.geom)
            live[(owner, "AUDIT_FIELDS_BOUNDARY", OWNER_SCOPE)].append(latest.geom)
    for owner, user in audit_scopes:
        for scope in (user_scope(user), OWNER_SCOPE):
            geoms = live.get((owner, "AUDIT_FIELDS_BOUNDARY", scope), [])
            area = geodesic_area_m2(shapely.union_all(geoms)) if geoms else 0.0
            result[(owner, "AUDIT_FIELDS_BOUNDARY", scope)] = area
    return result
