"""The analysis questions' pure parts: time ranges, the normal form of answers, the
reference answers, and what a difference between the two engines means."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from clickfan.analysis.compare import (
    AGREE,
    BEHIND,
    DISAGREE,
    UNKNOWN_LAG,
    GroupLag,
    difference,
    verdict,
)
from clickfan.analysis.questions import (
    MAX_INDEXED_URL,
    QUESTIONS,
    Answer,
    BadInput,
    EngineDown,
    TimeRange,
    finish,
    funnel_counts,
    iso_ms,
    minute_of,
    question,
    reference,
    time_range,
    to_ms,
    utf16_units,
)
from clickfan.analysis.spark_engine import contract_schema, parse_memory
from clickfan.events import FIELD_NAMES, validate_event

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_ids = iter(range(10**6))


def event(
    time: str,
    kind: str = "page_view",
    session: str = "s1",
    page: str = "https://shop.example.com/",
    referrer: str | None = None,
    country: str = "KR",
    event_id: str | None = None,
) -> dict[str, Any]:
    e = {
        "schema_version": 1,
        "event_id": event_id or f"00000000-0000-4000-8000-{next(_ids):012d}",
        "event_time": time,
        "user_id": "u1",
        "session_id": session,
        "event_type": kind,
        "page_url": page,
        "referrer": referrer,
        "element": None,
        "device": "mobile",
        "os": "iOS",
        "browser": "Safari",
        "user_agent": "Mozilla/5.0",
        "ip": "192.0.2.1",
        "country": country,
        "city": "Seoul",
        "is_vip": False,
    }
    assert validate_event(e) == [], validate_event(e)
    return e


def rows(
    name: str, events: list[dict[str, Any]], window: TimeRange | None = None, limit: int = 10
) -> list[tuple[Any, ...]]:
    return reference(QUESTIONS[name], events, window or TimeRange(), limit).rows


# -- time ranges ----------------------------------------------------------------------


def test_time_range_takes_iso_times_and_ages() -> None:
    window = time_range("2026-03-01T12:00:00+09:00", "15m", now=NOW)
    assert window.since_ms == to_ms(datetime(2026, 3, 1, 3, 0, tzinfo=UTC))
    assert window.until_ms == to_ms(datetime(2026, 3, 1, 11, 45, tzinfo=UTC))
    assert time_range(None, None) == TimeRange()
    # without a zone: UTC, not the machine's zone
    assert time_range("2026-03-01T00:00:00", None).since_ms == to_ms(
        datetime(2026, 3, 1, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("yesterday", None),
        (None, "15 minutes"),
        ("2h", "3h"),
        ("2026-03-01", "2026-03-01"),
        ("-5m", None),
    ],
)
def test_bad_time_ranges_are_refused_with_the_choices(since: str, until: str) -> None:
    with pytest.raises(BadInput) as refused:
        time_range(since, until, now=NOW)
    assert refused.value.exit_code == 2
    assert "ISO 8601" in str(refused.value) and "15m" in str(refused.value)


def test_unknown_question_lists_every_question() -> None:
    with pytest.raises(BadInput) as refused:
        question("bounce-rate")
    assert all(name in str(refused.value) for name in QUESTIONS)


def test_milliseconds_are_floored_like_elasticsearch_before_1970_too() -> None:
    assert to_ms(datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)) == -1
    assert to_ms(datetime(1970, 1, 1, 0, 0, 0, 1500, tzinfo=UTC)) == 1
    assert minute_of(-1) == -60_000
    assert iso_ms(-60_000) == "1969-12-31T23:59Z"
    assert iso_ms(to_ms(datetime(1, 1, 1, tzinfo=UTC))) == "0001-01-01T00:00Z"
    assert iso_ms(1500) == "1970-01-01T00:00:01.500Z"


# -- the answers' normal form ---------------------------------------------------------


def test_ranked_rows_most_first_ties_by_key_then_the_limit() -> None:
    counts = {"b": 3, "a": 3, "c": 5, "d": 1}
    assert finish(QUESTIONS["top-pages"], counts, 3) == [("c", 5), ("a", 3), ("b", 3)]
    # sessions-per-country is not a top-N: every country
    assert len(finish(QUESTIONS["sessions-per-country"], counts, 3)) == 4


def test_minute_rows_in_time_then_type_order() -> None:
    counts = {(120_000, "click"): 2, (60_000, "search"): 1, (60_000, "click"): 4}
    assert finish(QUESTIONS["events-per-minute"], counts, 10) == [
        ("1970-01-01T00:01Z", "click", 4),
        ("1970-01-01T00:01Z", "search", 1),
        ("1970-01-01T00:02Z", "click", 2),
    ]


def test_funnel_is_ordered_by_first_times() -> None:
    firsts = [
        (10, 20, 30),  # through
        (10, 20, 15),  # bought before the first click: stops at click
        (10, 5, 30),  # first click before the first view: stops at view
        (None, 20, 30),  # never viewed: not in the funnel
        (10, 10, 10),  # same millisecond: "not before"
        (10, None, 30),
    ]
    assert funnel_counts(firsts) == {"page_view": 5, "click": 3, "purchase": 2}


def test_reference_counts_once_per_event_id_and_day_and_skips_what_es_does_not_index() -> None:
    long_url = "https://shop.example.com/" + "x" * MAX_INDEXED_URL
    repeated = event("2026-03-01T10:00:00Z", event_id="00000000-0000-4000-8000-999999999999")
    events = [
        repeated,
        dict(repeated),  # delivered twice: one document
        event("2026-03-01T10:00:30.5+09:00", kind="click", page=long_url),
        event("2026-03-01T10:01:00Z", referrer="https://www.google.com/"),
    ]
    assert rows("events-per-minute", events) == [
        ("2026-03-01T01:00Z", "click", 1),
        ("2026-03-01T10:00Z", "page_view", 1),
        ("2026-03-01T10:01Z", "page_view", 1),
    ]
    assert rows("top-pages", events) == [("https://shop.example.com/", 2)]
    assert rows("top-referrers", events) == [("https://www.google.com/", 1)]
    # an astral character is two UTF-16 units, as Java counts for ignore_above
    assert utf16_units("😀") == 2


def test_reference_sessions_per_country_and_the_time_range() -> None:
    events = [
        event("2026-03-01T10:00:00Z", session="a", country="KR"),
        event("2026-03-01T10:00:01Z", session="a", country="KR"),
        event("2026-03-01T10:00:02Z", session="b", country="KR"),
        event("2026-03-01T10:00:03Z", session="b", country="JP"),
        event("2026-03-01T11:00:00Z", session="c", country="US"),
    ]
    assert rows("sessions-per-country", events) == [("KR", 2), ("JP", 1), ("US", 1)]
    window = time_range(None, "2026-03-01T10:00:02Z")
    assert rows("sessions-per-country", events, window) == [("KR", 1)]
    funnel_window = time_range("2026-03-01T10:00:02Z", None)
    assert rows("funnel", events, funnel_window) == [
        ("page_view", 2),
        ("click", 0),
        ("purchase", 0),
    ]


# -- comparing the two engines --------------------------------------------------------


def _answer(engine: str, rows_: list[tuple[Any, ...]]) -> Answer:
    return Answer("top-pages", engine, rows_)


def test_difference_names_rows_on_each_side_and_a_changed_ranking() -> None:
    a = _answer("es", [("x", 3), ("y", 2)])
    b = _answer("spark", [("x", 3), ("y", 1)])
    found = difference(a, b)
    assert (found.only_in_a, found.only_in_b) == ([("y", 2)], [("y", 1)])
    assert difference(a, _answer("spark", [("x", 3), ("y", 2)])).empty
    swapped = difference(a, _answer("spark", [("y", 2), ("x", 3)]))
    assert not swapped.empty


def test_a_difference_is_only_a_disagreement_once_both_groups_caught_up() -> None:
    a, b = _answer("es", [("x", 3)]), _answer("spark", [("x", 4)])
    ends = {("t", 0): 7}
    done = GroupLag({"es": 0, "hdfs": 0}, ends)
    assert verdict(a, a, done, done) == AGREE
    assert verdict(a, b, done, done) == DISAGREE
    behind = GroupLag({"es": 5, "hdfs": 0}, ends)
    assert verdict(a, b, behind, behind) == BEHIND
    assert verdict(a, b, done, behind) == BEHIND
    # records arrived while the engines were asked: not settled
    assert verdict(a, b, done, GroupLag({"es": 0, "hdfs": 0}, {("t", 0): 9})) == BEHIND
    assert verdict(a, b, GroupLag(error="Kafka down"), done) == UNKNOWN_LAG
    assert "es lag 5" in behind.describe() and "hdfs lag 0" in behind.describe()


# -- Spark's side, without a JVM ------------------------------------------------------


def test_the_spark_schema_is_the_contract() -> None:
    schema = contract_schema()
    assert tuple(schema.fieldNames()) == FIELD_NAMES
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    assert types["schema_version"] == "bigint" and types["is_vip"] == "boolean"
    assert types["event_time"] == "string"


def test_spark_memory_sizes() -> None:
    assert parse_memory("512m") == 512 << 20 and parse_memory("1g") == 1 << 30
    with pytest.raises(EngineDown):
        parse_memory("lots")
