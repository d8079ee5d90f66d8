"""Helpers for the pipeline tests: producing, and reading every sink back.

The Kafka readers, the waits and the worker processes live in tests/support.py
(shared with the other tests) and are re-exported here, so that the pipeline
tests keep importing everything from this module (`ps.lag`, `ps.WorkerProcess`).
"""

from __future__ import annotations

import posixpath
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer
from elasticsearch import Elasticsearch, helpers
from hdfs import InsecureClient

from clickfan.generators.producer import ClickProducer, ProduceSummary
from clickfan.settings import Settings
from clickfan.sinks import clients, hdfs_read
from clickfan.sinks.hdfs_layout import TMP_DIR, bucket
from clickfan.sinks.hdfs_read import ArchivedFile
from tests.support import (
    CLICKFAN,
    Names,
    Record,
    WorkerProcess,
    Workers,
    committed,
    end_offsets,
    lag,
    logs,
    read_topic,
    running,
    running_workers,
    wait_drained,
    wait_until,
    worker_env,
)

__all__ = [
    # from tests.support
    "CLICKFAN",
    "Names",
    "Record",
    "WorkerProcess",
    "Workers",
    "committed",
    "end_offsets",
    "lag",
    "logs",
    "read_topic",
    "running",
    "running_workers",
    "wait_drained",
    "wait_until",
    "worker_env",
    # this module's own
    "ArchivedFile",
    "BackgroundProducer",
    "assert_archived",
    "assert_exact",
    "assert_indexed",
    "check_archive",
    "create_refusing_index",
    "dead_letters",
    "es_client",
    "es_count",
    "es_ids",
    "hdfs_client",
    "hour_boundary_start",
    "iter_valid",
    "leftovers",
    "produce",
    "put_dead_letters",
    "read_archive",
    "source_of",
]

# -- Kafka ----------------------------------------------------------------------


def produce(
    settings: Settings,
    names: Names,
    count: int,
    *,
    bad_fraction: float = 0.0,
    rate: float = 0.0,
    start_time: datetime | None = None,
    seed: int = 7,
) -> ProduceSummary:
    overrides = settings.with_overrides(
        topic=names.topic, bad_fraction=bad_fraction, produce_rate=rate, produce_seed=seed
    )
    summary = ClickProducer(overrides).run(
        count=count, start_time=start_time, record_deliveries=True
    )
    assert summary.ok and summary.acknowledged == count, summary.to_dict()
    return summary


class BackgroundProducer:
    """`produce` in a thread, so that a test can kill or stop things while events flow."""

    def __init__(self, settings: Settings, names: Names, count: int, **options: Any) -> None:
        self._result: list[ProduceSummary] = []
        self._thread = threading.Thread(
            target=lambda: self._result.append(produce(settings, names, count, **options))
        )

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> ProduceSummary:
        """Wait for the end of production; its summary (a failure is in the log above)."""
        self._thread.join()
        assert self._result, "the producer failed (see the log above)"
        return self._result[0]


def put_dead_letters(
    settings: Settings,
    names: Names,
    values: list[bytes],
    *,
    group: str,
    reason: bytes,
    message: bytes,
    first_offset: int = 0,
    source_timestamp: bool = True,
) -> None:
    """Write ``values`` to the test's DLQ as ``group``'s dead letters (attempt 1), as if
    read from partition 0 of the test's topic at ``first_offset``, ``first_offset`` + 1...;
    spread over the DLQ's partitions in turn. ``source_timestamp``: with an (empty)
    clickfan.source.timestamp header, as the workers write it."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all"})
    for i, value in enumerate(values):
        headers = [
            ("clickfan.error.reason", reason),
            ("clickfan.error.message", message),
            ("clickfan.source.topic", names.topic.encode()),
            ("clickfan.source.partition", b"0"),
            ("clickfan.source.offset", str(first_offset + i).encode()),
            ("clickfan.source.timestamp", b""),
            ("clickfan.dlq.group", group.encode()),
            ("clickfan.dlq.attempt", b"1"),
        ]
        if not source_timestamp:
            headers = [h for h in headers if h[0] != "clickfan.source.timestamp"]
        producer.produce(names.dlq_topic, value, partition=i % settings.partitions, headers=headers)
    assert producer.flush(30) == 0


def dead_letters(settings: Settings, names: Names, group: str) -> list[Record]:
    """The DLQ records written by ``group``."""
    return [
        r
        for r in read_topic(settings, names.dlq_topic)
        if r.headers.get("clickfan.dlq.group") == group.encode()
    ]


def source_of(dead_letter: Record) -> tuple[int, int]:
    h = dead_letter.headers
    return int(h["clickfan.source.partition"]), int(h["clickfan.source.offset"])


# -- Elasticsearch -------------------------------------------------------------------


def es_client(settings: Settings) -> Elasticsearch:
    return clients.elasticsearch_client(clients.elasticsearch_connection(settings, timeout_s=60))


def es_ids(settings: Settings, names: Names) -> Counter[str]:
    """Document ids in the test's indices, with how many indices hold each."""
    es = es_client(settings)
    pattern = f"{names.index_prefix}-*"
    es.indices.refresh(index=pattern, allow_no_indices=True)
    hits = helpers.scan(es, index=pattern, query={"query": {"match_all": {}}}, _source=False)
    return Counter(hit["_id"] for hit in hits)


