"""REST API wire models (SPEC §6): camelCase under /billing and /admin, snake_case under /usage.

Query models double as the parameter declarations of /openapi.json, so what is parsed and
what is documented cannot drift apart.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from aggregates.products import Product
from aggregates.usage import Confidence, FieldClip, PeriodType, Span
from schemas.units import Unit

MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000  # keeps every number in a response within 64 bits
PAGE_DOC = "Page number; the first page is 1."
MAX_ID_LENGTH = 256
UNIT_DOC = "Unit of every area in the response; 1 acre = 4046.8564224 m²."
USED_DOC = (
    "Billable area of the current term: the sum of the Leaf-user totals (overlaps between "
    "users included, SPEC §3). The quota, percent_used and the alerts compare this."
)
FOOTPRINT_DOC = "The API owner's unique area in the term (overlaps between users removed)."
PROJECTION_DOC = (
    "Robust daily rate of the billable area: the 10 % trimmed mean of the billable area "
    "added on each of the last 30 days up to today (idle days and days before the contract "
    "count as 0; the 3 largest and 3 smallest days are dropped, the other 24 averaged), so "
    "up to 3 bursty days such as an import do not set the pace for the term."
)
START_DOC = (
    "First day (UTC). A date-time means the UTC day it falls in (no offset: UTC)."
)
END_DOC = (
    "Last day, included (UTC). A date-time means the whole UTC day it falls in: "
    "2026-03-31T00:00:00 and 2026-03-31T23:59:59Z both end the range with 31 March; "
    "2026-03-31T23:00:00-05:00 is 1 April in UTC."
)
PERIOD_DOC = (
    "Calendar period (UTC days; a week is an ISO week from Monday) or the contract term "
    "holding end_date. Without start_date the range starts on its first day; projections "
    "run to its last day."
)
PROJECTIONS_DOC = (
    "Add each product's projection to the last day of `period` (at /usage/plan's rate)."
)


# ---- dates in queries ------------------------------------------------------------------
# Only ISO 8601 text of the years 1900-2199: pydantic would also take 0.5 or 1700000000
# as a time, and dates far from the contracts would only reach the limits of `date`. The
# schema states both, so a client (and Schemathesis) knows what is accepted.

# Calendar days only, leap days included (2000 is a leap year; 1900 and 2100 are not), so
# the pattern alone tells a valid day, with or without a `format` beside it.
_YEAR = r"(?:19|20|21)\d\d"
_LEAP = r"(?:(?:19|20|21)(?:0[48]|[2468][048]|[13579][26])|2000)"
_MONTH_DAY = (
    r"(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8])"
)
_YMD = f"(?:{_YEAR}-(?:{_MONTH_DAY})|{_LEAP}-02-29)"
_TIME = r"T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
_OFFSET = r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
DATE_PATTERN = f"^{_YMD}$"
DATETIME_PATTERN = f"^{_YMD}{_TIME}{_OFFSET}$"
LOCAL_DATETIME_PATTERN = f"^{_YMD}{_TIME}$"  # no offset: UTC
_DATETIMES = TypeAdapter(datetime)


def _utc_day(value: Any) -> date:
    """A date, or a date-time meaning the UTC day it falls in (no offset: UTC)."""
    if isinstance(value, str) and re.match(DATE_PATTERN, value):
        return date.fromisoformat(value)
    if isinstance(value, str) and re.match(f"{DATETIME_PATTERN}|{LOCAL_DATETIME_PATTERN}", value):
        moment = _DATETIMES.validate_python(value)
        if moment.tzinfo is None:
            return moment.date()
        return moment.astimezone(UTC).date()
    raise ValueError("expected an ISO 8601 date or date-time between 1900 and 2199")


def _iso_date(value: Any) -> date:
    if isinstance(value, str) and re.match(DATE_PATTERN, value):
        return date.fromisoformat(value)
    raise ValueError("expected an ISO 8601 date (YYYY-MM-DD) between 1900 and 2199")


QueryDate = Annotated[
    date, BeforeValidator(_iso_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
]
# A date, or a date-time standing for the UTC day it falls in.
Day = Annotated[
    date, BeforeValidator(_utc_day),
    WithJsonSchema({"anyOf": [
        {"type": "string", "format": "date", "pattern": DATE_PATTERN},
        {"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN},
        {"type": "string", "pattern": LOCAL_DATETIME_PATTERN},
    ]}),
]


class Camel(BaseModel):
    """camelCase on the wire (the platform's billing API), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Snake(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every 4xx/5xx body; `parameter` names the offending input when there is one."""

    error: str = Field(description="Machine-readable code, e.g. invalid_parameter.")
    message: str
    parameter: str | None = None


# ---- query parameters ----------------------------------------------------------------


class BillingQuery(Camel):
    unit: Unit = Field(Unit.ACRES, description=UNIT_DOC)
    api_owner: str | None = Field(
        None, min_length=1, description="Admin key only: the API owner to act for."
    )


class ContractsQuery(BillingQuery):
    product: Product | None = None
    page: int = Field(1, ge=1, le=MAX_PAGE, description=PAGE_DOC)
    size: int = Field(20, ge=1, le=MAX_PAGE_SIZE)


class ConsumptionQuery(BillingQuery):
    timestamp: Day | None = Field(None, description="Day to summarise (UTC); today.")
    page: int = Field(1, ge=1, le=MAX_PAGE, description=f"{PAGE_DOC} Pages leafUsers.")
    size: int = Field(20, ge=1, le=MAX_PAGE_SIZE)


class BreakdownQuery(BillingQuery):
    start_time: Day | None = Field(None, description="First day; term start.")
    end_time: Day | None = Field(
        None, description="Last day; today. Before startTime: no days."
    )
    page: int = Field(1, ge=1, le=MAX_PAGE, description=f"{PAGE_DOC} Pages days.")
    size: int = Field(31, ge=1, le=MAX_PAGE_SIZE)


class ReportQuery(BillingQuery):
    timestamp: Day | None = Field(None, description="A day of the term to report (UTC); today.")
    leaf_user_id: str | None = Field(
        None, min_length=1, description="One Leaf user's line instead of the whole report."
    )


class UsageQuery(Snake):
    unit: Unit = Field(Unit.ACRES, description=UNIT_DOC)
    api_owner: str | None = Field(
        None,
        alias="apiOwner",
        min_length=1,
        description="Admin key only: the API owner to act for.",
    )


class SummaryQuery(UsageQuery):
    start_date: Day | None = Field(
        None, description=START_DOC + " Defaults to the first day of `period`."
    )
    end_date: Day | None = Field(
        None, description=END_DOC + " Defaults to today. Before start_date: an empty range."
    )
    period: Span = Field(Span.TERM, description=PERIOD_DOC)
    include_projections: bool = Field(False, description=PROJECTIONS_DOC)


class UsageBreakdownQuery(SummaryQuery):
    recent: int = Field(10, ge=0, le=MAX_PAGE_SIZE, description="Newest records to list.")
    page: int = Field(1, ge=1, le=MAX_PAGE, description=f"{PAGE_DOC} Pages users.")
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)


