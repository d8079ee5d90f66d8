"""Rebuild the Elasticsearch side from the HDFS archive, into a fresh index prefix.

When Kafka's retention has already removed the oldest records, replaying the
topic cannot rebuild an index any more; the archive can. Every archived event
(JSON Lines, and Parquet where the archiver wrote it) is bulk-indexed with the
indexer's own template and daily index names, the event id as document id, so
a second run overwrites instead of adding. The new prefix must not start with
``<old prefix>-``: the old daily-index pattern would count it too.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch, helpers

from clickfan.analysis.questions import EngineDown
from clickfan.events import InvalidEvent, decode_event
from clickfan.settings import Settings
from clickfan.sinks.es_index import check_prefix, index_name, template_body, template_name

JSONL = ".jsonl"
PARQUET = ".parquet"


@dataclass
class Rebuilt:
    files: int
    events: int
    indices: list[str]
    invalid: int  # archived lines that are not events (never expected: the archiver checks)


def archived_files(settings: Settings, root: str) -> list[str]:
    """Paths of the archive's files, folders starting with '_' left out, in name order."""
    from hdfs import InsecureClient
    from hdfs.util import HdfsError

    client = InsecureClient(settings.webhdfs_url, user=settings.hdfs_user, timeout=60)
    found = []
    try:
        for folder, dirs, names in client.walk(root, allow_dir_changes=True):
            dirs[:] = [d for d in dirs if not d.startswith("_")]
            for name in names:
                if name.endswith((JSONL, PARQUET)) and not name.startswith("_"):
                    found.append(posixpath.join(folder, name))
    except HdfsError as exc:
        raise EngineDown(f"HDFS at {settings.webhdfs_url}: {exc}") from None
    return sorted(found)


def _from_parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row back into the event's JSON form (UTC time text, extra fields merged)."""
    event = {k: v for k, v in row.items() if k not in ("extra", "dt", "hour")}
    when = event.get("event_time")
    if isinstance(when, datetime):
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        event["event_time"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    extra = row.get("extra")
    if isinstance(extra, str) and extra:
        event.update(json.loads(extra))
    return event


def read_events(settings: Settings, root: str) -> Iterator[dict[str, Any] | None]:
    """Every archived event, file by file (None for a line that is not an event)."""
    from hdfs import InsecureClient

    client = InsecureClient(settings.webhdfs_url, user=settings.hdfs_user, timeout=60)
    for path in archived_files(settings, root):
        with client.read(path) as reader:
            data = reader.read()
        if path.endswith(JSONL):
            for line in data.splitlines():
                if line.strip():
                    try:
                        yield decode_event(line, settings.max_event_bytes)
                    except InvalidEvent:
                        yield None
        else:
            import pyarrow.parquet as pq  # the Parquet archive's own dependency

            for row in pq.read_table(io.BytesIO(data)).to_pylist():
                yield _from_parquet_row(row)


def rebuild_index(settings: Settings, root: str, new_prefix: str) -> Rebuilt:
    """Bulk-index every archived event into ``<new_prefix>-YYYY.MM.DD``."""
    check_prefix(new_prefix)
    if new_prefix.startswith(f"{settings.index_prefix}-"):
        raise ValueError(
            f"{new_prefix!r} starts with {settings.index_prefix}-: its indices would be counted "
            f"as {settings.index_prefix}'s own; choose another prefix"
        )
    es = Elasticsearch(settings.es_url, request_timeout=120)
    es.indices.put_index_template(
        name=template_name(new_prefix),
        **template_body(new_prefix, settings.es_index_shards, settings.es_index_replicas),
    )
    counts = {"events": 0, "invalid": 0}
    indices: set[str] = set()

    def actions() -> Iterator[dict[str, Any]]:
        for event in read_events(settings, root):
            if event is None:
                counts["invalid"] += 1
                continue
            index = index_name(new_prefix, event["event_time"])
            indices.add(index)
            counts["events"] += 1
            yield {"_index": index, "_id": event["event_id"], "_source": event}

    helpers.bulk(es, actions(), chunk_size=2000, max_retries=3)
    if indices:
        es.indices.refresh(index=",".join(sorted(indices)))
    files = len(archived_files(settings, root))
    return Rebuilt(files, counts["events"], sorted(indices), counts["invalid"])
