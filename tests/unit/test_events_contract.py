"""Hostile records a producer we never saw may send: each is judged, none raises.

The decisions they pin down: duplicate keys, lone surrogates, integers beyond
64 bits, 1e400 and deep nesting are refused (not_interoperable); a BOM is not
JSON; a time outside the years 0001..9999 in UTC is refused (invalid_values)
rather than clamped, since it cannot name a daily index or an hour folder.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from clickfan.events import (
    MAX_DEPTH,
    REASONS,
    InvalidEvent,
    decode_event,
    encode_event,
    event_time_utc,
    validate_event,
)
from clickfan.generators.events import EventGenerator

MAX_BYTES = 65536
GOOD = EventGenerator(5, start_time=datetime(2026, 3, 1, tzinfo=UTC), users=20).take(1)[0]


def _with(**fields: Any) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()  # ASCII: lone surrogates as \ud800


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


HOSTILE: list[tuple[str, bytes, str]] = [
    ("unclosed IPv6 bracket in page_url", _with(page_url="http://[x"), "invalid_values"),
    ("unclosed IPv6 bracket in referrer", _with(referrer="https://[::1"), "invalid_values"),
    ("host that changes under NFKC", _with(page_url="http://a\uff03b.com/"), "invalid_values"),
    ("NUL in an IP", _with(ip="10.0.0.1\x00"), "invalid_values"),
    ("IPv4 with a leading zero", _with(ip="010.0.0.1"), "invalid_values"),
    ("a very long IP", _with(ip="1" * 50000), "invalid_values"),
    ("a very long user_id", _with(user_id="u" * 300), "invalid_values"),
    (
        "year 1 pushed before the calendar",
        _with(event_time="0001-01-01T00:30:00+01:00"),
        "invalid_values",
    ),
    ("year 9999 pushed past it", _with(event_time="9999-12-31T23:30:00-05:00"), "invalid_values"),
    (
        "offset Elasticsearch refuses",
        _with(event_time="2026-01-01T00:00:00+19:00"),
        "invalid_values",
    ),
    ("no zone", _with(event_time="2026-01-01T00:00:00"), "invalid_values"),
    ("an IPv6 zone Elasticsearch refuses", _with(ip="fe80::1%eth0"), "invalid_values"),
    ("Arabic-Indic digits", _with(event_time="٢٠٢٦-01-01T00:00:00Z"), "invalid_values"),
    ("February 30", _with(event_time="2026-02-30T00:00:00Z"), "invalid_values"),
    ("extra named like a metadata field", _with(_id="x"), "invalid_values"),
    ("extra reaching into a field", _with(**{"event_time.day": 1}), "invalid_values"),
    ("blank extra name", _with(**{" ": 1}), "invalid_values"),
    ("lone surrogate in a field", _with(city="\ud800"), "not_interoperable"),
    ("lone surrogate in a key", _with(**{"\udc00": 1}), "not_interoperable"),
    ("lone surrogate deep in an extra", _with(x={"y": ["\udfff"]}), "not_interoperable"),
    ("integer beyond 64 bits", _with(x=2**63), "not_interoperable"),
    ("integer past int_max_str_digits", b'{"x":' + b"7" * 5000 + b"}", "not_interoperable"),
    ("number beyond a double", encode_event(GOOD)[:-1] + b',"x":1e400}', "not_interoperable"),
    ("duplicate key", encode_event(GOOD)[:-1] + b',"city":"Busan"}', "not_interoperable"),
    ("nested one level too deep", _with(x=_deep(MAX_DEPTH)), "not_interoperable"),
    ("nested past the recursion limit", b"[" * 100_000 + b"]" * 100_000, "not_interoperable"),
    (
        "objects past the recursion limit",
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "not_interoperable",
    ),
    ("NaN", encode_event(GOOD)[:-1] + b',"x":NaN}', "not_json"),
    ("-Infinity", b'{"x":-Infinity}', "not_json"),
    ("byte order mark", b"\xef\xbb\xbf" + encode_event(GOOD), "not_json"),
    ("trailing garbage", encode_event(GOOD) + b"x", "not_json"),
    ("a surrogate encoded in UTF-8", b'{"city":"\xed\xa0\x80"}', "invalid_utf8"),
    ("a number", b"42", "not_object"),
    ("null", b"null", "not_object"),
    ("NUL bytes", b"\x00" * 10, "not_json"),
]


@pytest.mark.parametrize(
    ("payload", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_records_are_refused_with_their_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload, 10**7)
    assert caught.value.reason == reason, caught.value
    assert caught.value.reason in REASONS and caught.value.problems


def test_validate_is_total_for_python_objects_json_cannot_hold() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    for obj in ({**GOOD, "x": float("nan")}, {**GOOD, "x": {1: 2}}, {**GOOD, "x": {1, 2}}, cyclic):
        assert validate_event(obj), obj


@pytest.mark.parametrize(
    "event_time",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T01:00:00+01:00",
        "9999-12-31T23:59:59.999999999Z",
        "9999-12-31T05:59:00-18:00",
        "2026-01-01T00:00:00.5+05:45",
    ],
)
def test_times_at_the_edges_that_are_still_placeable_are_valid(event_time: str) -> None:
    event = {**GOOD, "event_time": event_time}
    assert validate_event(event) == []
    assert decode_event(encode_event(event), MAX_BYTES) == event
    assert 1 <= event_time_utc(event_time).year <= 9999


def test_extra_fields_with_names_elasticsearch_takes_are_kept() -> None:
    event = {
        **GOOD,
        "campaign": "spring",
        "utm.source": "mail",
        "도시": "부산",
        "n": [1, {"a": None}],
    }
    assert decode_event(encode_event(event), MAX_BYTES) == event


def test_event_time_utc_refuses_what_validation_refuses() -> None:
    with pytest.raises(InvalidEvent) as caught:
        event_time_utc("0001-01-01T00:00:00+00:01")
    assert caught.value.reason == "invalid_values"


def test_a_value_that_is_not_bytes_is_judged_not_raised() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event("{}", MAX_BYTES)  # type: ignore[arg-type]
    assert caught.value.reason == "not_json"