class DetailsQuery(UsageQuery):
    type: str | None = Field(None, max_length=MAX_ID_LENGTH,
                             description="Event type, e.g. fieldBoundaryCreated.")
    leaf_user_id: str | None = Field(None, alias="leafUserId", max_length=MAX_ID_LENGTH)
    start_date: Day | None = Field(None, description=START_DOC)
    end_date: Day | None = Field(None, description=END_DOC)
    page: int = Field(1, ge=1, le=MAX_PAGE, description=PAGE_DOC)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)


class ByPeriodQuery(UsageQuery):
    period_type: PeriodType = PeriodType.DAY
    product: Product = Product.UNIFIED_AREA
    leaf_user_id: str | None = Field(None, alias="leafUserId", max_length=MAX_ID_LENGTH,
                                     description="A user's scope.")
    start_date: Day | None = Field(
        None, description=START_DOC + " Defaults to the current term's start."
    )
    end_date: Day | None = Field(
        None, description=END_DOC + " Defaults to today. Before start_date: no periods."
    )
    page: int = Field(1, ge=1, le=MAX_PAGE, description=PAGE_DOC)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)


class TopUsersQuery(UsageQuery):
    product: Product = Product.UNIFIED_AREA
    date_: QueryDate | None = Field(None, alias="date", description="A day in the term; today.")
    page: int = Field(1, ge=1, le=MAX_PAGE, description=PAGE_DOC)
    page_size: int = Field(20, ge=1, le=MAX_PAGE_SIZE)


