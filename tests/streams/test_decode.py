"""What ingest accepts, and what it makes of the rest: ids, event time, size, dead letters."""

from __future__ import annotations

import base64
import hashlib
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.codec import dumps, loads
from schemas.events import CONTROL_CHARACTERS, TOPIC_TYPES
from schemas.internal import EventMessage
from streams.decode import (
    MAX_METERING_MESSAGE_BYTES,
    Limits,
    Origin,
    Rejection,
    dead_letter,
    decode_input,
    encode_for_metering,
)
from streams.replay import TOPIC_OF_TYPE
from streams.settings import Settings

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
LIMITS = Limits.from_settings(Settings())
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[10, 50], [10.001, 50], [10.001, 50.001], [10, 50.001], [10, 50]]],
}
BROKER_LIMIT = 1_000_000  # Faust's producer_max_request_size; the broker's is 1 MiB


def event(type_: str = "providerFileProcessingFinished", **fields: Any) -> dict[str, Any]:
    """A valid event of `type_`, with every id its type carries."""
    ids: dict[str, dict[str, Any]] = {
        "fieldBoundaryCreated": {"fieldId": "field-1"},
        "providerFileProcessingFinished": {"fileId": "file-1"},
        "operationProcessingFinished": {"operationId": "op-1", "fieldId": "field-1"},
        "satelliteImageProcessingFinished": {"imageId": "img-1", "provider": "planet"},
    }
    return {
        "id": "evt-1",
        "type": type_,
        "timestamp": (NOW - timedelta(days=1)).isoformat(),
        "apiOwner": "owner@example.com",
        "leafUserId": "user-1",
        "geometry": SQUARE,
        **ids[type_],
        **fields,
    }


def decode(ev: dict[str, Any], now: datetime = NOW) -> EventMessage | Rejection:
    topic = TOPIC_OF_TYPE[ev["type"]]
    return decode_input(dumps(ev), topic, TOPIC_TYPES[topic], LIMITS, now)


def rejected(result: EventMessage | Rejection, reason: str) -> Rejection:
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    return result


ID_FIELDS = [
    ("id", "providerFileProcessingFinished"),
    ("apiOwner", "providerFileProcessingFinished"),
    ("leafUserId", "providerFileProcessingFinished"),
    ("fieldId", "fieldBoundaryCreated"),
    ("fileId", "providerFileProcessingFinished"),
    ("operationId", "operationProcessingFinished"),
    ("imageId", "satelliteImageProcessingFinished"),
]


@pytest.mark.parametrize(("field", "type_"), ID_FIELDS)
def test_every_event_with_plain_ids_is_accepted(field: str, type_: str) -> None:
    plain = event(type_, **{field: "naïve ユーザー u1-7@x"})
    assert isinstance(decode(plain), EventMessage)


@pytest.mark.parametrize("char", ["\x1f", "\x00", "\x7f", "\u0085"])
@pytest.mark.parametrize(("field", "type_"), ID_FIELDS)
def test_control_character_in_any_id_is_invalid_id(field: str, type_: str, char: str) -> None:
    result = rejected(decode(event(type_, **{field: f"u1{char}7"})), "invalid_id")
    assert result.error.startswith(f"{field}:")
    assert f"U+{ord(char):04X}" in result.error


@pytest.mark.parametrize(("field", "type_"), ID_FIELDS)
def test_empty_id_is_invalid_id(field: str, type_: str) -> None:
    result = rejected(decode(event(type_, **{field: ""})), "invalid_id")
    assert result.error == f"{field}: id is empty"


@pytest.mark.parametrize(("field", "type_"), ID_FIELDS)
def test_overlong_id_is_invalid_id(field: str, type_: str) -> None:
    limit = 320 if field == "apiOwner" else 256
    assert isinstance(decode(event(type_, **{field: "x" * limit})), EventMessage)
    result = rejected(decode(event(type_, **{field: "x" * (limit + 1)})), "invalid_id")
    assert f"longer than {limit}" in result.error


def test_control_characters_are_exactly_unicode_category_cc() -> None:
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert bool(CONTROL_CHARACTERS.fullmatch(char)) == (unicodedata.category(char) == "Cc")


def test_an_id_error_among_others_still_names_every_field() -> None:
    ev = event(leafUserId="a\x1fb")
    del ev["fileId"]
    result = rejected(decode(ev), "invalid_id")
    assert "leafUserId" in result.error


