"""One API owner's year of metering state, written straight into a RocksDB as the Meter
writes it, then rebuilt as a worker taking the partition over rebuilds it.

Metering 1M events through the Meter would take hours of overlay work the reads never
see, so the stores are filled directly with what the reads do see:

- usage records (`r` keys, each with its marker as value): a year of events of two
  types, 50 Leaf users, 10 % arriving up to 3 days late, each with the area it added per
  product, for the user and for the owner;
- the contracts of their products: OPERATIONS_FILE, SATELLITE_PROCESS_PLANET and
  UNIFIED_AREA, all starting on the first day, so every day lies in term 0;
- one ledger piece per contract, scope (the owner and each user) and day, whose area is
  what that day's records added there, so the ledgers' day totals, the snapshots' source,
  agree with the records, as the hourly split assumes.

The reads look at the ledgers' day totals and the records, never at a piece's shape, so
each piece is a small square.
"""
from __future__ import annotations

import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import cast

from rocksdict import Options, Rdict
from shapely.geometry import box

from aggregates.codec import encode_piece
from aggregates.contracts import OWNER_SCOPE, Contract, new_contract, user_scope
from aggregates.history import record_write
from aggregates.markers import encode_marker
from aggregates.meter import Meter
from aggregates.products import Product
from aggregates.records import ProductArea, UsageRecord
from aggregates.state import Kind, encode_contract, key
from streams.holder import scan_back

OWNER = "owner@example.com"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 365
USERS = 50
# event type -> its product, which UNIFIED_AREA counts too (aggregates.products)
PRODUCT_OF_TYPE = {
    "providerFileProcessingFinished": Product.OPERATIONS_FILE,
    "satelliteImageProcessingFinished": Product.SATELLITE_PROCESS_PLANET,
}
PRODUCTS = (*PRODUCT_OF_TYPE.values(), Product.UNIFIED_AREA)
# (product, scope, ordinal day) -> m² its records added there
DayAreas = dict[tuple[Product, str, int], float]


def fill(db: Rdict, count: int, seed: int) -> None:
    """Records in roughly event-time order, as a stream delivers them, then the
    contracts and ledgers they imply."""
    areas = fill_records(db, count, seed)
    contracts = {p: new_contract(OWNER, p, T0.date()) for p in PRODUCTS}
    for contract in contracts.values():
        db[key(Kind.CONTRACT, OWNER, contract.contract_id).encode()] = encode_contract(contract)
    for piece_id, ((product, scope, day), m2) in enumerate(sorted(areas.items())):
        db[piece_key(contracts[product], scope, piece_id)] = piece(piece_id, day, m2)
    print(f"ledgers: {len(contracts)} contracts x {USERS + 1} scopes x {DAYS} days = "
          f"{len(areas):,} day totals")


def fill_records(db: Rdict, count: int, seed: int) -> DayAreas:
    rng = random.Random(seed)
    areas: DayAreas = defaultdict(float)
    step = DAYS * 86_400 / count
    started = time.perf_counter()
    for i in range(count):
        late = min(i * step, rng.uniform(0, 3 * 86_400)) if rng.random() < 0.1 else 0.0
        at = T0 + timedelta(seconds=i * step - late)
        kind = rng.choice(tuple(PRODUCT_OF_TYPE))
        user = f"u{rng.randrange(USERS)}"
        user_m2 = rng.uniform(500.0, 5_000.0)
        area = ProductArea(user_m2, user_m2 * rng.choice((1.0, 0.5, 0.0)))
        products = (PRODUCT_OF_TYPE[kind], Product.UNIFIED_AREA)
        record = UsageRecord(f"e{i}", kind, at, OWNER, user, [p.value for p in products],
                             "SUCCESS", True, area.user_m2, area.owner_m2, None,
                             {p.value: area for p in products})
        row, marker = record_write(record, i, encode_marker(record, i, None))
        db[row.encode()] = marker
        day = at.date().toordinal()
        for product in products:
            areas[(product, user_scope(user), day)] += area.user_m2
            areas[(product, OWNER_SCOPE, day)] += area.owner_m2
        if (i + 1) % (count // 10 or 1) == 0:
            print(f"  filled {i + 1:,} records", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"insert: {count:,} records in {elapsed:.1f} s = {count / elapsed:,.0f} records/s")
    return areas


def piece_key(contract: Contract, scope: str, piece_id: int) -> bytes:
    return key(Kind.PIECE, OWNER, contract.contract_id, 0, scope, piece_id).encode()


def piece(piece_id: int, day: int, m2: float) -> bytes:
    x, y = 8.0 + (piece_id % 1_000) * 0.01, 48.0 + (piece_id // 1_000) * 0.01
    square = box(x, y, x + 0.001, y + 0.001)
    return encode_piece(day, square, m2, square.bounds)


@contextmanager
def filled_store(records: int, seed: int) -> Iterator[Rdict]:
    """A throw-away RocksDB holding `records` records, as the read benches all start."""
    with tempfile.TemporaryDirectory() as path:
        db = Rdict(path, options=Options(raw_mode=True))
        fill(db, records, seed)
        try:
            yield db
        finally:
            db.close()


def rebuilt(db: Rdict) -> Meter:
    """The Meter a worker builds on takeover: from every key, reading the table after."""
    started = time.perf_counter()
    meter = Meter.from_state(_items(db), read=lambda k: db.get(k.encode()),
                             scan=partial(scan_back, db))
    print(f"takeover: Meter rebuilt from the table in {time.perf_counter() - started:.1f} s")
    return meter


def _items(db: Rdict) -> Iterator[tuple[str, bytes]]:
    for raw, value in db.items():
        yield cast(bytes, raw).decode(), cast(bytes, value)


def year_day(i: int) -> date:
    return T0.date() + timedelta(days=i % DAYS)
