"""Rebuild the Elasticsearch side from the HDFS archive, into a fresh index prefix.

When Kafka's retention has already removed the oldest records, replaying the
topic cannot rebuild an index any more; the archive can. Every archived event
(JSON Lines, and Parquet where the archiver wrote it) is bulk-indexed with the
indexer's own template and daily index names, the event id as document id, so
a second run overwrites instead of adding. The new prefix must not start with
``<old prefix>-``: the old daily-index pattern would count it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from elasticsearch import helpers

from clickfan.analysis.questions import EngineDown
from clickfan.settings import Settings
from clickfan.sinks import clients
from clickfan.sinks.es_index import check_prefix, index_name, template_body, template_name
from clickfan.sinks.hdfs_read import read_archive


@dataclass
class Rebuilt:
    events: int
    indices: list[str]


def read_events(settings: Settings, root: str) -> Iterator[dict[str, Any]]:
    """Every archived event, JSON Lines and Parquet alike (sinks.hdfs_read, which skips
    the folders starting with '_')."""
    from hdfs.util import HdfsError

    client = clients.webhdfs_client(clients.webhdfs_connection(settings, 60))
    try:
        for archived in read_archive(client, root):
            yield from archived.events
    except HdfsError as exc:
        raise EngineDown(f"HDFS at {settings.webhdfs_url}: {exc}") from None


def rebuild_index(settings: Settings, root: str, new_prefix: str) -> Rebuilt:
    """Bulk-index every archived event into ``<new_prefix>-YYYY.MM.DD``."""
    check_prefix(new_prefix)
    if new_prefix.startswith(f"{settings.index_prefix}-"):
        raise ValueError(
            f"{new_prefix!r} starts with {settings.index_prefix}-: its indices would be counted "
            f"as {settings.index_prefix}'s own; choose another prefix"
        )
    es = clients.elasticsearch_client(clients.elasticsearch_connection(settings, 120))
    es.indices.put_index_template(
        name=template_name(new_prefix),
        **template_body(new_prefix, settings.es_index_shards, settings.es_index_replicas),
    )
    counts = {"events": 0}
    indices: set[str] = set()

    def actions() -> Iterator[dict[str, Any]]:
        for event in read_events(settings, root):
            index = index_name(new_prefix, event["event_time"])
            indices.add(index)
            counts["events"] += 1
            yield {"_index": index, "_id": event["event_id"], "_source": event}

    helpers.bulk(es, actions(), chunk_size=2000, max_retries=3)
    if indices:
        es.indices.refresh(index=",".join(sorted(indices)))
    return Rebuilt(counts["events"], sorted(indices))