@pytest.mark.parametrize(
    "timestamp",
    [
        "0001-01-01T00:30:00+01:00",  # UTC form is before year 1: OverflowError before
        "9999-12-31T23:30:00-01:00",  # UTC form is in year 10000
        "9999-06-01T00:00:00Z",  # representable, but no term of it is
        "0001-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        0,
        (NOW + timedelta(hours=2)).isoformat(),
        (NOW - timedelta(days=401)).isoformat(),
    ],
)
def test_implausible_or_unrepresentable_timestamp_is_out_of_range(timestamp: Any) -> None:
    result = rejected(decode(event(timestamp=timestamp)), "timestamp_out_of_range")
    assert "timestamp" in result.error


def test_failed_events_are_held_to_the_same_window() -> None:
    rejected(decode(event(status="FAILED", timestamp=0)), "timestamp_out_of_range")


@pytest.mark.parametrize(
    "timestamp",
    [
        (NOW + timedelta(minutes=59)).isoformat(),
        (NOW - timedelta(days=399)).isoformat(),
        (NOW - timedelta(days=399)).replace(tzinfo=None).isoformat(),  # naive reads as UTC
        "2026-11-22T23:30:00+12:00",  # 11:30 UTC: before NOW
    ],
)
def test_timestamps_inside_the_window_are_accepted(timestamp: str) -> None:
    assert isinstance(decode(event(timestamp=timestamp)), EventMessage)


def test_the_window_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACREAGE_MAX_EVENT_AGE_DAYS", "2")
    monkeypatch.setenv("ACREAGE_MAX_CLOCK_SKEW_SECONDS", "0")
    narrow = Limits.from_settings(Settings())
    topic = "events.provider-files"

    def at(when: datetime) -> EventMessage | Rejection:
        raw = dumps(event(timestamp=when.isoformat()))
        return decode_input(raw, topic, TOPIC_TYPES[topic], narrow, NOW)

    assert isinstance(at(NOW - timedelta(days=1)), EventMessage)
    rejected(at(NOW - timedelta(days=3)), "timestamp_out_of_range")
    rejected(at(NOW + timedelta(seconds=1)), "timestamp_out_of_range")


def ring(vertices: int) -> list[list[float]]:
    """A closed ring of `vertices` points on a small circle."""
    import math

    pts = [
        [
            10 + 0.01 * math.cos(2 * math.pi * k / vertices),
            50 + 0.01 * math.sin(2 * math.pi * k / vertices),
        ]
        for k in range(vertices - 1)
    ]
    return [*pts, pts[0]]


def test_200000_vertex_polygon_is_rejected_not_crashing() -> None:
    huge = event(geometry={"type": "Polygon", "coordinates": [ring(200_000)]})
    result = rejected(decode(huge), "geometry_too_many_vertices")
    assert len(result.error) < 200


def strip(length_deg: float) -> dict[str, Any]:
    """A valid, narrow polygon whose long edges densify to ~2,000 vertices per degree."""
    x0, y0 = 0.0, 10.0
    return {
        "type": "Polygon",
        "coordinates": [
            [
                [x0, y0],
                [x0 + length_deg, y0],
                [x0 + length_deg, y0 + 1e-3],
                [x0, y0 + 1e-3],
                [x0, y0],
            ]
        ],
    }


def test_metering_message_over_the_producer_limit_is_too_large() -> None:
    message = decode(event(geometry=strip(30)))  # 60,000 vertices once densified
    assert isinstance(message, EventMessage)
    result = rejected(encode_for_metering(message), "too_large")  # type: ignore[arg-type]
    assert str(MAX_METERING_MESSAGE_BYTES) in result.error


def test_metering_message_under_the_limit_is_forwarded_whole() -> None:
    message = decode(event(geometry=strip(10)))  # 20,000 vertices: ~640 kB of hex WKB
    assert isinstance(message, EventMessage)
    value = encode_for_metering(message)
    assert isinstance(value, bytes)
    assert 500_000 < len(value) <= MAX_METERING_MESSAGE_BYTES < BROKER_LIMIT
    assert EventMessage.model_validate(loads(value)) == message


def letter(
    raw: bytes, key: bytes | None = b"k", limit: int = 256 * 1024
) -> tuple[Any, dict[str, Any]]:
    origin = Origin("events.provider-files", 3, 42, key, raw)
    key_out, value = dead_letter(Rejection("bad_json", "not JSON"), origin, limit)
    assert len(value) + len(key_out or b"") < BROKER_LIMIT
    return key_out, loads(value)


