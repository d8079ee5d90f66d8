"""Judging records and the dead-letter headers that say why and where from."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

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
    return SimpleNamespace(message=message)


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