def create_refusing_index(settings: Settings, index: str) -> None:
    """Create ``index`` with ``city`` mapped as a number (before the indexer's template can
    make it), so Elasticsearch refuses every valid event of its day as a mapping error."""
    with es_client(settings) as es:
        es.indices.create(
            index=index,
            settings={"number_of_shards": 1, "number_of_replicas": 0},
            mappings={"properties": {"city": {"type": "long"}}},
        )


def es_count(settings: Settings, names: Names) -> int:
    es = es_client(settings)
    pattern = f"{names.index_prefix}-*"
    try:
        es.indices.refresh(index=pattern, allow_no_indices=True)
        return int(es.count(index=pattern)["count"])
    except Exception:
        return -1


# -- HDFS ------------------------------------------------------------------------


def hdfs_client(settings: Settings) -> InsecureClient:
    return clients.webhdfs_client(clients.webhdfs_connection(settings))


def read_archive(settings: Settings, root: str) -> list[ArchivedFile]:
    """Every archived file under ``root``, either format, with its events (temp and marker
    folders aside); any other file fails the test."""
    return list(hdfs_read.read_archive(hdfs_client(settings), root, strict=True))


def leftovers(settings: Settings, root: str) -> list[str]:
    """Anything still in the temp folder."""
    client = hdfs_client(settings)
    return [
        posixpath.join(folder, n)
        for folder, _, names in client.walk(posixpath.join(root, TMP_DIR), ignore_missing=True)
        for n in names
    ]


def check_archive(
    files: list[ArchivedFile], topic: str, where: dict[str, tuple[int, int]]
) -> Counter[tuple[int, int]]:
    """Check each file against its name and folder; count each (partition, offset) archived.

    ``where`` maps event_id -> (partition, offset) as the producer recorded it.
    """
    archived: Counter[tuple[int, int]] = Counter()
    for f in files:
        assert f.name.topic == topic, f.path
        assert f.events, f"empty file {f.path}"
        coords = []
        for event in f.events:
            partition, offset = where[event["event_id"]]
            assert partition == f.name.partition, f"{f.path}: event from partition {partition}"
            assert bucket(event["event_time"]) == f.folder, f"{f.path}: {event['event_time']}"
            coords.append(offset)
            archived[(partition, offset)] += 1
        assert coords == sorted(coords), f"{f.path}: lines not in offset order"
        if f.offsets is not None:  # Parquet: each row's own offset column
            assert f.offsets == coords, f"{f.path}: rows say offsets {f.offsets[:5]}..."
        assert (coords[0], coords[-1]) == (f.name.first, f.name.last), (
            f"{f.path}: holds offsets {coords[0]}..{coords[-1]}"
        )
    return archived


def iter_valid(summary: ProduceSummary) -> Iterator[tuple[str, int, int]]:
    """(event_id, partition, offset) of each valid event produced."""
    assert summary.deliveries is not None
    for d in summary.deliveries:
        if d.bad_kind is None:
            assert d.event_id is not None and d.offset is not None
            yield d.event_id, d.partition, d.offset


def hour_boundary_start() -> datetime:
    """An event start time 10 s before the next full hour, so rolls span two hour folders."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now.replace(minute=59, second=50)


def assert_exact(settings: Settings, names: Names, summary: ProduceSummary) -> None:
    """Every valid event in Elasticsearch once; every offset archived or dead-lettered once."""
    assert_indexed(settings, names, summary)
    assert_archived(settings, names, summary)


def assert_indexed(settings: Settings, names: Names, summary: ProduceSummary) -> None:
    where = {eid: (p, o) for eid, p, o in iter_valid(summary)}
    ids = es_ids(settings, names)
    assert set(ids) == set(where), (
        f"Elasticsearch: {len(set(where) - set(ids))} events missing, "
        f"{len(set(ids) - set(where))} unexpected"
    )
    assert max(ids.values()) == 1, "an event is in more than one daily index"


def assert_archived(settings: Settings, names: Names, summary: ProduceSummary) -> None:
    where = {eid: (p, o) for eid, p, o in iter_valid(summary)}
    archived = check_archive(read_archive(settings, names.hdfs_root), names.topic, where)
    repeated = {k: n for k, n in archived.items() if n > 1}
    assert not repeated, f"archived more than once: {sorted(repeated)[:10]}"
    assert set(archived) == set(where.values()), (
        f"HDFS: {len(set(where.values()) - set(archived))} events missing"
    )
    assert leftovers(settings, names.hdfs_root) == []

    # the archiver's offset accounting: archived + dead-lettered = every offset, no overlap
    dlq = {source_of(r) for r in dead_letters(settings, names, names.hdfs_group)}
    assert not dlq & set(archived)
    ends = end_offsets(settings, names.topic, settings.partitions)
    every = {(p, o) for p, end in ends.items() for o in range(end)}
    assert set(archived) | dlq == every
