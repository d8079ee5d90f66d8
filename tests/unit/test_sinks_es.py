"""Index naming, the template's mapping, and the pure parts of bulk indexing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from clickfan.events import FIELD_NAMES
from clickfan.sinks import es_bulk, es_index
from clickfan.sinks.base import Rejection, SinkRecord
from clickfan.sinks.clients import ElasticsearchConnection, Refused
from clickfan.sinks.elasticsearch_sink import ElasticsearchConfig, ElasticsearchSink
from clickfan.sinks.retry import RetryPolicy


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


def _item(status: int, error_type: str | None = None, reason: str = "why") -> dict[str, Any]:
    result: dict[str, Any] = {"status": status}
    if error_type is not None:
        result["error"] = {"type": error_type, "reason": reason}
    return {"index": result}


@pytest.mark.parametrize(
    ("item", "outcome"),
    [
        # the document's fault: dead-lettered with the reason
        (_item(400, "mapper_parsing_exception"), es_bulk.Outcome.REJECTED),
        (_item(400, "document_parsing_exception"), es_bulk.Outcome.REJECTED),
        (_item(400, "strict_dynamic_mapping_exception"), es_bulk.Outcome.REJECTED),
        (_item(400, "illegal_argument_exception"), es_bulk.Outcome.REJECTED),
        # the cluster's state: held until an operator fixes it
        (_item(400, "index_closed_exception"), es_bulk.Outcome.HOLD),
        (_item(403, "cluster_block_exception"), es_bulk.Outcome.HOLD),
        (_item(404, "index_not_found_exception"), es_bulk.Outcome.HOLD),
        # our credentials may not write there: the worker stops with the reason
        (_item(401, "security_exception"), es_bulk.Outcome.REFUSED),
        (_item(403, "security_exception"), es_bulk.Outcome.REFUSED),
        # busy or broken: retried
        (_item(429, "es_rejected_execution_exception"), es_bulk.Outcome.RETRY),
        (_item(429, "cluster_block_exception"), es_bulk.Outcome.RETRY),  # flood-stage disk
        (_item(503, "unavailable_shards_exception"), es_bulk.Outcome.RETRY),
        ({"index": {"error": "no status"}}, es_bulk.Outcome.RETRY),
        (_item(201), es_bulk.Outcome.INDEXED),
    ],
)
def test_items_are_judged_by_what_their_error_means(
    item: dict[str, Any], outcome: es_bulk.Outcome
) -> None:
    assert es_bulk.judge(item)[0] is outcome


class FakeBulk:
    """An Elasticsearch client whose bulk answers each document by the next function."""

    def __init__(self, answer: Callable[[int, dict[str, Any]], dict[str, Any]]) -> None:
        self.answer = answer
        self.calls = 0
        self.indices = self

    async def put_index_template(self, **_: Any) -> None:
        pass

    async def bulk(self, operations: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        self.calls += 1
        items = [self.answer(self.calls, source) for source in operations[1::2]]
        return {"errors": any(i["index"]["status"] >= 300 for i in items), "items": items}

    async def close(self) -> None:
        pass


def _sink(answer: Callable[[int, dict[str, Any]], dict[str, Any]]) -> tuple[Any, list[Any]]:
    dead: list[Rejection] = []

    async def dead_letter(rejections: Sequence[Rejection]) -> None:
        dead.extend(rejections)

    connection = ElasticsearchConnection(("http://127.0.0.1:1",), request_timeout_s=1.0)
    config = ElasticsearchConfig(connection, "clicks", 1 << 20, 1, 0)
    policy = RetryPolicy(initial_s=0.001, max_s=0.002, log_interval_s=60)
    sink = ElasticsearchSink(config, policy, dead_letter, asyncio.Event())
    sink._es = FakeBulk(answer)  # type: ignore[assignment]
    return sink, dead


def test_a_closed_index_holds_the_batch_until_it_opens(caplog: pytest.LogCaptureFixture) -> None:
    # closed for the first three requests, then open again
    def answer(call: int, source: dict[str, Any]) -> dict[str, Any]:
        return _item(400, "index_closed_exception", "closed") if call <= 3 else _item(201)

    sink, dead = _sink(answer)

    async def scenario() -> dict[int, int]:
        await sink.put([_record(0), _record(1)])
        return await sink.flush()

    with caplog.at_level(logging.WARNING, logger="clickfan.sinks.elasticsearch_sink"):
        offsets = asyncio.run(scenario())
    assert offsets == {0: 2} and dead == []
    assert sink._es.calls == 4
    said = caplog.records[0].getMessage()
    assert "index_closed_exception" in said and "open the index" in said


def test_a_documents_fault_is_dead_lettered_and_the_rest_indexed() -> None:
    def answer(call: int, source: dict[str, Any]) -> dict[str, Any]:
        if source["event_id"] == "id-1":
            return _item(400, "document_parsing_exception", "failed to parse field [ip]")
        return _item(201)

    sink, dead = _sink(answer)

    async def scenario() -> dict[int, int]:
        await sink.put([_record(0), _record(1), _record(2)])
        return await sink.flush()

    assert asyncio.run(scenario()) == {0: 3}
    assert [(r.record.offset, r.reason) for r in dead] == [(1, "es_rejected")]
    assert "failed to parse field [ip]" in dead[0].message


def test_an_item_our_key_may_not_write_stops_the_worker_with_the_reason() -> None:
    # a 403 security_exception on an item: not the document's fault, not a passing state
    def answer(call: int, source: dict[str, Any]) -> dict[str, Any]:
        return _item(
            403, "security_exception", "action [indices:data/write/bulk[s]] is unauthorized"
        )

    sink, dead = _sink(answer)

    async def scenario() -> dict[int, int]:
        await sink.put([_record(0)])
        return await sink.flush()

    with pytest.raises(Refused, match="does not allow the indexer to write .*unauthorized"):
        asyncio.run(scenario())
    assert dead == []


def test_index_names_remembered_per_minute_and_zone_are_the_ones_computed() -> None:
    from clickfan.sinks.elasticsearch_sink import IndexNames

    names = IndexNames("clicks")
    zones = ["Z", "+00:00", "+02:00", "-00:15", "+14:00", "-12:30", "+05:45"]
    checked = 0
    for day in ("2026-03-09", "2026-12-31", "2024-02-29"):
        for hour in (0, 1, 11, 12, 13, 22, 23):
            for minute in (0, 14, 15, 29, 30, 44, 45, 59):
                for second in ("00", "59.999", "30.5"):
                    for zone in zones:
                        t = f"{day}T{hour:02d}:{minute:02d}:{second}{zone}"
                        assert names(t) == es_index.index_name("clicks", t), t
                        checked += 1
    assert checked == 3 * 7 * 8 * 3 * 7
    assert len(names._names) <= IndexNames.MAX_ENTRIES
