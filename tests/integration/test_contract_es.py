"""The contract against the real Elasticsearch node: what validation accepts, Elasticsearch takes.

Valid events at the edges (years 0001 and 9999, offsets up to ±18:00, nine
fraction digits, IPv6 with zones, extra fields with any accepted name and any
JSON value) are bulk-indexed with the template's mapping into one index (not
one per day: the node is shared). Every one must be indexed, and the time
Elasticsearch stored must be the UTC instant clickfan.events.event_time_utc
gives, to the millisecond, so the daily index and the HDFS hour folder are
the day and hour Elasticsearch itself sees.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickfan.events import event_time_utc, validate_event
from clickfan.settings import Settings
from clickfan.sinks import clients, es_index
from tests.event_strategies import edge_events, json_values

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# extra names in any script, as the contract allows
_unicode_names = st.from_regex(r"[^\W_][\w-]{0,8}(?:\.[\w-]{1,4})?", fullmatch=True)


@st.composite
def _valid_events(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(edge_events())
    event.update(draw(st.dictionaries(_unicode_names, json_values, max_size=2)))
    return event


def _millis(event_time: str) -> int:
    return (event_time_utc(event_time) - _EPOCH) // timedelta(milliseconds=1)


def test_elasticsearch_takes_every_valid_event_and_reads_its_time_as_we_do(
    stack: Settings,
) -> None:
    es = clients.elasticsearch_client(clients.elasticsearch_connection(stack, timeout_s=60))
    index = f"h4c{uuid.uuid4().hex[:10]}-contract"
    es.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings=es_index.MAPPINGS,
    )
    checked: list[int] = []

    # 10 bulk requests of up to 40 events: a moderate load on the shared node
    @settings(
        max_examples=10,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.lists(_valid_events().filter(lambda e: validate_event(e) == []), max_size=40))
    def index_batch(events: list[dict[str, Any]]) -> None:
        if not events:
            return
        ids = [str(uuid.uuid4()) for _ in events]
        operations: list[dict[str, Any]] = []
        for doc_id, event in zip(ids, events, strict=True):
            operations += [{"index": {"_index": index, "_id": doc_id}}, event]
        response = es.bulk(operations=operations, refresh=True)
        refused = [item["index"] for item in response["items"] if item["index"]["status"] >= 300]
        assert not refused, refused[:3]
        stored = es.search(
            index=index,
            query={"ids": {"values": ids}},
            docvalue_fields=[{"field": "event_time", "format": "epoch_millis"}],
            source=False,
            size=len(ids),
        )
        times = {h["_id"]: int(h["fields"]["event_time"][0]) for h in stored["hits"]["hits"]}
        for doc_id, event in zip(ids, events, strict=True):
            assert times[doc_id] == _millis(event["event_time"]), event["event_time"]
        checked.append(len(events))

    try:
        index_batch()
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.close()
    assert sum(checked) > 0
