"""Property-based tests of the event contract and of what both sinks build from an event.

For any bytes, any JSON and any mutation of a valid event: either InvalidEvent
with a reason in REASONS, or a valid event whose Elasticsearch bulk body and
HDFS line and folder build, and whose HDFS line decodes back to the same event.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clickfan.events import (
    FIELD_NAMES,
    FIELDS,
    REASONS,
    InvalidEvent,
    decode_event,
    encode_event,
    event_time_utc,
    validate_event,
)
from clickfan.sinks import es_bulk, es_index
from clickfan.sinks.base import SinkRecord
from clickfan.sinks.hdfs_layout import bucket
from tests.event_strategies import (
    BASE_EVENTS,
    HOSTILE_STRINGS,
    edge_events,
    json_values,
    names,
    texts,
)

# large: the size limit has its own tests, here it would only hide the other checks
MAX_BYTES = 10**7
# ~200 examples each: the suite runs on 2 shared cores; no file database in the checkout
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# what the Elasticsearch client itself uses to write a bulk body
NDJSON = Elasticsearch("http://127.0.0.1:1").transport.serializers.get_serializer(
    "application/x-ndjson"
)
_INDEX = re.compile(r"clicks-(\d{4})\.(\d\d)\.(\d\d)")
_BUCKET = re.compile(r"dt=(\d{4})-(\d\d)-(\d\d)/hour=(\d\d)")


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"d": value}
    return value


def _dumps(obj: Any) -> bytes:
    # ASCII: escapes lone surrogates as \ud800, as a foreign producer's JSON may
    return json.dumps(obj, ensure_ascii=True, allow_nan=True).encode()


def _sinks_take(event: dict[str, Any]) -> None:
    """What both sinks build from a valid event: it must build and round-trip."""
    # Elasticsearch: the daily index, the bulk action and source, as the client writes them
    index = es_index.index_name("clicks", event["event_time"])
    record = SinkRecord("t", 0, 7, None, encode_event(event), None, (), event)
    doc = es_bulk.Doc(record, index, event["event_id"], es_bulk.doc_size(record))
    body = NDJSON.dumps(es_bulk.operations([doc]))
    action, source = (json.loads(line) for line in body.splitlines())
    assert action == {"index": {"_index": index, "_id": event["event_id"]}}
    assert source == event
    # HDFS: one line, in the folder of the same UTC day
    line = encode_event(event)
    assert b"\n" not in line and b"\r" not in line
    assert decode_event(line, 10 * len(line)) == event
    folder = bucket(event["event_time"])
    utc = event_time_utc(event["event_time"])
    day = (f"{utc.year:04d}", f"{utc.month:02d}", f"{utc.day:02d}")
    index_match, folder_match = _INDEX.fullmatch(index), _BUCKET.fullmatch(folder)
    assert index_match and folder_match, (index, folder)
    assert index_match.groups() == day == folder_match.groups()[:3]
    assert folder_match.group(4) == f"{utc.hour:02d}"


def _judge_bytes(payload: bytes) -> dict[str, Any] | None:
    try:
        decoded = decode_event(payload, MAX_BYTES)
    except InvalidEvent as exc:
        assert exc.reason in REASONS and exc.problems, exc
        event(exc.reason)  # --hypothesis-show-statistics shows what was explored
        return None
    event("valid")
    assert validate_event(decoded) == []
    _sinks_take(decoded)
    return decoded


@PROPERTY
@given(st.binary(max_size=300))
def test_any_bytes(payload: bytes) -> None:
    _judge_bytes(payload)


@PROPERTY
@given(json_values)
def test_any_json(obj: Any) -> None:
    _judge_bytes(_dumps(obj))
    problems = validate_event(obj)
    assert isinstance(problems, list)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event = dict(draw(st.sampled_from(BASE_EVENTS)))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["hostile", "replace", "remove", "add"]))
        if action == "hostile":
            name = draw(st.sampled_from([f.name for f in FIELDS if f.type is str]))
            event[name] = draw(st.sampled_from(HOSTILE_STRINGS))
        elif action == "replace":
            # any JSON value, or a string: the checks of str fields see hostile text
            event[draw(st.sampled_from(FIELD_NAMES))] = draw(st.one_of(json_values, texts))
        elif action == "remove":
            event.pop(draw(st.sampled_from(FIELD_NAMES)), None)
        else:
            event[draw(st.one_of(texts, names))] = draw(json_values)
    return event


@PROPERTY
@given(mutated_events())
def test_mutated_events(obj: dict[str, Any]) -> None:
    problems = validate_event(obj)
    event = _judge_bytes(_dumps(obj))
    # the two ways in agree: a parsed object is valid exactly when its JSON is
    assert (problems == []) == (event is not None), problems
    if event is not None:
        assert event == obj


@PROPERTY
@given(st.sampled_from(BASE_EVENTS), st.integers(0, 40), st.sampled_from(FIELD_NAMES))
def test_nesting_in_a_field_or_an_extra(base: dict[str, Any], depth: int, name: str) -> None:
    for key in (name, "extra"):
        obj = {**base, key: _deep(depth)}
        event = _judge_bytes(_dumps(obj))
        assert (event is not None) == (validate_event(obj) == [])


# -- valid events at the edges: every one must be placed by both sinks ----------


@PROPERTY
@given(edge_events())
def test_valid_events_at_the_edges_are_placed(obj: dict[str, Any]) -> None:
    problems = validate_event(obj)
    event = _judge_bytes(_dumps(obj))
    assert (problems == []) == (event is not None)
    if event is not None:
        assert event == obj


@pytest.mark.parametrize(
    ("event_time", "index", "folder"),
    [
        ("0001-01-01T00:00:00Z", "clicks-0001.01.01", "dt=0001-01-01/hour=00"),
        ("0001-01-01T01:30:00+01:00", "clicks-0001.01.01", "dt=0001-01-01/hour=00"),
        ("9999-12-31T23:59:59.999999999Z", "clicks-9999.12.31", "dt=9999-12-31/hour=23"),
        ("9999-12-31T05:00:00-18:00", "clicks-9999.12.31", "dt=9999-12-31/hour=23"),
    ],
)
def test_the_calendar_edges_are_placed(event_time: str, index: str, folder: str) -> None:
    event = {**BASE_EVENTS[0], "event_time": event_time}
    assert validate_event(event) == []
    assert es_index.index_name("clicks", event_time) == index
    assert bucket(event_time) == folder
    _sinks_take(event)
