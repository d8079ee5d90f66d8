"""Judging records and the dead-letter headers that say why and where from."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from clickfan.events import encode_event
from clickfan.sinks.base import Rejection
from clickfan.streams import deadletter
from clickfan.streams.records import to_sink_records

VALID = {
    "schema_version": 1,
    "event_id": "0b7e1c9e-51a8-4d8e-9a4f-3f2f4c1d2e3a",
    "event_time": "2026-01-01T10:00:00.000Z",
    "user_id": "u1",
    "session_id": "s1",
    "event_type": "click",
    "page_url": "https://shop.example.com/",
    "referrer": None,
    "element": "a#logo",
    "device": "mobile",
    "os": "Android",
    "browser": "Chrome",
    "user_agent": "Mozilla/5.0",
    "ip": "10.0.0.1",
    "country": "KR",
    "city": "Seoul",
    "is_vip": False,
}


def _event(offset: int, value: bytes, headers: Any = None) -> Any:
    message = SimpleNamespace(
        topic="t",
        partition=2,
        offset=offset,
        key=b"u1",
        value=value,
        timestamp=1767261600.123,
        headers=headers,
        tp=TP("t", 2),
    )
    return message


def test_valid_and_invalid_records() -> None:
    events = [_event(7, encode_event(VALID)), _event(8, b"{not json"), _event(9, b"")]
    records, rejections = to_sink_records(events, max_event_bytes=65536)
    assert [r.offset for r in records] == [7, 8, 9]
    assert records[0].event == VALID and records[1].event is None
    assert [(r.record.offset, r.reason) for r in rejections] == [(8, "not_json"), (9, "empty")]
    assert records[0].timestamp_ms == 1767261600123


def test_dead_letter_headers_name_reason_source_and_group() -> None:
    records, rejections = to_sink_records(
        [_event(8, b"nope", headers=[("trace", b"abc"), ("clickfan.error.reason", b"old")])],
        max_event_bytes=65536,
    )
    headers = dict(deadletter.headers(rejections[0], "es-indexer"))
    assert headers["clickfan.error.reason"] == b"not_json"
    assert headers["clickfan.source.topic"] == b"t"
    assert headers["clickfan.source.partition"] == b"2"
    assert headers["clickfan.source.offset"] == b"8"
    assert headers["clickfan.dlq.group"] == b"es-indexer"
    assert headers["trace"] == b"abc"  # the record's own headers are kept


def test_long_messages_are_cut() -> None:
    records, _ = to_sink_records([_event(1, b"x")], 65536)
    headers = dict(deadletter.headers(Rejection(records[0], "es_rejected", "y" * 5000), "g"))
    assert len(headers["clickfan.error.message"]) == 1024


def test_the_record_that_stopped_both_workers_is_dead_lettered() -> None:
    hostile = encode_event({**VALID, "page_url": "http://[x"})
    records, rejections = to_sink_records(
        [_event(1, encode_event(VALID)), _event(2, hostile), _event(3, encode_event(VALID))],
        max_event_bytes=65536,
    )
    assert [r.event is not None for r in records] == [True, False, True]
    assert [(r.record.offset, r.reason) for r in rejections] == [(2, "invalid_values")]
    assert "page_url" in rejections[0].message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, ()),
        ([], ()),
        ({"k": b"v"}, (("k", b"v"),)),
        ([("k", None)], (("k", b""),)),
        ([(b"\xffk", bytearray(b"v"))], (("\\xffk", b"v"),)),
        ([("k", "text")], (("k", b"text"),)),
        ([("k", 5)], (("k", b"5"),)),
        ([("only-a-key",), "xy", 7, ("k", b"v")], (("k", b"v"),)),
        ("not headers", ()),
        (42, ()),
    ],
)
def test_headers_of_any_shape(headers: Any, expected: tuple[tuple[str, bytes], ...]) -> None:
    records, _ = to_sink_records([_event(1, b"{}", headers=headers)], 65536)
    assert records[0].headers == expected


# values a foreign client or serializer could hand over instead of bytes
_odd = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.text(st.one_of(st.characters(codec=None), st.characters(categories=["Cs"]))),
    st.integers(),
    st.floats(),
    st.builds(bytearray, st.binary(max_size=20)),
    st.lists(st.integers(), max_size=3),
)
_headers = st.one_of(
    _odd,
    st.lists(st.one_of(st.tuples(_odd, _odd), st.tuples(_odd), _odd), max_size=4),
    st.dictionaries(st.text(max_size=5), _odd, max_size=3),
)


@settings(max_examples=200, deadline=None, database=None)
@given(key=_odd, value=_odd, headers=_headers, timestamp=st.one_of(st.none(), st.floats()))
def test_any_key_value_and_headers_never_raise(
    key: Any, value: Any, headers: Any, timestamp: Any
) -> None:
    message = SimpleNamespace(
        topic="t", partition=0, offset=1, key=key, value=value, timestamp=timestamp,
        headers=headers, tp=TP("t", 0),
    )  # fmt: skip
    records, rejections = to_sink_records([message], 65536)
    (record,) = records
    assert record.key is None or isinstance(record.key, bytes)
    assert record.value is None or isinstance(record.value, bytes)
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in record.headers)
    assert (record.event is None) == (len(rejections) == 1)
    # what the dead-letter topic gets is built without raising too
    for rejection in rejections:
        assert (
            dict(deadletter.headers(rejection, "g"))[deadletter.REASON] == rejection.reason.encode()
        )
