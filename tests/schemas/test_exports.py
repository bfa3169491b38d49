"""CSV exports: hostile ids survive Python's csv module; formulas are defused; chunks."""
from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from aggregates.contracts import new_contract
from aggregates.exports import Activity, ReportLine, ScopeDay, TermReport
from aggregates.products import Product
from aggregates.records import ProductArea, UsageRecord
from aggregates.usage import DayUsage
from schemas import exports
from schemas.units import Unit, convert

HOSTILE = ["a,b", 'say "hi"', "two\nlines", "cr\rlf\r\n", "unit\x1fsep", "=1+2", "+33",
           "-2", "@SUM(A1)", "\t=x", "'quoted", "''", "é ü 日本", "", " lead space"]
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def parse(chunks: list[bytes]) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8"), newline="")))


def record(event_id: str, user: str, m2: float = 4046.8564224) -> UsageRecord:
    area = ProductArea(m2, -m2 / 2)
    return UsageRecord(event_id, "fieldBoundaryCreated", T0, "o", user,
                       ["FIELDS_BOUNDARY", "UNIFIED_AREA"], "SUCCESS", True, m2, -m2 / 2, None,
                       {"FIELDS_BOUNDARY": area, "UNIFIED_AREA": area})


def test_hostile_ids_round_trip_and_formulas_are_defused() -> None:
    records = [record(i, u) for i, u in zip(HOSTILE, reversed(HOSTILE), strict=True)]
    rows = parse(list(exports.encode(exports.records_header(Unit.ACRES),
                                     (exports.record_row(r, Unit.ACRES) for r in records))))
    header, *body = rows
    assert header[:4] == ["event_id", "type", "timestamp", "leaf_user_id"]
    assert "area_added_user_acres" in header and "FIELDS_BOUNDARY_owner_acres" in header
    assert len(body) == len(records)
    for r, row in zip(records, body, strict=True):
        assert len(row) == len(header)
        got = dict(zip(header, row, strict=True))
        assert exports.original_text(got["event_id"]) == r.event_id
        assert exports.original_text(got["leaf_user_id"]) == r.leaf_user_id
        for cell in (got["event_id"], got["leaf_user_id"]):
            assert not cell or cell[0] not in "=+-@\t\r"
        assert float(got["area_added_user_acres"]) == 1.0
        assert float(got["area_added_owner_acres"]) == -0.5  # a number stays a number
        assert got["SATELLITE_PROCESS_PLANET_user_acres"] == ""
        assert got["timestamp"] == "2026-03-01T12:00:00Z"
        assert got["products"] == "FIELDS_BOUNDARY;UNIFIED_AREA"
        assert got["counted"] == "true" and got["reason"] == ""


def test_lines_end_in_crlf_and_text_is_utf8() -> None:
    data = b"".join(exports.encode(["a", "b"], [["é", 1.5], ["x,y", None]]))
    assert data == 'a,b\r\né,1.5\r\n"x,y",\r\n'.encode()


@given(st.lists(st.text(), min_size=1, max_size=20))
def test_any_text_round_trips(values: list[str]) -> None:
    rows = parse(list(exports.encode(["v"], ([exports.text(v)] for v in values),
                                     chunk_chars=16)))
    assert [exports.original_text(r[0]) for r in rows[1:]] == values


def test_chunks_stay_near_their_size() -> None:
    rows = ([str(i) * 10, float(i)] for i in range(20_000))
    chunks = list(exports.encode(["a", "b"], rows, chunk_chars=4096))
    assert len(chunks) > 50
    assert max(len(c) for c in chunks) < 4096 + 200
    assert len(parse(chunks)) == 20_001


def test_consumption_and_report_rows_name_their_unit() -> None:
    contract = new_contract("o", Product.UNIFIED_AREA, date(2026, 3, 1))
    d = ScopeDay("=u1", DayUsage(date(2026, 3, 2), 10_000.0, 30_000.0, True), 3)
    [header, row] = parse(list(exports.encode(exports.consumption_header(Unit.HECTARES),
                                              [exports.consumption_row(contract, d,
                                                                       Unit.HECTARES)])))
    assert dict(zip(header, row, strict=True)) == {
        "contractId": contract.contract_id, "product": "UNIFIED_AREA", "scope": "leaf-user",
        "leafUserId": "'=u1", "date": "2026-03-02", "areaAdded_hectares": "1.0",
        "totalArea_hectares": "3.0", "final": "true", "revision": "3",
    }
    term = contract.term(date(2026, 3, 2))
    lines = [ReportLine(None, 20_000.0, 100.0, Activity(2, T0, T0 + timedelta(hours=1))),
             ReportLine("u,1", 20_000.0, 100.0, Activity())]
    [header, owner, user] = parse(list(exports.encode(
        exports.report_header(Unit.M2), exports.report_rows(TermReport(contract, term, lines),
                                                            Unit.M2))))
    assert header[7] == "uniqueArea_m2"
    assert owner[5:] == ["api-owner", "", "20000.0", "100.0", "2", "2026-03-01T12:00:00Z",
                         "2026-03-01T13:00:00Z"]
    assert user[5:] == ["leaf-user", "u,1", "20000.0", "100.0", "0", "", ""]
    assert float(owner[7]) == convert(20_000.0, Unit.M2)
