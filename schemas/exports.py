"""CSV exports (RFC 4180): each export's header and rows, and their encoding to bytes.

Cells carry what the JSON endpoints carry, in the same unit, with the unit in the column
name (`areaAdded_hectares`); `true`/`false` as in JSON, an empty cell for null,
timestamps in ISO 8601 UTC with `Z`, floats at full precision. Lines end in CRLF, text
is UTF-8 without a byte-order mark, and the csv module quotes any cell holding a comma,
a quote or a line break.

CSV injection: a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (or TAB
or CR before one) as a formula. Ids and other text come from upstream events, so a
text cell starting with one of those gets a leading `'` (OWASP's advice), which
spreadsheets show as text. A text cell that starts with `'` itself gets one too, so the
rule can be undone without guessing: drop the first `'` of a text cell that starts with
one (`original_text`). Numbers are written as numbers: a negative AUDIT change stays
`-12.5`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime

from aggregates.contracts import Contract
from aggregates.exports import ReportLine, ScopeDay, TermReport
from aggregates.products import Product
from aggregates.records import UsageRecord
from schemas.units import Unit, convert

MEDIA_TYPE = "text/csv"
CONTENT_TYPE = "text/csv; charset=utf-8; header=present"
FORMULA_LEADS = frozenset("=+-@\t\r'")
CHUNK_CHARS = 64 * 1024
PRODUCT_IDS = tuple(p.value for p in Product)  # an enum's .value costs a lookup a row

Cell = str | float | int | None
Row = Sequence[Cell]


def text(value: str | None) -> str:
    """A text cell, defused against formulas (see the module's docstring)."""
    if value is None:
        return ""
    return "'" + value if value[:1] in FORMULA_LEADS else value


def original_text(cell: str) -> str:
    """What `text` was given, from the cell a CSV reader returns."""
    return cell[1:] if cell.startswith("'") else cell


def flag(value: bool) -> str:
    return "true" if value else "false"


def instant(value: datetime | None) -> str:
    if value is None:
        return ""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


def day(value: date) -> str:
    return value.isoformat()


def _in(name: str, unit: Unit) -> str:
    return f"{name}_{unit.value}"


# ---- daily consumption of a scope ------------------------------------------------------


def consumption_header(unit: Unit) -> list[str]:
    return ["contractId", "product", "scope", "leafUserId", "date", _in("areaAdded", unit),
            _in("totalArea", unit), "final", "revision"]


def consumption_row(contract: Contract, d: ScopeDay, unit: Unit) -> Row:
    return [
        contract.contract_id, contract.product.value,
        "api-owner" if d.leaf_user_id is None else "leaf-user", text(d.leaf_user_id),
        day(d.day.day), convert(d.day.added_m2, unit), convert(d.day.total_m2, unit),
        flag(d.day.final), d.revision,
    ]


# ---- usage records ---------------------------------------------------------------------


def records_header(unit: Unit) -> list[str]:
    per_product = [_in(f"{p}_{who}", unit) for p in PRODUCT_IDS for who in ("user", "owner")]
    return ["event_id", "type", "timestamp", "leaf_user_id", "status", "counted", "reason",
            "products", _in("area_added_user", unit), _in("area_added_owner", unit),
            *per_product]


def record_row(r: UsageRecord, unit: Unit) -> Row:
    """`products` joined by `;`; then each product's pair, empty where the event did not
    measure that product."""
    per_product: list[Cell] = []
    for p in PRODUCT_IDS:
        area = r.by_product.get(p)
        if area is None:
            per_product += [None, None]
        else:
            per_product += [convert(area.user_m2, unit), convert(area.owner_m2, unit)]
    return [
        text(r.event_id), text(r.type), instant(r.timestamp), text(r.leaf_user_id),
        text(r.status), flag(r.counted), text(r.reason), ";".join(r.products),
        convert(r.area_added_user_m2, unit), convert(r.area_added_owner_m2, unit),
        *per_product,
    ]


# ---- term report -----------------------------------------------------------------------


def report_header(unit: Unit) -> list[str]:
    return ["contractId", "product", "termIndex", "termStart", "termEnd", "scope",
            "leafUserId", _in("uniqueArea", unit), "shareOfOwnerPercent", "events",
            "firstActivity", "lastActivity"]


def report_rows(report: TermReport, unit: Unit) -> Iterator[Row]:
    c, t = report.contract, report.term
    for line in report.lines:
        yield [c.contract_id, c.product.value, t.index, day(t.start), day(t.end),
               *_report_line(line, unit)]


def _report_line(line: ReportLine, unit: Unit) -> list[Cell]:
    scope = "api-owner" if line.leaf_user_id is None else "leaf-user"
    a = line.activity
    return [scope, text(line.leaf_user_id), convert(line.unique_m2, unit), line.share_percent,
            a.events, instant(a.first), instant(a.last)]


# ---- encoding --------------------------------------------------------------------------


def encode(header: Sequence[str], rows: Iterable[Row], chunk_chars: int = CHUNK_CHARS
           ) -> Iterator[bytes]:
    """The header line, then the rows, in UTF-8 chunks of about `chunk_chars`: memory
    holds one chunk, whatever the number of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= chunk_chars:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
