"""The Elasticsearch mapping and the placement of events, checked against the contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from clickfan.events import (
    FIELDS,
    MAX_KEYWORD_CHARS,
    SUPPORTED_SCHEMA_VERSIONS,
    InvalidEvent,
    validate_event,
)
from clickfan.generators.events import EventGenerator
from clickfan.sinks import es_index
from clickfan.sinks.hdfs_layout import bucket

GOOD = EventGenerator(3, start_time=datetime(2026, 3, 1, tzinfo=UTC), users=20).take(1)[0]
PROPERTIES: dict[str, Any] = es_index.MAPPINGS["properties"]

# Elasticsearch types that take a Python value of each contract type, with the
# integer range each integer type holds
_INTEGER_RANGES = {"byte": 2**7, "short": 2**15, "integer": 2**31, "long": 2**63}
_STRING_TYPES = {"keyword", "text", "date", "ip", "wildcard", "match_only_text"}


def _keyword_mappings(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    found = [mapping] if mapping["type"] == "keyword" else []
    return found + [m for m in mapping.get("fields", {}).values() if m["type"] == "keyword"]


def test_every_contract_field_is_mapped_and_nothing_else() -> None:
    # Extra fields are allowed by the contract but not mapped: dynamic false keeps
    # them in _source, unindexed, so one producer's extras cannot change the index.
    assert es_index.MAPPINGS["dynamic"] is False
    assert list(PROPERTIES) == [f.name for f in FIELDS]


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_each_mapped_type_takes_the_contract_type(field: Any) -> None:
    es_type = PROPERTIES[field.name]["type"]
    if field.type is bool:
        assert es_type == "boolean"
    elif field.type is int:
        assert es_type in _INTEGER_RANGES
        # every value the contract accepts fits the mapped integer type
        assert all(abs(v) < _INTEGER_RANGES[es_type] for v in SUPPORTED_SCHEMA_VERSIONS)
    else:
        assert field.type is str and es_type in _STRING_TYPES


def test_time_and_ip_use_the_types_that_check_them() -> None:
    assert PROPERTIES["event_time"] == {"type": "date", "format": "strict_date_optional_time"}
    assert PROPERTIES["ip"]["type"] == "ip"


@pytest.mark.parametrize(
    "name", [name for name, m in PROPERTIES.items() if _keyword_mappings(m)], ids=str
)
def test_no_valid_value_is_too_long_for_a_keyword(name: str) -> None:
    # Lucene refuses a term above 32766 bytes: a keyword without ignore_above must
    # get no string longer than MAX_KEYWORD_CHARS from the contract.
    unbounded = [m for m in _keyword_mappings(PROPERTIES[name]) if "ignore_above" not in m]
    for m in _keyword_mappings(PROPERTIES[name]):
        assert m.get("ignore_above", 0) <= MAX_KEYWORD_CHARS
    if unbounded:
        assert validate_event({**GOOD, name: "a" * (MAX_KEYWORD_CHARS + 1)}) != []


@pytest.mark.parametrize(
    ("event_time", "index", "folder"),
    [
        ("2026-03-09T23:10:00.000Z", "clicks-2026.03.09", "dt=2026-03-09/hour=23"),
        ("2026-03-10T01:10:00+02:00", "clicks-2026.03.09", "dt=2026-03-09/hour=23"),
        ("0999-12-31T23:45:00-00:30", "clicks-1000.01.01", "dt=1000-01-01/hour=00"),
        ("0001-01-01T00:00:00Z", "clicks-0001.01.01", "dt=0001-01-01/hour=00"),
    ],
)
def test_index_and_folder_are_the_same_utc_day(event_time: str, index: str, folder: str) -> None:
    assert es_index.index_name("clicks", event_time) == index
    assert bucket(event_time) == folder


@pytest.mark.parametrize("event_time", ["0001-01-01T00:00:00+00:01", "not a time", ""])
def test_an_unplaceable_time_is_an_invalid_event_not_a_crash(event_time: str) -> None:
    for place in (lambda t: es_index.index_name("clicks", t), bucket):
        with pytest.raises(InvalidEvent):
            place(event_time)
