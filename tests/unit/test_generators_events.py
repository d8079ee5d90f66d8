"""Generated click events: valid, consistent within a session, reproducible; and the validator."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clickfan.events import (
    EVENT_TYPES,
    FIELD_NAMES,
    InvalidEvent,
    decode_event,
    encode_event,
    validate_event,
)
from clickfan.generators.events import EventGenerator, Pools, classify_user_agent

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TIME_FORMAT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MAX_BYTES = 65536


@pytest.fixture(scope="module")
def pools() -> Pools:
    return Pools.build(seed=11, users=500)


@pytest.fixture(scope="module")
def events(pools: Pools) -> list[dict[str, Any]]:
    return EventGenerator(11, start_time=START, rate=200, pools=pools).take(20000)


def test_every_generated_event_is_valid(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert validate_event(event) == []
        assert decode_event(encode_event(event), MAX_BYTES) == event


def test_events_carry_the_schema_fields_in_order(events: list[dict[str, Any]]) -> None:
    assert all(tuple(event) == FIELD_NAMES for event in events)


def test_event_ids_are_unique_uuid4(events: list[dict[str, Any]]) -> None:
    ids = [event["event_id"] for event in events]
    assert len(set(ids)) == len(ids)
    for event_id in ids[:2000]:
        parsed = uuid.UUID(event_id)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == event_id


def test_event_times_are_utc_milliseconds_in_order(events: list[dict[str, Any]]) -> None:
    times = [event["event_time"] for event in events]
    assert all(TIME_FORMAT.fullmatch(t) for t in times)
    parsed = [datetime.fromisoformat(t) for t in times]
    assert parsed == sorted(parsed)
    assert parsed[0] >= START


def test_rate_sets_the_pace_of_event_time(pools: Pools) -> None:
    # 200 events/s of simulated traffic: 10 000 events span about 50 s
    ten_thousand = EventGenerator(5, start_time=START, rate=200, pools=pools).take(10000)
    span = datetime.fromisoformat(ten_thousand[-1]["event_time"]) - START
    assert timedelta(seconds=40) < span < timedelta(seconds=60)


def test_a_session_keeps_its_user_device_and_ip(events: list[dict[str, Any]]) -> None:
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        sessions[event["session_id"]].append(event)
    assert len(sessions) > 100
    kept = ("user_id", "device", "os", "browser", "user_agent", "ip", "country", "city", "is_vip")
    for session in sessions.values():
        for name in kept:
            assert len({event[name] for event in session}) == 1, name
        times = [event["event_time"] for event in session]
        assert times == sorted(times)
        assert session[0]["event_type"] == "page_view"  # every visit starts by landing


def test_a_user_keeps_vip_flag_country_and_city(events: list[dict[str, Any]]) -> None:
    users: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    for event in events:
        users[event["user_id"]].add((event["is_vip"], event["country"], event["city"]))
    assert all(len(found) == 1 for found in users.values())
    vips = sum(1 for found in users.values() if next(iter(found))[0])
    assert 0 < vips < len(users)


def test_device_os_and_browser_agree_with_the_user_agent(events: list[dict[str, Any]]) -> None:
    for event in events[:3000]:
        assert classify_user_agent(event["user_agent"]) == (
            event["device"],
            event["os"],
            event["browser"],
        )


def test_elements_are_set_except_on_page_views(events: list[dict[str, Any]]) -> None:
    for event in events:
        if event["event_type"] == "page_view":
            assert event["element"] is None
        else:
            assert event["element"]


def test_the_event_mix_is_plausible(events: list[dict[str, Any]]) -> None:
    mix = Counter(event["event_type"] for event in events)
    assert set(mix) == set(EVENT_TYPES)
    assert mix.most_common(1)[0][0] == "page_view"
    assert mix["click"] > mix["add_to_cart"] > mix["purchase"]


def test_carts_never_go_negative(events: list[dict[str, Any]]) -> None:
    cart: Counter[str] = Counter()
    for event in events:
        session, kind = event["session_id"], event["event_type"]
        if kind == "add_to_cart":
            cart[session] += 1
        elif kind == "remove_from_cart":
            assert cart[session] > 0
            cart[session] -= 1
        elif kind == "purchase":
            assert cart[session] > 0
            cart[session] = 0


def test_same_seed_same_events() -> None:
    first = EventGenerator(99, start_time=START, users=300).take(3000)
    again = EventGenerator(99, start_time=START, users=300).take(3000)
    assert first == again


def test_another_seed_other_events() -> None:
    first = EventGenerator(1, start_time=START, users=300).take(1000)
    other = EventGenerator(2, start_time=START, users=300).take(1000)
    assert not {e["event_id"] for e in first} & {e["event_id"] for e in other}
    assert {e["user_id"] for e in first} != {e["user_id"] for e in other}


def test_generator_rejects_bad_arguments(pools: Pools) -> None:
    with pytest.raises(ValueError):
        EventGenerator(1, start_time=START, rate=0, pools=pools)
    with pytest.raises(ValueError):
        EventGenerator(1, start_time=datetime(2025, 1, 1), pools=pools)  # no zone
    with pytest.raises(ValueError):
        Pools.build(1, users=0)
    with pytest.raises(ValueError):
        Pools.build(1, users=10, vip_fraction=1.5)


# -- the validator ---------------------------------------------------------


@pytest.fixture()
def good(events: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(events[123])


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("is_vip", "true", "is_vip should be bool"),
        ("is_vip", 1, "is_vip should be bool"),
        ("schema_version", True, "schema_version should be int"),
        ("schema_version", "1", "schema_version should be int"),
        ("user_id", 42, "user_id should be str"),
        ("user_id", None, "user_id is null"),
        ("event_id", "not-a-uuid", "event_id should be a UUID"),
        ("event_id", "12345678123456781234567812345678", "event_id should be a UUID"),
        ("event_time", "yesterday", "event_time should be"),
        ("event_time", "2025-03-01T12:00:00", "event_time should be"),  # no zone
        ("event_type", "double_click", "event_type should be one of"),
        ("ip", "999.1.1.1", "ip should be an IP address"),
        ("country", "kr", "country should be"),
        ("device", "fridge", "device should be one of"),
        ("page_url", "/cart", "page_url should be an http(s) URL"),
        ("referrer", "javascript:alert(1)", "referrer should be an http(s) URL"),
        ("user_agent", "", "user_agent should be non-empty"),
    ],
)
def test_validate_rejects_a_bad_field(
    good: dict[str, Any], field: str, value: Any, problem: str
) -> None:
    good[field] = value
    problems = validate_event(good)
    assert any(p.startswith(problem) for p in problems), problems
    with pytest.raises(InvalidEvent):
        decode_event(encode_event(good), MAX_BYTES)


def test_validate_names_every_missing_field(good: dict[str, Any]) -> None:
    del good["session_id"], good["ip"]
    assert validate_event(good) == ["missing field session_id", "missing field ip"]


def test_validate_accepts_nullable_fields_and_extra_fields(good: dict[str, Any]) -> None:
    good.update(referrer=None, element=None, campaign="spring-sale")
    assert validate_event(good) == []


def test_validate_accepts_an_ipv6_address(good: dict[str, Any]) -> None:
    good["ip"] = "2001:db8::1"
    assert validate_event(good) == []


def test_an_unsupported_schema_version_is_its_own_reason(good: dict[str, Any]) -> None:
    good["schema_version"] = 2
    del good["user_id"]  # a later version may have other fields: not judged by these
    with pytest.raises(InvalidEvent) as caught:
        decode_event(encode_event(good), MAX_BYTES)
    assert caught.value.reason == "unsupported_schema_version"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"x" * (MAX_BYTES + 1), "oversized"),
        (b'{"city": "Z\xfcrich"}', "invalid_utf8"),
        (b"{", "not_json"),
        (b"NaN", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"a string"', "not_object"),
        (b"{}", "missing_fields"),
    ],
)
def test_decode_gives_the_reason(payload: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload, MAX_BYTES)
    assert caught.value.reason == reason
    assert caught.value.problems


def test_decode_reports_missing_before_wrong_types(good: dict[str, Any]) -> None:
    del good["city"]
    good["is_vip"] = "no"
    with pytest.raises(InvalidEvent) as caught:
        decode_event(json.dumps(good).encode(), MAX_BYTES)
    assert caught.value.reason == "missing_fields"
    assert len(caught.value.problems) == 2
