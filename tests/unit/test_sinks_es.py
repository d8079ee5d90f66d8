"""Index naming, the template's mapping, and the pure parts of bulk indexing."""

from __future__ import annotations

import pytest

from clickfan.events import FIELD_NAMES
from clickfan.sinks import es_bulk, es_index
from clickfan.sinks.base import SinkRecord


def _record(offset: int, size: int = 10) -> SinkRecord:
    event = {"event_id": f"id-{offset}", "event_time": "2026-01-01T00:00:00Z"}
    return SinkRecord("t", 0, offset, None, b"x" * size, None, (), event)


def test_daily_index_by_utc_event_time() -> None:
    assert es_index.index_name("clicks", "2026-03-09T23:10:00.000Z") == "clicks-2026.03.09"
    assert es_index.index_name("clicks", "2026-03-10T01:10:00+02:00") == "clicks-2026.03.09"


def test_mapping_is_explicit_for_every_schema_field() -> None:
    mapping = es_index.MAPPINGS
    assert mapping["dynamic"] is False
    assert set(mapping["properties"]) == set(FIELD_NAMES)
    assert mapping["properties"]["ip"]["type"] == "ip"
    assert mapping["properties"]["event_time"]["type"] == "date"


def test_template_matches_only_its_prefix() -> None:
    body = es_index.template_body("t1-clicks", shards=1, replicas=0)
    assert body["index_patterns"] == ["t1-clicks-*"]
    assert body["template"]["mappings"] is es_index.MAPPINGS


@pytest.mark.parametrize("prefix", ["Clicks", "-clicks", "cl icks", "clicks*", ""])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        es_index.check_prefix(prefix)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, es_bulk.Outcome.INDEXED),
        (201, es_bulk.Outcome.INDEXED),
        (429, es_bulk.Outcome.RETRY),
        (503, es_bulk.Outcome.RETRY),
        (400, es_bulk.Outcome.REJECTED),
        (404, es_bulk.Outcome.REJECTED),
    ],
)
def test_item_outcomes(status: int, outcome: es_bulk.Outcome) -> None:
    assert es_bulk.outcome(status) is outcome


def test_chunks_are_bounded_by_bytes_but_never_empty() -> None:
    docs = [es_bulk.Doc(_record(i), "i", f"id-{i}", 100) for i in range(5)]
    assert len(es_bulk.first_chunk(docs, 250)) == 2
    assert len(es_bulk.first_chunk(docs, 10)) == 1  # one huge document still goes alone
    assert len(es_bulk.first_chunk(docs, 10_000)) == 5


def test_operations_use_the_event_id() -> None:
    doc = es_bulk.Doc(_record(3), "clicks-2026.01.01", "id-3", 10)
    action, source = es_bulk.operations([doc])
    assert action == {"index": {"_index": "clicks-2026.01.01", "_id": "id-3"}}
    assert source["event_id"] == "id-3"


def test_item_status_reads_errors() -> None:
    item = {
        "index": {
            "status": 400,
            "error": {
                "type": "document_parsing_exception",
                "reason": "failed to parse field [ip]",
                "caused_by": {"reason": "'x' is not an IP string literal."},
            },
        }
    }
    status, text = es_bulk.item_status(item)
    assert status == 400
    assert "document_parsing_exception" in text and "not an IP" in text
    assert es_bulk.item_status({"index": {"status": 201}}) == (201, "")
