"""The orjson fast paths of encode_event and decode_event change no byte and no verdict.

encode_event must write exactly what json.dumps(ensure_ascii=False, compact)
writes (the wire form and the HDFS line), and decode_event must give the same
event, or the same reason and problems, with or without its fast path.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickfan import events
from clickfan.events import InvalidEvent, decode_event, encode_event
from tests.event_strategies import edge_events, json_values, texts

MAX = 1 << 20


def _reference_encode(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _outcome(payload: bytes) -> tuple[str, Any]:
    try:
        return "event", decode_event(payload, MAX)
    except InvalidEvent as exc:
        return exc.reason, exc.problems


def _strict_outcome(payload: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    with monkeypatch.context() as m:
        m.setattr(events, "_decode_canonical", lambda _payload: None)
        return _outcome(payload)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(texts, json_values, max_size=6))
def test_encode_is_byte_identical_to_json_dumps(obj: dict[str, Any]) -> None:
    try:
        expected: bytes | type[Exception] = _reference_encode(obj)
    except (UnicodeEncodeError, ValueError) as exc:  # a lone surrogate: raises either way
        expected = type(exc)
    try:
        got: bytes | type[Exception] = encode_event(obj)
    except (UnicodeEncodeError, ValueError) as exc:
        got = type(exc)
    assert got == expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(edge_events())
def test_valid_and_edge_events_decode_the_same_with_and_without_the_fast_path(
    event: dict[str, Any],
) -> None:
    try:
        payload = _reference_encode(event)
    except UnicodeEncodeError:
        return  # not bytes anyone can send
    with pytest.MonkeyPatch.context() as m:
        assert _outcome(payload) == _strict_outcome(payload, m)


HOSTILE = [
    b'{"a":1,"a":2}',
    b'{"event_id":"x","event_id":"y"}',
    b'{"a":"\\ud800"}',
    b'{"a":18446744073709551615}',
    b'{"a":18446744073709551616}',
    b'{"a":-9223372036854775809}',
    b'{"a":9223372036854775808}',
    b'{"a":1e400}',
    b'{"a":NaN}',
    b'{"a":Infinity}',
    b"[" * 30 + b"]" * 30,
    b"[" * 5000 + b"]" * 5000,
    b"\xef\xbb\xbf{}",
    b'{"a":"\xed\xa0\x80"}',
    b"\xff",
    b" {}",
    b"{} ",
    b'{"a":1.0}',
    b'{"a":1e-05}',
    b'"text"',
    b"[]",
    b"null",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_records_get_the_same_verdict(
    payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _outcome(payload) == _strict_outcome(payload, monkeypatch)


def test_a_canonical_event_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    event = {
        "schema_version": 1,
        "event_id": "0b6c3c9e-1d2f-4a5b-8c7d-9e0f1a2b3c4d",
        "event_time": "2026-01-01T00:00:00Z",
        "user_id": "u1",
        "session_id": "s1",
        "event_type": "click",
        "page_url": "https://shop.example/p/1",
        "referrer": None,
        "element": "buy",
        "device": "mobile",
        "os": "Android",
        "browser": "Chrome",
        "user_agent": "Mozilla/5.0",
        "ip": "10.0.0.1",
        "country": "KR",
        "city": "서울",
        "is_vip": False,
    }
    payload = encode_event(event)
    assert events._decode_canonical(payload) == event
    # and a duplicate key in the same event does not (the strict parser refuses it)
    duplicated = payload[:-1] + b',"city":"x"}'
    assert events._decode_canonical(duplicated) is None
    assert _outcome(duplicated)[0] == "not_interoperable"


IPS = ["0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1.2.3", "1.2.3.4.5",
       "1.2.3.4\n", " 1.2.3.4", "::1", "１.2.3.4", "10.0.0.1", "fe80::1%eth0", ""]  # fmt: skip


@pytest.mark.parametrize("value", IPS)
def test_the_quick_ipv4_check_agrees_with_ipaddress(value: str) -> None:
    try:
        ipaddress.ip_address(value)
        expected = "%" not in value  # an IPv6 zone is refused (Elasticsearch's ip type)
    except ValueError:
        expected = False
    assert events._is_ip(value) is expected
