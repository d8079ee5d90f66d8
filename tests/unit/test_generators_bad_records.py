"""Malformed records: each kind is rejected by the consumers' check for its own reason."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from clickfan.events import InvalidEvent, decode_event, validate_event
from clickfan.generators.bad_records import BAD_KINDS, KAFKA_MAX_MESSAGE_BYTES, BadRecordMaker
from clickfan.generators.events import EventGenerator

MAX_BYTES = 65536
OVERSIZED = 102400


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    return EventGenerator(3, start_time=start, users=300).take(600)


def _maker(seed: int = 1) -> BadRecordMaker:
    return BadRecordMaker(random.Random(seed), MAX_BYTES, OVERSIZED)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_each_kind_is_rejected_for_its_reason(kind: str, events: list[dict[str, Any]]) -> None:
    maker = _maker()
    for event in events[:200]:
        record = maker.make(kind, event)
        with pytest.raises(InvalidEvent) as caught:
            decode_event(record, MAX_BYTES)
        assert caught.value.reason == kind, (record[:200], caught.value)


def test_the_source_event_is_left_alone(events: list[dict[str, Any]]) -> None:
    maker = _maker()
    event = events[0]
    before = json.dumps(event)
    for kind in BAD_KINDS:
        maker.make(kind, event)
    assert json.dumps(event) == before
    assert validate_event(event) == []


def test_oversized_records_are_valid_events_but_too_big(events: list[dict[str, Any]]) -> None:
    record = _maker().make("oversized", events[5])
    assert MAX_BYTES < len(record) < KAFKA_MAX_MESSAGE_BYTES
    assert abs(len(record) - OVERSIZED) < 100
    parsed = json.loads(record)
    assert validate_event(parsed) == []  # only the size is wrong
    assert parsed["event_id"] == events[5]["event_id"]


def test_invalid_utf8_records_are_otherwise_json(events: list[dict[str, Any]]) -> None:
    maker = _maker()
    for event in events[:50]:
        record = maker.make("invalid_utf8", event)
        with pytest.raises(UnicodeDecodeError):
            record.decode("utf-8")
        parsed = json.loads(record.decode("utf-8", errors="replace"))
        assert parsed["event_id"] == event["event_id"]


def test_wrong_types_and_missing_fields_keep_the_rest(events: list[dict[str, Any]]) -> None:
    maker = _maker()
    for event in events[:100]:
        wrong = json.loads(maker.make("wrong_types", event))
        assert set(wrong) == set(event)
        # compare types too: True == 1 in Python, yet True is no schema_version
        changed = [k for k in event if (type(wrong[k]), wrong[k]) != (type(event[k]), event[k])]
        assert 1 <= len(changed) <= 3
        missing = json.loads(maker.make("missing_fields", event))
        assert 1 <= len(set(event) - set(missing)) <= 3
        assert all(missing[k] == event[k] for k in missing)


def test_empty_is_zero_bytes(events: list[dict[str, Any]]) -> None:
    assert _maker().make("empty", events[0]) == b""


def test_random_kinds_cover_every_kind() -> None:
    maker = _maker()
    assert {maker.random_kind() for _ in range(300)} == set(BAD_KINDS)


def test_same_seed_same_bad_records(events: list[dict[str, Any]]) -> None:
    first, again = _maker(7), _maker(7)
    for event in events[:60]:
        kind = first.random_kind()
        assert again.random_kind() == kind
        assert first.make(kind, event) == again.make(kind, event)


def test_unknown_kind_is_refused(events: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="unknown bad record kind"):
        _maker().make("haunted", events[0])
    with pytest.raises(ValueError):
        _maker().make("__init__", events[0])


@pytest.mark.parametrize("oversized", [MAX_BYTES, MAX_BYTES - 1, KAFKA_MAX_MESSAGE_BYTES])
def test_oversized_size_must_sit_between_the_limits(oversized: int) -> None:
    with pytest.raises(ValueError):
        BadRecordMaker(random.Random(1), MAX_BYTES, oversized)