class CheckQuery(Snake):
    unit: Unit = Field(Unit.ACRES, description=UNIT_DOC)


class PlanQuery(UsageQuery):
    product: Product = Product.UNIFIED_AREA


# ---- bodies --------------------------------------------------------------------------


class QuotaIn(Camel):
    quota: float | None = Field(
        description="Area limit per term; null removes the quota.",
        ge=0,
        le=1e15,
        allow_inf_nan=False,
    )
    unit: Unit = Unit.ACRES


class ApiKeyIn(Camel):
    api_owner: str = Field(min_length=1, max_length=320)


class ApiKeysQuery(Camel):
    api_owner: str | None = Field(
        None, min_length=1, max_length=320,
        description="Admin key only: the API owner whose keys these are.",
    )
    page: int = Field(1, ge=1, le=MAX_PAGE, description=PAGE_DOC)
    size: int = Field(20, ge=1, le=MAX_PAGE_SIZE)


Longitude = Annotated[float, Field(ge=-180, le=180)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Position = tuple[Longitude, Latitude] | tuple[Longitude, Latitude, float]
Ring = Annotated[list[Position], Field(
    min_length=3, max_length=10_000,
    description="[lon, lat] positions; an open ring is closed. Rings are straight lines in "
    "lon/lat (RFC 7946).",
)]


class GeoJsonPolygon(BaseModel):
    """The shape the schema can state; what it cannot (a shape with no area after
    repair, one crossing the antimeridian, too many vertices once densified) is a 400."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["Polygon"]
    coordinates: Annotated[list[Ring], Field(min_length=1, description="Shell, then holes.")]


class GeoJsonMultiPolygon(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["MultiPolygon"]
    coordinates: Annotated[list[Annotated[list[Ring], Field(min_length=1)]], Field(min_length=1)]


class CheckIn(Snake):
    geometry: GeoJsonPolygon | GeoJsonMultiPolygon = Field(
        discriminator="type", description="GeoJSON Polygon or MultiPolygon, WGS84."
    )
    product: Product
    leaf_user_id: str = Field(min_length=1, max_length=256)
    api_owner: str | None = Field(None, min_length=1, description="Admin key only.")
    timestamp: datetime | None = Field(None, description="Event time to check at; now.")
    field_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        validation_alias=AliasChoices("field_id", "fieldId"),
        description="OPERATIONS_OPERATION: clip to this field of the Leaf user. "
        "AUDIT_FIELDS_BOUNDARY: the boundary replaces this field's current one.",
    )


# ---- /billing and /admin responses ---------------------------------------------------


class TermOut(Camel):
    index: int
    start_date: date
    end_date: date = Field(description="Exclusive: the next term's first day.")


class ContractOut(Camel):
    contract_id: str
    api_owner: str
    product: Product
    start_date: date
    current_term: TermOut
    quota: float | None
    used: float = Field(description=USED_DOC)
    remaining: float | None = Field(description="Quota minus used, at least 0.")
    percent_used: float | None = Field(description="used / quota, in percent.")
    footprint: float = Field(description=FOOTPRINT_DOC)
    unit: Unit


class DayOut(Camel):
    date: date
    area_added: float
    total_area: float
    final: bool
    unit: Unit


class ScopeDayOut(Camel):
    leaf_user_id: str | None = Field(description="null for the API owner's scope.")
    area_added: float
    total_area: float
    final: bool
    unit: Unit


class ConsumptionOut(Camel):
    contract_id: str
    api_owner: str
    product: Product
    date: date
    term: TermOut
    owner: ScopeDayOut
    leaf_users: list[ScopeDayOut] = Field(description="This page of Leaf users.")
    leaf_user_count: int
    leaf_users_total_area: float = Field(description="Sum over every Leaf user's total.")
    overlap_area: float = Field(description="Sum of user totals minus the owner total.")
    quota: float | None
    unit: Unit


class ReportLineOut(Camel):
    scope: str = Field(description="api-owner or leaf-user.")
    leaf_user_id: str | None = Field(description="null on the API owner's line.")
    unique_area: float = Field(description="Unique area in the term (AUDIT: live).")
    share_of_owner_percent: float = Field(
        description="Of the API owner's unique area; users' shares add up to more than "
        "100 % by the area several of them processed."
    )
    events: int = Field(description="Usage records of the term that metered the product.")
    first_activity: datetime | None
    last_activity: datetime | None
    unit: Unit


class TermReportOut(Camel):
    """The CSM report of one contract term: the API owner's line, then every Leaf user
    with area or events in the term, largest unique area first."""

    contract_id: str
    api_owner: str
    product: Product
    term: TermOut
    lines: list[ReportLineOut]
    unit: Unit


class ApiKeyOut(Camel):
    api_owner: str
    api_key: str = Field(description="Shown once; only its sha256 is stored.")
    key_id: str = Field(description="What the key is listed and revoked by.")
    created_at: datetime


class ApiKeyInfo(Camel):
    """A key as listed: never its secret, nor its whole sha256."""

    key_id: str = Field(description="The first 16 hex digits of the key's sha256.")
    api_owner: str
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="Reported at most once a minute per worker: at most a minute older "
        "than the key's true last use; null if never used."
    )
    revoked_at: datetime | None = Field(description="null while the key works.")


# ---- /usage responses ----------------------------------------------------------------


class ProjectionOut(Snake):
    """Where a product's range is heading: its period's end, and the term's (/usage/plan)."""

    period_end: date = Field(description="Last day of `period` holding end_date.")
    days_remaining: int = Field(description="Days after today up to period_end.")
    daily_average: float = Field(description=PROJECTION_DOC)
    projected_area_added: float = Field(
        description="Billable area (sum over Leaf users) the range will have added by "
        "period_end: what it added up to today plus daily_average per remaining day."
    )
    projected_area_added_low: float = Field(
        description="The same at the lower of daily_average and the plain 30-day mean."
    )
    projected_area_added_high: float = Field(
        description="The same at the higher of the two."
    )
    projected_term_total: float = Field(description="As /usage/plan: billable area at term end.")
    will_exceed_limit: bool = Field(description="projected_term_total is above the quota.")
    projected_exceed_date: date | None
    confidence: Confidence


class ProductSummaryOut(Snake):
    product: Product
    contract_id: str
    area_added: float = Field(description="Unique area the range added for the API owner.")
    leaf_users_area_added: float = Field(description="Sum of what it added per Leaf user.")
    overlap: float
    total_area: float = Field(description="The owner's term total at end_date.")
    quota: float | None
    used: float = Field(description=USED_DOC)
    percent_used: float | None = Field(description="used / quota, in percent.")
    leaf_users: int
    unit: Unit
    projection: ProjectionOut | None = Field(
        None, description="With include_projections=true only."
    )


class SummaryOut(Snake):
    api_owner: str
    start_date: date
    end_date: date
    period: Span
    products: list[ProductSummaryOut]
    unit: Unit


class AreaPairOut(Snake):
    user: float
    owner: float
    unit: Unit


class RecordOut(Snake):
    event_id: str
    type: str
    timestamp: datetime
    leaf_user_id: str
    status: str
    counted: bool
    reason: str | None
    products: list[str]
    area_added_user: float
    area_added_owner: float
    by_product: dict[str, AreaPairOut]
    unit: Unit


class DetailsOut(Snake):
    api_owner: str
    page: int
    page_size: int
    total: int
    records: list[RecordOut]


class UserBreakdownOut(Snake):
    leaf_user_id: str
    area_added: dict[Product, float] = Field(
        description="What the user's union of each product grew by in the range; summed "
        "over users, a product's figure is its leaf_users_area_added."
    )
    events: int = Field(description="The user's usage records in the range, counted or not.")
    unit: Unit


class EventTypeOut(Snake):
    type: str
    events: int = Field(description="Usage records of this type in the range, counted or not.")


class UsageBreakdownOut(Snake):
    api_owner: str
    start_date: date
    end_date: date
    period: Span
    products: list[ProductSummaryOut] = Field(description="As /usage/summary.")
    events: int = Field(description="Usage records in the range (as /usage/details counts).")
    event_types: list[EventTypeOut] = Field(description="Types with records in the range.")
    page: int
    page_size: int
    total: int = Field(description="Leaf users with area added or a record in the range.")
    users: list[UserBreakdownOut] = Field(
        description="This page of users, largest UNIFIED_AREA added first."
    )
    recent: list[RecordOut] = Field(description="The range's newest records, newest first.")
    unit: Unit


class PeriodOut(Snake):
    period_start: datetime
    area_added: float
    total_area: float
    unit: Unit


class ByPeriodOut(Snake):
    api_owner: str
    product: Product
    contract_id: str | None
    leaf_user_id: str | None
    period_type: PeriodType
    start_date: date
    end_date: date
    page: int
    page_size: int
    total: int
    periods: list[PeriodOut]


class TopUserOut(Snake):
    rank: int
    leaf_user_id: str
    total_area: float
    share_percent: float = Field(
        description="Of the term's billable area (the sum of every Leaf user's total), so "
        "the shares of all users add up to 100."
    )
    unit: Unit


class TopUsersOut(Snake):
    api_owner: str
    product: Product
    contract_id: str | None
    term_start: date | None
    term_end: date | None
    page: int
    page_size: int
    total: int
    users: list[TopUserOut]


class QuotaCheckOut(Snake):
    """One contract the event would consume: the product's own, and UNIFIED_AREA's."""

    product: Product
    contract_id: str | None
    required: float = Field(
        description="What the quota is charged: what the Leaf user's union would grow by "
        "(the billable area is the sum of Leaf-user totals)."
    )
    area_added_owner: float = Field(description="What the owner's footprint would grow by.")
    used: float = Field(description=USED_DOC)
    footprint: float = Field(description=FOOTPRINT_DOC)
    quota: float | None
    available: float | None = Field(description="Quota minus used, at least 0.")
    can_proceed: bool
    unit: Unit


class CheckOut(Snake):
    api_owner: str
    leaf_user_id: str
    product: Product
    contract_id: str | None
    area_added_user: float
    area_added_owner: float
    required: float = Field(
        description="What the product's quota is charged: the billable area the event would "
        "add, i.e. what the Leaf user's union would grow by."
    )
    available: float | None
    used: float = Field(description=USED_DOC)
    quota: float | None
    can_proceed: bool = Field(
        description="False when the product's quota or, for a period-bounded product, the "
        "UNIFIED_AREA quota would be exceeded; blocked_by names which."
    )
    message: str
    unit: Unit
    footprint: float = Field(description=FOOTPRINT_DOC)
    blocked_by: list[Product] = Field(description="Products whose quota would be exceeded.")
    quotas: list[QuotaCheckOut] = Field(
        description="Every contract the event would consume, the product's first."
    )
    field_id: str | None
    field_clip: FieldClip | None = Field(
        description="OPERATIONS_OPERATION with field_id: clipped to the field, outside_field "
        "(nothing would count) or field_unknown (previewed unclipped: metering waits for the "
        "field, then counts the operation whole)."
    )


class PlanOut(Snake):
    api_owner: str
    product: Product
    contract_id: str | None
    term_start: date | None
    term_end: date | None
    days_elapsed: int
    days_remaining: int
    used: float = Field(description=USED_DOC)
    quota: float | None
    percent_used: float | None = Field(description="used / quota, in percent.")
    daily_average: float = Field(description=PROJECTION_DOC)
    projected_term_total: float = Field(
        description="used + daily_average x days_remaining: the billable area expected at "
        "the term's end."
    )
    will_exceed_limit: bool = Field(description="projected_term_total is above the quota.")
    projected_exceed_date: date | None
    leaf_users_total: float = Field(description="Sum of Leaf-user totals (equals used).")
    overlap: float = Field(description="used minus footprint.")
    recommendations: list[str]
    unit: Unit
    footprint: float = Field(description=FOOTPRINT_DOC)
    projected_term_total_low: float = Field(
        description="The lower of the trimmed-mean projection and the projection at the "
        "plain mean of the same 30 days (every burst counted)."
    )
    projected_term_total_high: float = Field(
        description="The higher of the two: where the term ends if bursts like the last "
        "30 days' recur as often."
    )
    active_days: int = Field(
        description="Days of the last 30 on which the billable area changed."
    )
    confidence: Confidence = Field(
        description="How much the projection rests on: high with at least 15 active days in "
        "the last 30 and a contract at least 30 days old, medium with at least 5 active days, "
        "low otherwise."
    )


# ---- operations ----------------------------------------------------------------------


class HealthOut(Snake):
    status: str = Field(description="ok while the worker's event loop answers.")


class NotReadyOut(Snake):
    reason: str
    topic: str | None = None
    partition: int | None = None


class ReadyOut(Snake):
    status: str = Field(description="ready, or not_ready with the reasons.")
    assigned: int = Field(description="Partitions this worker owns.")
    lag: dict[str, int] = Field(description="Group-wide lag: metering and inputs.")
    not_ready: list[NotReadyOut]


# ---- /webhooks -----------------------------------------------------------------------

OWNER_DOC = "Admin key only: the API owner to act for."


class WebhookIn(Camel):
    url: HttpUrl = Field(description="Where alerts and final days are POSTed (http or https).")
    api_owner: str | None = Field(None, min_length=1, max_length=320, description=OWNER_DOC)


class WebhooksQuery(Camel):
    api_owner: str | None = Field(None, min_length=1, max_length=320, description=OWNER_DOC)


class WebhookListQuery(WebhooksQuery):
    page: int = Field(1, ge=1, le=MAX_PAGE, description=PAGE_DOC)
    size: int = Field(20, ge=1, le=MAX_PAGE_SIZE)


class DeliveriesQuery(WebhooksQuery):
    limit: int = Field(50, ge=1, le=200, description="Most recent attempts to return.")


class WebhookOut(Camel):
    id: str
    url: str
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(
        description="whsec_…: the signing secret (Standard Webhooks), shown only here."
    )


class DeliveryOut(Camel):
    """One attempt to deliver one message to one endpoint."""

    message_id: str = Field(description="Sent as webhook-id; the same for every attempt.")
    event_type: str = Field(description="quota.alert or usage.day.final.")
    endpoint_id: str
    attempt: int = Field(description="1 for the first attempt.")
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    error: str | None = Field(description="Why no answer came back (refused, timeout, …).")
    at: datetime
    outcome: str = Field(description="delivered, retrying or gave_up.")
    next_retry_at: datetime | None = Field(description="When a retrying delivery is tried next.")


# ---- explain my bill and the counted ground (the page at /ui) -------------------------

MAX_GROUND_FEATURES = 500


def _period_bounded(product: Product) -> Product:
    if not product.period_bounded:
        raise ValueError(f"{product.value} is a live union: explain and the map cover the "
                         "period-bounded products")
    return product


# AUDIT's live union keeps no counted pieces, so the schema leaves it out.
BoundedProduct = Annotated[
    Product, AfterValidator(_period_bounded),
    WithJsonSchema({"type": "string",
                    "enum": [p.value for p in Product if p.period_bounded]}),
]


class ScopeQuery(UsageQuery):
    """One union: a product's contract, a term and a scope."""

    product: BoundedProduct = Product.UNIFIED_AREA
    leaf_user_id: str | None = Field(
        None, alias="leafUserId", min_length=1, max_length=MAX_ID_LENGTH,
        description="A user's scope; the owner's without.",
    )
    date_: QueryDate | None = Field(None, alias="date", description="A day of the term; today.")
    start_date: QueryDate | None = Field(None, description="First day searched; the term's start.")
    end_date: QueryDate | None = Field(
        None, description="Last day searched; `date`. Before start_date: nothing is searched."
    )


class ExplainAreaQuery(ScopeQuery):
    page: int = Field(1, ge=1, le=MAX_PAGE, description=f"{PAGE_DOC} Pages `deduplicated`.")
    page_size: int = Field(20, ge=1, le=MAX_PAGE_SIZE)


class ExplainQuery(ExplainAreaQuery):
    lon: float = Field(ge=-180, le=180, description="WGS84 longitude of the point.")
    lat: float = Field(ge=-90, le=90, description="WGS84 latitude of the point.")


class ExplainIn(Snake):
    geometry: GeoJsonPolygon | GeoJsonMultiPolygon = Field(
        discriminator="type", description="GeoJSON Polygon or MultiPolygon, WGS84."
    )


class GroundQuery(ScopeQuery):
    after: int = Field(-1, ge=-1, le=2**62, description="The previous page's `next_after`.")
    limit: int = Field(200, ge=1, le=MAX_GROUND_FEATURES, description="Pieces in this page.")


class OriginOut(Snake):
    """The event that first counted a piece of ground."""

    event_id: str
    leaf_user_id: str
    event_type: str = Field(description="carriedOver: a boundary live at the term's start.")
    timestamp: datetime


class CountedOut(Snake):
    piece_id: int
    day: date = Field(description="The day the ground is billed on.")
    piece_area: float = Field(description="Area of the stored piece holding the point.")
    inside: float = Field(description="Of the piece, the area inside a posted geometry; 0 "
                          "for a point.")
    counted_by: OriginOut | None = Field(description="null: stored before origins were kept.")
    unit: Unit


class DeduplicatedOut(Snake):
    """A later (or earlier-arrived) event that covered the point and added nothing there."""

    event_id: str
    leaf_user_id: str
    event_type: str
    product: Product
    timestamp: datetime


class ExplainOut(Snake):
    api_owner: str
    product: Product
    contract_id: str | None
    scope: str
    lon: float | None = Field(description="null for a posted geometry.")
    lat: float | None
    term_start: date | None
    term_end: date | None
    start_date: date | None = Field(description="First day searched for deduplicated events.")
    end_date: date | None
    counted: list[CountedOut] = Field(description="Empty: nobody counted this ground.")
    deduplicated: list[DeduplicatedOut] = Field(description="This page, newest first.")
    page: int
    page_size: int
    has_more: bool


class GroundPropertiesOut(Snake):
    piece_id: int
    day: date
    area: float
    event_id: str | None
    leaf_user_id: str | None
    event_type: str | None
    unit: Unit


class GroundFeatureOut(Snake):
    type: str = "Feature"
    geometry: dict[str, Any]
    properties: GroundPropertiesOut


class GroundOut(Snake):
    """A GeoJSON FeatureCollection of the counted pieces, one page of them."""

    type: str = "FeatureCollection"
    features: list[GroundFeatureOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null: last.")
    api_owner: str
    product: Product
    contract_id: str | None
    scope: str
    start_date: date | None
    end_date: date | None
