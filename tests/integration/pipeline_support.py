"""Helpers for the pipeline tests: worker processes, producing, and reading every sink back.

Tests assert behaviour, not timings: each wait here is bounded and fails with
what it was waiting for and what it saw, plus the tail of the worker logs.
"""

from __future__ import annotations

import json
import os
import posixpath
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from elasticsearch import Elasticsearch, helpers
from hdfs import InsecureClient

from clickfan.generators.producer import ClickProducer, ProduceSummary
from clickfan.settings import Settings
from clickfan.sinks.hdfs_layout import COMMITTED_DIR, TMP_DIR, ArchiveFile, bucket
from tests.conftest import Names

CLICKFAN = str(Path(sys.executable).with_name("clickfan"))


def worker_env(settings: Settings, names: Names, **extra: object) -> dict[str, str]:
    """Environment for `clickfan worker` processes confined to one test's names."""
    env = {
        **os.environ,
        "CLICKFAN_TOPIC": names.topic,
        "CLICKFAN_DLQ_TOPIC": names.dlq_topic,
        "CLICKFAN_ES_GROUP": names.es_group,
        "CLICKFAN_HDFS_GROUP": names.hdfs_group,
        "CLICKFAN_INDEX_PREFIX": names.index_prefix,
        "CLICKFAN_HDFS_ROOT": names.hdfs_root,
        # small rolls, so that tests see many of them (and kills land inside them)
        "CLICKFAN_HDFS_ROLL_S": "2",
        "CLICKFAN_HDFS_ROLL_RECORDS": "1000",
        "CLICKFAN_WORKER_STATS_INTERVAL_S": "5",
        "CLICKFAN_SINK_RETRY_MAX_S": "2",
        "CLICKFAN_SINK_LOG_INTERVAL_S": "5",
        # a killed member's partitions move on sooner
        "CLICKFAN_WORKER_SESSION_TIMEOUT_S": "10",
    }
    env.update({f"CLICKFAN_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    """One `clickfan worker es|hdfs` process; restartable, its logs kept in one file."""

    def __init__(self, kind: str, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.kind = kind
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start #{self.starts} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [CLICKFAN, "worker", self.kind],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM and wait; the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            return None

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def logs(workers: list[WorkerProcess]) -> str:
    return "\n".join(f"--- {w.log_path.name} ---\n{w.tail()}" for w in workers)


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    describe: Callable[[], str] = lambda: "",
    interval: float = 1.0,
) -> Any:
    """Poll ``check`` until truthy; fail with ``what`` and ``describe()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}\n{describe()}")
        time.sleep(interval)


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


def _consumer(settings: Settings, group: str | None = None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": group or "clickfan-tests-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def end_offsets(settings: Settings, topic: str, partitions: int) -> dict[int, int]:
    consumer = _consumer(settings)
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


# A group's coordinator can move or still be loading: ask again rather than fail.
_COORDINATOR_BUSY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
}


def committed(settings: Settings, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets (-1001 when none), read without joining the group."""
    deadline = time.monotonic() + 30
    while True:
        consumer = _consumer(settings, group)
        try:
            tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
            return {tp.partition: tp.offset for tp in tps}
        except KafkaException as exc:
            if exc.args[0].code() not in _COORDINATOR_BUSY or time.monotonic() > deadline:
                raise
        finally:
            consumer.close()
        time.sleep(0.5)


def lag(settings: Settings, group: str, topic: str) -> int:
    """Total lag of ``group`` on ``topic`` (records not yet committed)."""
    ends = end_offsets(settings, topic, settings.partitions)
    done = committed(settings, group, topic, settings.partitions)
    return sum(end - max(done[p], 0) for p, end in ends.items())


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def read_topic(settings: Settings, topic: str) -> list[Record]:
    """Every record of ``topic`` from the beginning to the current end."""
    ends = end_offsets(settings, topic, settings.partitions)
    consumer = _consumer(settings)
    consumer.assign([TopicPartition(topic, p, 0) for p in ends if ends[p] > 0])
    records: list[Record] = []
    position = {p: 0 for p in ends}
    deadline = time.monotonic() + 120
    try:
        while any(position[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end {ends}: at {position}")
            for m in consumer.consume(1000, timeout=1.0):
                if m.error():
                    continue
                records.append(
                    Record(m.partition(), m.offset(), m.key(), m.value(), dict(m.headers() or []))
                )
                position[m.partition()] = m.offset() + 1
    finally:
        consumer.close()
    return records


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
    return Elasticsearch(settings.es_url, request_timeout=60)


def es_ids(settings: Settings, names: Names) -> Counter[str]:
    """Document ids in the test's indices, with how many indices hold each."""
    es = es_client(settings)
    pattern = f"{names.index_prefix}-*"
    es.indices.refresh(index=pattern, allow_no_indices=True)
    hits = helpers.scan(es, index=pattern, query={"query": {"match_all": {}}}, _source=False)
    return Counter(hit["_id"] for hit in hits)


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
    return InsecureClient(settings.webhdfs_url, user=settings.hdfs_user)


@dataclass(frozen=True)
class ArchivedFile:
    path: str
    name: ArchiveFile
    folder: str  # dt=.../hour=...
    events: list[dict[str, Any]]


def read_archive(settings: Settings, root: str) -> list[ArchivedFile]:
    """Every archived file under ``root`` with its events (temp and marker folders aside)."""
    client = hdfs_client(settings)
    files: list[ArchivedFile] = []
    for folder, _, names in client.walk(root, ignore_missing=True):
        relative = posixpath.relpath(folder, root)
        if relative.split("/")[0] in (TMP_DIR, COMMITTED_DIR) or relative == ".":
            continue
        for name in names:
            path = posixpath.join(folder, name)
            parsed = ArchiveFile.parse(name)
            assert parsed is not None, f"unexpected file in the archive: {path}"
            with client.read(path) as reader:
                lines = reader.read().decode("utf-8").splitlines()
            files.append(
                ArchivedFile(
                    path,
                    parsed,
                    posixpath.relpath(folder, root),
                    [json.loads(line) for line in lines],
                )
            )
    return files


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
