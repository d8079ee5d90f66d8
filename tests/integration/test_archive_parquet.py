"""The archive in Parquet: the events produced, exactly once, through kill -9 and a format switch.

Each test runs `clickfan worker hdfs --format ...` against the real HDFS and
reads the files back with pyarrow (through sinks.hdfs_read, the one reader,
and directly), comparing them with what the topic holds: every valid record
once, equal to the event decoded from its Kafka value, nothing else.
"""

from __future__ import annotations

import posixpath
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, Producer, TopicPartition

from clickfan.events import (
    InvalidEvent,
    decode_event,
    encode_event,
    event_time_utc,
    validate_event,
)
from clickfan.generators import hostile
from clickfan.generators.events import EventGenerator
from clickfan.settings import Settings
from clickfan.sinks import hdfs_formats, hdfs_parquet, hdfs_read
from clickfan.sinks.hdfs_fence import commit_name, data_name, partition_dir
from clickfan.sinks.hdfs_layout import COMMITTED_DIR, Marker, bucket
from clickfan.sinks.hdfs_roll import PendingRoll
from tests.integration import pipeline_support as ps
from tests.support import Names, clickfan

PARQUET = ("--format", "parquet")
JSONL = ("--format", "jsonl")


def _valid_records(stack: Settings, topic: str) -> dict[tuple[int, int], dict[str, Any]]:
    """(partition, offset) -> event, for each record of the topic that is a valid event.

    Unlike ps.read_topic it never reads headers: hostile ones need not be UTF-8.
    """
    ends = ps.end_offsets(stack, topic, stack.partitions)
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": f"tests-parquet-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
    position = dict.fromkeys(ends, 0)
    events = {}
    deadline = time.monotonic() + 120
    try:
        while any(position[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"could not read {topic} to {ends}: at {position}"
            for m in consumer.consume(500, timeout=1.0):
                if m.error() or m.offset() >= ends[m.partition()]:
                    continue
                position[m.partition()] = m.offset() + 1
                try:
                    event = decode_event(m.value(), stack.max_event_bytes)
                except InvalidEvent:
                    continue
                events[(m.partition(), m.offset())] = event
    finally:
        consumer.close()
    return events


def _assert_archive_is_the_topic(stack: Settings, names: Names) -> list[hdfs_read.ArchivedFile]:
    """Every valid record archived once, equal to its event; nothing else; no leftovers."""
    expected = _valid_records(stack, names.topic)
    by_id = {e["event_id"]: coord for coord, e in expected.items()}  # for JSON Lines files
    found: Counter[tuple[int, int]] = Counter()
    files = list(hdfs_read.read_archive(ps.hdfs_client(stack), names.hdfs_root, strict=True))
    for f in files:
        assert f.name.topic == names.topic, f.path
        offsets = f.offsets
        if offsets is None:
            offsets = [by_id[e["event_id"]][1] for e in f.events]
        assert (offsets[0], offsets[-1]) == (f.name.first, f.name.last), f.path
        for event, offset in zip(f.events, offsets, strict=True):
            coord = (f.name.partition, offset)
            assert expected.get(coord) == event, f"{f.path}: offset {offset} differs"
            assert bucket(event["event_time"]) == f.folder, f.path
            found[coord] += 1
    twice = sorted(c for c, n in found.items() if n > 1)
    assert not twice, f"archived more than once: {twice[:10]}"
    missing = sorted(set(expected) - set(found))
    assert not missing, f"{len(missing)} valid records not archived: {missing[:10]}"
    assert ps.leftovers(stack, names.hdfs_root) == []
    return files


def _edge_events() -> list[dict[str, Any]]:
    """Valid events whose times are not in the generator's form, with extra fields."""
    base = EventGenerator(4, start_time=datetime.now(UTC), users=20).take(6)
    times = [
        "2026-01-02T19:00:00+09:00",
        "2026-01-02T10:00:00.123456789Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "2026-06-30T23:59:59.5-18:00",
        "2026-01-02T10:00:00Z",
    ]
    extras: list[dict[str, Any]] = [
        {"campaign": {"id": 2**63 - 1, "tags": ["a", None, -0.5, 1e300]}},
        {"ab.test": "B é 中 🙂\u0000", "n": None},
        {"deep": [[[{"x": [True, False]}]]]},
        {},
        {"utm_source": "", "score": 0.1},
        {"extra": "a field named like the column that holds extras"},
    ]
    return [{**e, "event_time": t, **x} for e, t, x in zip(base, times, extras, strict=True)]


def _send(stack: Settings, topic: str, events: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "acks": "all"})
    failed: list[str] = []
    for e in events:
        assert validate_event(e) == [], e
        producer.produce(
            topic, encode_event(e), on_delivery=lambda err, _m: err and failed.append(str(err))
        )
    assert producer.flush(60) == 0 and not failed, failed


def _read_parquet_directly(stack: Settings, path: str) -> pa.Table:
    with ps.hdfs_client(stack).read(path) as reader:
        table = pq.read_table(pa.BufferReader(reader.read()))
    assert table.schema.remove_metadata() == hdfs_parquet.SCHEMA.remove_metadata(), path
    return table


def _drain(stack: Settings, names: Names, workers: list[ps.WorkerProcess]) -> None:
    ps.wait_drained(
        stack,
        names,
        workers,
        groups=[names.hdfs_group],
        timeout=300,
        what="the archiver to commit every offset",
    )
    assert all(w.running for w in workers), ps.logs(workers)


def test_parquet_archive_holds_every_event_once_through_kill_9(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    env = ps.worker_env(stack, names, hdfs_roll_records=300, hdfs_roll_s=1)
    producer = ps.BackgroundProducer(
        stack, names, 3_000, rate=200.0, bad_fraction=0.02, start_time=ps.hour_boundary_start()
    )
    with ps.running_workers(env, tmp_path, kinds=["hdfs"], args=PARQUET) as (worker,):
        producer.start()
        # half-way: once rolls have been committed, while events still arrive
        markers = posixpath.join(names.hdfs_root, COMMITTED_DIR)
        ps.wait_until(
            lambda: (
                ps.hdfs_client(stack).status(markers, strict=False)
                and ps.hdfs_client(stack).list(markers)
            ),
            timeout=120,
            what="the first committed rolls",
            describe=worker.tail,
            interval=0.5,
        )
        assert producer.is_alive(), "production ended before the kill: raise its length"
        worker.kill9()
        worker.start()
        summary = producer.join()
        _drain(stack, names, [worker])
        ps.assert_archived(stack, names, summary)  # offsets once, DLQ accounting
        files = _assert_archive_is_the_topic(stack, names)
        assert {f.name.format for f in files} == {"parquet"}
        assert {f.folder for f in files} == {
            bucket(e["event_time"]) for f in files for e in f.events
        }
        assert len({f.folder for f in files}) >= 2, "the events should span two hours"
        rows = sum(_read_parquet_directly(stack, f.path).num_rows for f in files)
        assert rows == sum(len(f.events) for f in files)
        assert worker.starts == 2


def test_hostile_and_extra_field_events_survive_the_parquet_round_trip(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    env = ps.worker_env(stack, names)
    with ps.running_workers(env, tmp_path, kinds=["hdfs"], args=PARQUET) as (worker,):
        ps.produce(stack, names, 300, seed=3)
        records = hostile.corpus(seed=2, max_event_bytes=stack.max_event_bytes)
        placed = hostile.send(stack.bootstrap_servers, names.topic, records)
        valid = [p for p in placed if p.record.expected == hostile.VALID]
        assert len(valid) > 20, "the corpus should hold many valid hostile events"
        _send(stack, names.topic, _edge_events())
        _drain(stack, names, [worker])
        files = _assert_archive_is_the_topic(stack, names)
        archived = {(f.name.partition, o) for f in files for o in f.offsets or []}
        assert {(p.partition, p.offset) for p in valid} <= archived
        # straight from pyarrow: the timestamp is the contract's UTC instant, and the
        # original text is kept exactly where the timestamp cannot give it back
        texts = 0
        for f in files:
            table = _read_parquet_directly(stack, f.path)
            times = table.column("event_time").to_pylist()
            kept = table.column("event_time_text").to_pylist()
            for event, at, text in zip(f.events, times, kept, strict=True):
                assert at == event_time_utc(event["event_time"])
                assert text in (None, event["event_time"])
                texts += text is not None
            extras = [x for x in table.column("extra").to_pylist() if x is not None]
            assert all(x.startswith("{") for x in extras)
        assert texts >= 5, "the edge events' times are in other forms"
        assert any(set(e) - set(hdfs_parquet.SCHEMA.names) for f in files for e in f.events), (
            "some hostile event should carry an extra field"
        )


def _dead_owner_roll(
    stack: Settings,
    names: Names,
    events: dict[tuple[int, int], dict[str, Any]],
    partition: int,
    end: int,
    fmt: str,
    *,
    commit: bool,
    publish_first: bool = False,
) -> None:
    """Leave what a kill -9 can leave of roll 0..end of ``partition``, written in ``fmt``."""
    client = ps.hdfs_client(stack)
    roll = PendingRoll(names.topic, partition)
    for offset in range(end + 1):
        event = events.get((partition, offset))
        if event is None:
            roll.add(offset, 0.0, None, None)
        else:
            roll.add(offset, 0.0, bucket(event["event_time"]), encode_event(event))
    owner = posixpath.join(names.hdfs_root, partition_dir(names.topic, partition), "dead-owner")
    files = roll.archive_files(fmt)
    for folder, final, pending in files:
        data = hdfs_formats.encode(fmt, names.topic, partition, pending)
        if not commit:
            data = data[: len(data) // 2]  # killed mid-write
        client.write(posixpath.join(owner, data_name(0, end, folder, final.name)), data=data)
    client.write(posixpath.join(owner, commit_name(0, end)), data=b"")
    if commit:
        marker = Marker(names.topic, partition, end).name
        client.write(posixpath.join(names.hdfs_root, COMMITTED_DIR, marker), b"")
    if publish_first:
        folder, final, _ = files[0]
        client.makedirs(posixpath.join(names.hdfs_root, folder))
        client.rename(
            posixpath.join(owner, data_name(0, end, folder, final.name)),
            posixpath.join(names.hdfs_root, folder, final.name),
        )


def test_leftovers_of_either_format_are_recovered_and_formats_can_be_switched(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    """Dead owners' rolls in JSON Lines and Parquet, then a Parquet archiver, then a JSON
    Lines one: each offset once, and hour folders holding both formats read as one."""
    ps.produce(stack, names, 1_200, start_time=ps.hour_boundary_start(), bad_fraction=0.02)
    events = _valid_records(stack, names.topic)
    # partition 0: a committed JSON Lines roll, nothing renamed into place
    _dead_owner_roll(stack, names, events, 0, 99, "jsonl", commit=True)
    # partition 1: a committed Parquet roll, its first file renamed into place
    _dead_owner_roll(stack, names, events, 1, 99, "parquet", commit=True, publish_first=True)
    # partition 2: a Parquet roll cut short by kill -9, never committed
    _dead_owner_roll(stack, names, events, 2, 149, "parquet", commit=False)

    env = ps.worker_env(stack, names)
    parquet = ps.WorkerProcess("hdfs", env, tmp_path, "hdfs-parquet", PARQUET)
    with ps.running([parquet]) as workers:
        _drain(stack, names, workers)
    log = parquet.log_path.read_text()
    assert "partition 0: fenced 1 earlier owner folder(s); finished 1 committed rolls" in log
    assert "partition 1: fenced 1 earlier owner folder(s); finished 1 committed rolls" in log
    assert "finished 0 committed rolls, deleted 1 partial ones" in log
    assert "partition 2: resuming after offset None" in log

    ps.produce(stack, names, 600, seed=9, start_time=ps.hour_boundary_start())
    with ps.running([ps.WorkerProcess("hdfs", env, tmp_path, "hdfs-jsonl", JSONL)]) as workers:
        _drain(stack, names, workers)

    files = _assert_archive_is_the_topic(stack, names)
    formats_by_folder: dict[str, set[str]] = {}
    for f in files:
        formats_by_folder.setdefault(f.folder, set()).add(f.name.format)
    assert {"jsonl", "parquet"} in formats_by_folder.values(), formats_by_folder
    # the archiver's offset accounting holds across the switch: archived + dead-lettered
    dlq = {ps.source_of(r) for r in ps.dead_letters(stack, names, names.hdfs_group)}
    ends = ps.end_offsets(stack, names.topic, stack.partitions)
    archived = set(_valid_records(stack, names.topic))
    assert not dlq & archived
    assert archived | dlq == {(p, o) for p, end in ends.items() for o in range(end)}


def test_the_dlq_redrive_archives_in_the_chosen_format(stack: Settings, names: Names) -> None:
    """`clickfan dlq redrive` of the archiver's dead letters writes Parquet when asked."""
    ps.produce(stack, names, 120, seed=5)
    events = _valid_records(stack, names.topic)
    values = [encode_event(e) for _, e in sorted(events.items())]
    ps.put_dead_letters(
        stack,
        names,
        values,
        group=names.hdfs_group,
        reason=b"invalid_values",
        message=b"a rule since relaxed",
    )
    env = ps.worker_env(stack, names, hdfs_format="parquet")
    done = clickfan("dlq", "redrive", "--group", names.hdfs_group, env=env, timeout=400)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"

    files = list(hdfs_read.read_archive(ps.hdfs_client(stack), names.hdfs_root, strict=True))
    assert files and {f.name.topic for f in files} == {names.dlq_topic}
    assert {f.name.format for f in files} == {"parquet"}
    redriven = sorted(
        (e for f in files for e in f.events), key=lambda e: (e["event_id"], e["event_time"])
    )
    assert redriven == sorted(events.values(), key=lambda e: (e["event_id"], e["event_time"]))
    # each row says which DLQ record it came from
    for f in files:
        for event, offset in zip(f.events, f.offsets or [], strict=True):
            assert values.index(encode_event(event)) % stack.partitions == f.name.partition
            assert offset == values.index(encode_event(event)) // stack.partitions
