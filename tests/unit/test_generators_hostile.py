"""The hostile corpus: deterministic, and its by-construction oracle agrees with decode_event.

decode_event must answer every record with an event or InvalidEvent, and the
answer must be the one the corpus decided when it built the record. Anything
else (another exception, or the other answer) is a defect of the contract or a
disagreement to settle; the failure names the case.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import islice

import pytest

from clickfan.events import FIELDS, InvalidEvent, decode_event
from clickfan.generators.hostile import (
    INVALID,
    KAFKA_MAX_MESSAGE_BYTES,
    NULLABLE,
    TYPES,
    VALID,
    Hostile,
    HostileMutator,
    _RawName,
    corpus,
)

MAX_BYTES = 65536
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CORPUS = corpus(5, START, MAX_BYTES)


def _judge(record: Hostile) -> str:
    try:
        decode_event(record.value, MAX_BYTES)
    except InvalidEvent:
        return INVALID
    return VALID


def test_the_corpus_is_deterministic() -> None:
    again = corpus(5, START, MAX_BYTES)
    assert again == CORPUS
    other = corpus(6, START, MAX_BYTES)
    assert {r.event_id for r in other if r.event_id}.isdisjoint(
        {r.event_id for r in CORPUS if r.event_id}
    )


def test_cases_are_named_once_and_cover_both_outcomes() -> None:
    names = [r.name for r in CORPUS]
    assert len(names) == len(set(names))
    assert {r.expected for r in CORPUS} == {VALID, INVALID}
    ids = [r.event_id for r in CORPUS if r.expected == VALID]
    assert None not in ids and len(ids) == len(set(ids))


def test_valid_cases_carry_their_own_event_id() -> None:
    for r in CORPUS:
        if r.expected == VALID:
            assert r.value is not None
            assert json.loads(r.value)["event_id"] == r.event_id, r.name


def test_the_restated_schema_matches_the_contract() -> None:
    assert {f.name: f.type for f in FIELDS} == TYPES
    assert {f.name for f in FIELDS if f.nullable} == NULLABLE


def test_size_cases_sit_on_the_limit_and_the_big_one_fits_in_kafka() -> None:
    by_name = {r.name: r for r in CORPUS}
    assert len(by_name["size:at-limit"].value or b"") == MAX_BYTES
    assert by_name["size:at-limit"].expected == VALID
    assert len(by_name["size:limit-plus-1"].value or b"") == MAX_BYTES + 1
    assert by_name["size:limit-plus-1"].expected == INVALID
    big = by_name["user_agent:1mb"]
    assert MAX_BYTES < len(big.value or b"") < KAFKA_MAX_MESSAGE_BYTES - 1_000


def test_raw_header_names_encode_to_their_bytes() -> None:
    name = _RawName(b"trace\xff\xfe")
    assert name.encode("utf-8") == b"trace\xff\xfe"
    assert [r.name for r in CORPUS if r.raw_header_names] == [
        "headers:non-utf8-name",
        "headers:non-utf8-name-invalid",
    ]


@pytest.mark.parametrize("record", CORPUS, ids=[r.name for r in CORPUS])
def test_the_oracle_agrees_with_decode_event(record: Hostile) -> None:
    assert _judge(record) == record.expected, record.why


def test_the_mutator_is_deterministic_and_agrees_with_decode_event() -> None:
    first = list(islice(HostileMutator(11, START, MAX_BYTES), 300))
    assert first == list(islice(HostileMutator(11, START, MAX_BYTES), 300))
    records = list(islice(HostileMutator(12, START, MAX_BYTES), 3000))
    assert {r.expected for r in records} == {VALID, INVALID}
    assert all(not r.heavy for r in records)
    wrong = sorted({(r.name, r.expected) for r in records if _judge(r) != r.expected})
    assert not wrong, f"decode_event disagrees with the oracle on {wrong}"
