"""The indexed history answers exactly what filtering and sorting every record answers."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from aggregates.history import StoredHistory, UsageHistory, record_write
from aggregates.markers import encode_marker, marker_area
from aggregates.records import ProductArea, UsageRecord
from aggregates.state import split_key
from tests.support.tables import scan_of

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _record(owner: str, user: str, kind: str, minutes: int, event_id: str) -> UsageRecord:
    return UsageRecord(event_id, kind, T0 + timedelta(minutes=minutes), owner, user,
                       ["FIELDS_BOUNDARY"], "SUCCESS", True, 1.0, 1.0, None,
                       {"FIELDS_BOUNDARY": ProductArea(1.0, 1.0)})


records = st.lists(st.builds(
    _record,
    st.sampled_from(["o1", "o2"]),
    st.sampled_from(["u1", "u2", "u3"]),
    st.sampled_from(["FIELD_BOUNDARY_CREATED", "MACHINE_FILE_PROCESSED"]),
    st.integers(0, 5 * 24 * 60),
    st.text("abc", min_size=1, max_size=3),
), max_size=60)
days = st.none() | st.dates(date(2026, 2, 28), date(2026, 3, 7))


def _brute(all_: list[UsageRecord], owner: str, user: str | None, kind: str | None,
           start: date | None, end: date | None) -> list[UsageRecord]:
    found = [
        r for r in all_
        if r.api_owner == owner and user in (None, r.leaf_user_id) and kind in (None, r.type)
        and (start is None or r.timestamp.date() >= start)
        and (end is None or r.timestamp.date() <= end)
    ]
    return sorted(found, key=lambda r: (r.timestamp, r.event_id), reverse=True)


@given(records, st.sampled_from(["o1", "o2", "o3"]), st.sampled_from([None, "u1", "u2"]),
       st.sampled_from([None, "MACHINE_FILE_PROCESSED"]), days, days,
       st.integers(0, 4), st.integers(1, 7))
def test_select_is_filter_then_sort_newest_first(
    all_: list[UsageRecord], owner: str, user: str | None, kind: str | None,
    start: date | None, end: date | None, page: int, size: int,
) -> None:
    history = UsageHistory()
    for r in all_:
        history.add(r)
    got = history.select(owner, leaf_user_id=user, event_type=kind, start=start, end=end)
    want = _brute(all_, owner, user, kind, start, end)
    assert len(got) == len(want)
    assert [r.event_id for r in got] == [r.event_id for r in want]
    assert [r.timestamp for r in got[page * size:(page + 1) * size]] == [
        r.timestamp for r in want[page * size:(page + 1) * size]]
    if want:
        assert got[0].timestamp == want[0].timestamp
        assert got[-1].timestamp == want[-1].timestamp


def _histories(
    all_: list[UsageRecord],
) -> tuple[UsageHistory, StoredHistory, dict[str, bytes | None]]:
    """The same records in memory and in a table, as a worker stores them."""
    memory, table = UsageHistory(), dict[str, bytes | None]()
    stored = StoredHistory(scan_of(table), table.get)
    for seq, r in enumerate(all_):
        memory.add(r)
        stored.add(r)
        k, v = record_write(r, seq, encode_marker(r, seq, None))
        table[k] = v
    return memory, stored, table


@given(records, st.sampled_from(["o1", "o2", "o3"]), st.sampled_from([None, "u1", "u2"]),
       st.sampled_from([None, "MACHINE_FILE_PROCESSED"]), days, days,
       st.integers(0, 4), st.integers(1, 7))
def test_the_stored_history_answers_as_the_one_in_memory_and_so_does_its_rebuild(
    all_: list[UsageRecord], owner: str, user: str | None, kind: str | None,
    start: date | None, end: date | None, page: int, size: int,
) -> None:
    """A worker's history is its table's keys, read a page at a time; a takeover
    counts them from the keys alone."""
    memory, stored, table = _histories(all_)
    rebuilt = StoredHistory(scan_of(table), table.get)
    for k in table:
        _, o, parts = split_key(k)
        rebuilt.restore(o, parts)
    want = list(memory.select(owner, leaf_user_id=user, event_type=kind, start=start, end=end))
    assert memory.users(owner) == {r.leaf_user_id for r in all_ if r.api_owner == owner}
    for history in (stored, rebuilt):
        assert history.users(owner) == memory.users(owner)
        got = history.select(owner, leaf_user_id=user, event_type=kind, start=start, end=end)
        assert len(got) == len(want)
        assert list(got) == want
        assert got[page * size:(page + 1) * size] == want[page * size:(page + 1) * size]
        if want:
            assert (got[0], got[-1]) == (want[0], want[-1])


PRODUCTS = ["FIELDS_BOUNDARY", "OPERATIONS_FILE", "UNIFIED_AREA"]
areas = st.floats(0, 1e9, allow_nan=False) | st.floats(-1e6, 1e6, allow_nan=False)
owners = st.sampled_from(["o", "o%1F\x1f}"])
ids = st.sampled_from(["u", '}"', "a%\x1f", "e"])  # event ids and users collide


@st.composite
def _priced(draw: st.DrawFn) -> UsageRecord:
    """Records naming areas in some products (any float, AUDIT's signed ones too), with
    ids and a reason made of the characters the marker's JSON and the keys treat apart."""
    named = draw(st.lists(st.sampled_from(PRODUCTS), unique=True, min_size=1, max_size=3))
    by_product = {p: ProductArea(draw(areas), draw(areas)) for p in named}
    return UsageRecord(
        draw(ids), draw(st.sampled_from(["FIELD_BOUNDARY_CREATED", "MACHINE_FILE_PROCESSED"])),
        T0 + timedelta(seconds=draw(st.integers(0, 3 * 24 * 3600))), draw(owners),
        draw(ids), named, "SUCCESS", True, 0.0, 0.0, draw(st.none() | st.text()), by_product)


@given(_priced(), st.sampled_from(PRODUCTS))
def test_a_markers_area_is_read_without_decoding_it_as_decoding_reads_it(
    record: UsageRecord, product: str
) -> None:
    found = marker_area(encode_marker(record, 7, None), product)
    area = record.by_product.get(product)
    assert found == (None if area is None else (area.user_m2, area.owner_m2))


@given(st.lists(_priced(), max_size=40), st.sampled_from(PRODUCTS), st.booleans(),
       st.integers(0, 1), st.integers(0, 3))
def test_the_stored_hourly_areas_are_the_records_areas_by_hour(
    all_: list[UsageRecord], product: str, one_user: bool, first: int, days: int
) -> None:
    """An hourly series reads only the hour and one area of each record: the same
    figures as the records themselves, in memory or in the table, for the whole owner or
    one Leaf user, whatever the ids hold."""
    memory, stored, table = _histories(all_)
    owner = all_[0].api_owner if all_ else "o"
    user = all_[-1].leaf_user_id if all_ and one_user else None
    start = T0.date() + timedelta(days=first)
    end = start + timedelta(days=days)
    want = sorted(
        (r.timestamp.replace(minute=0, second=0, microsecond=0),
         r.by_product[product].user_m2, r.by_product[product].owner_m2)
        for r in all_
        if r.api_owner == owner and user in (None, r.leaf_user_id)
        and start <= r.timestamp.date() <= end and product in r.by_product
    )
    for history in (memory, stored):
        assert sorted(history.areas(owner, product, leaf_user_id=user, start=start,
                                    end=end)) == want