def assert_identifies(body: dict[str, Any], raw: bytes) -> None:
    assert body["payloadSize"] == len(raw)
    assert body["payloadSha256"] == hashlib.sha256(raw).hexdigest()
    assert (body["reason"], body["topic"], body["partition"], body["offset"]) == (
        "bad_json",
        "events.provider-files",
        3,
        42,
    )


def test_small_dead_letter_keeps_the_whole_payload() -> None:
    raw = b'{"id": "x", "type": "nope"}'
    key, body = letter(raw)
    assert key == b"k"
    assert (body["payload"], body["payloadEncoding"], body["payloadTruncated"]) == (
        raw.decode(),
        "utf-8",
        False,
    )
    assert_identifies(body, raw)


def test_5mb_text_dead_letter_is_cut_with_size_and_sha256() -> None:
    raw = b'{"geometry": [' + b"[139.123456789, 35.123456789], " * 170_000 + b"]}"
    assert len(raw) > 5_000_000
    _, body = letter(raw)
    assert body["payloadTruncated"] is True
    assert body["payloadEncoding"] == "utf-8"
    assert 256 * 1024 - 4 <= len(body["payload"].encode()) <= 256 * 1024
    assert raw.startswith(body["payload"].encode())
    assert_identifies(body, raw)


def test_text_is_cut_on_a_character_boundary() -> None:
    raw = ("é" * 300_000).encode()  # two bytes each: an odd limit falls inside one
    _, body = letter(raw, limit=100_001)
    assert body["payload"] == "é" * 50_000
    assert body["payloadTruncated"] is True


def test_json_escapes_count_towards_the_cut() -> None:
    raw = ("\x01" * 1_000_000).encode()  # valid UTF-8; six bytes each once in JSON
    key, body = letter(raw)
    assert body["payloadEncoding"] == "utf-8"
    assert len(dumps(body["payload"])) - 2 <= 256 * 1024
    assert raw.startswith(body["payload"].encode())
    assert body["payloadTruncated"] is True


def test_binary_dead_letter_is_base64_of_a_prefix() -> None:
    raw = b"\xff\xfe" + bytes(range(256)) * 20_000
    _, body = letter(raw)
    assert body["payloadEncoding"] == "base64"
    assert len(body["payload"]) <= 256 * 1024
    kept = base64.b64decode(body["payload"])
    assert raw.startswith(kept) and len(kept) > 190_000
    assert body["payloadTruncated"] is True
    assert_identifies(body, raw)


def test_huge_key_is_cut_and_missing_value_is_an_empty_payload() -> None:
    key, body = letter(b"", key=b"k" * 5_000_000)
    assert key == b"k" * (256 * 1024)
    assert (body["payload"], body["payloadSize"], body["payloadTruncated"]) == ("", 0, False)
    assert body["payloadSha256"] == hashlib.sha256(b"").hexdigest()


def test_dead_letter_error_is_one_bounded_line() -> None:
    origin = Origin("events.satellite", 0, 0, None, b"x")
    _, value = dead_letter(Rejection("internal_error", "Boom: a\nb\n" + "c" * 5000), origin, 1024)
    error = loads(value)["error"]
    assert "\n" not in error and error.startswith("Boom: a b c") and len(error) <= 1000


def test_an_event_over_the_configured_area_is_area_too_large() -> None:
    """A 1°×1° square at the equator is about 12,300 km²."""
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    assert isinstance(decode(event(geometry=square)), EventMessage)
    small = Limits.from_settings(Settings(max_event_area_km2=10_000))
    result = decode_input(
        dumps(event(geometry=square)), "events.provider-files",
        TOPIC_TYPES["events.provider-files"], small, NOW,
    )
    rejected(result, "area_too_large")


def test_an_event_spread_over_many_square_degrees_is_too_many_pieces() -> None:
    """~23,700 km², under the area limit, but 20 square degrees of lon/lat to cut up."""
    polar = {"type": "Polygon", "coordinates": [[[10, 84], [30, 84], [30, 85], [10, 85], [10, 84]]]}
    rejected(decode(event(geometry=polar)), "geometry_too_many_pieces")


def test_a_ring_across_the_antimeridian_is_rejected_with_its_own_reason() -> None:
    ring_ = [[179.5, 10], [-179.5, 10], [-179.5, 11], [179.5, 11], [179.5, 10]]
    rejected(decode(event(geometry={"type": "Polygon", "coordinates": [ring_]})),
             "geometry_crosses_antimeridian")
