"""Hostile records in the middle of valid traffic: nothing lost, nothing stuck, nothing twice.

Both workers run; 1 500 generated events are produced, then the whole hostile
corpus (clickfan.generators.hostile: any bytes as key, value and headers,
each with its outcome decided by construction) from a raw producer, then
1 500 more events. When both groups have committed every offset:

- every valid event (generated, or hostile but valid) is in Elasticsearch
  once (by id) and in HDFS once (by offset), and nowhere in the DLQ;
- every invalid hostile record is in the DLQ exactly once per group, with a
  reason and its source topic/partition/offset, and in no sink;
- both worker processes are still alive.

Every problem found is listed by the corpus case's name, not just the first.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, TopicPartition

from clickfan.generators import hostile
from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names

EVENTS_BEFORE = 1_500
EVENTS_AFTER = 1_500
DRAIN_TIMEOUT_S = 300


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    headers: dict[str, bytes] | None  # None: a header name no Python client can decode
    value: bytes | None


def _dead_letters(settings: Settings, topic: str) -> list[DeadLetter]:
    """Every DLQ record; unlike ps.read_topic it survives header names that are not UTF-8."""
    ends = ps.end_offsets(settings, topic, settings.partitions)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "clickfan-tests-hostile-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",  # dead letters are written in transactions
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
    position = {p: 0 for p in ends}
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + 120
    try:
        while any(position[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"could not read {topic} to {ends}: at {position}"
            for m in consumer.consume(500, timeout=1.0):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        # at the end: what lies between the last letter and it are markers
                        position[m.partition()] = max(position[m.partition()], m.offset())
                    continue
                try:
                    headers: dict[str, bytes] | None = dict(m.headers() or [])
                except UnicodeDecodeError:
                    headers = None
                letters.append(DeadLetter(m.partition(), m.offset(), headers, m.value()))
                position[m.partition()] = m.offset() + 1
    finally:
        consumer.close()
    return letters


def _event_id(value: bytes | None) -> str | None:
    try:
        obj = json.loads(value or b"")
    except (ValueError, RecursionError):
        return None
    return obj.get("event_id") if isinstance(obj, dict) else None


def _lag_report(stack: Settings, names: Names, workers: list[ps.WorkerProcess]) -> str:
    lags = {g: ps.lag(stack, g, names.topic) for g in (names.es_group, names.hdfs_group)}
    state = {
        w.log_path.stem: "running"
        if w.running
        else f"exited {w.proc.returncode if w.proc else '-'}"
        for w in workers
    }
    return f"lag per group {lags}; worker processes {state}\n{ps.logs(workers)}"


def test_hostile_records_reach_a_sink_or_the_dlq_once_and_stop_nothing(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    with ps.running_workers(ps.worker_env(stack, names), tmp_path) as workers:
        before = ps.produce(stack, names, EVENTS_BEFORE, seed=7)
        records = hostile.corpus(seed=1, max_event_bytes=stack.max_event_bytes)
        placed = hostile.send(stack.bootstrap_servers, names.topic, records)
        assert len(placed) == len(records)
        after = ps.produce(stack, names, EVENTS_AFTER, seed=8)
        ps.wait_drained(
            stack,
            names,
            workers,
            timeout=DRAIN_TIMEOUT_S,
            what="both groups to commit every offset (lag 0)",
            fail_fast=True,
            describe=lambda: _lag_report(stack, names, workers),
            interval=2.0,
        )
        problems = _account(stack, names, [before, after], placed)
        assert all(w.running for w in workers), _lag_report(stack, names, workers)
    assert not problems, "\n".join(problems)


def _account(
    stack: Settings,
    names: Names,
    summaries: list[ps.ProduceSummary],
    placed: list[hostile.Placed],
) -> list[str]:
    """Every problem with where the records ended, by case name where there is one."""
    label: dict[tuple[int, int], str] = {}
    where: dict[str, tuple[int, int]] = {}  # valid event id -> (partition, offset)
    for summary in summaries:
        for event_id, partition, offset in ps.iter_valid(summary):
            where[event_id] = (partition, offset)
            label[(partition, offset)] = f"generated event {event_id}"
    invalid: dict[tuple[int, int], str] = {}
    for p in placed:
        coord = (p.partition, p.offset)
        label[coord] = p.record.name
        if p.record.expected == hostile.VALID:
            assert p.record.event_id is not None
            where[p.record.event_id] = coord
        else:
            invalid[coord] = p.record.name
    valid_coords = set(where.values())
    # the event ids inside invalid records, to name them when a sink holds one
    stray_names = {
        eid: p.record.name
        for p in placed
        if p.record.expected == hostile.INVALID
        for eid in [_event_id(p.record.value)]
        if eid is not None
    }
    problems: list[str] = []

    def names_of(coords: object) -> list[str]:
        return sorted(label.get(c, f"offset {c}") for c in coords)  # type: ignore[attr-defined]

    # Elasticsearch: each valid id once, nothing else
    ids = ps.es_ids(stack, names)
    missing = set(where) - set(ids)
    if missing:
        problems.append(
            f"ES: {len(missing)} valid missing: {names_of(where[i] for i in missing)[:20]}"
        )
    extra = set(ids) - set(where)
    if extra:
        problems.append(
            f"ES: {len(extra)} documents of invalid records: "
            f"{sorted(stray_names.get(i, i) for i in extra)[:10]}"
        )
    twice = [i for i, n in ids.items() if n > 1]
    if twice:
        problems.append(f"ES: in more than one index: {names_of(where[i] for i in twice)}")

    # HDFS: each valid offset once, nothing else, no leftovers
    archived: Counter[tuple[int, int]] = Counter()
    strangers: list[str] = []
    for f in ps.read_archive(stack, names.hdfs_root):
        for event in f.events:
            coord = where.get(event.get("event_id"))
            if coord is None or coord[0] != f.name.partition:
                eid = event.get("event_id")
                strangers.append(stray_names.get(eid, f"{f.path}: {str(event)[:80]}"))
                continue
            archived[coord] += 1
    if strangers:
        problems.append(
            f"HDFS: {len(strangers)} lines of invalid records: {sorted(strangers)[:10]}"
        )
    if valid_coords - set(archived):
        problems.append(f"HDFS: valid missing: {names_of(valid_coords - set(archived))[:20]}")
    again = [c for c, n in archived.items() if n > 1]
    if again:
        problems.append(f"HDFS: archived more than once: {names_of(again)[:20]}")
    tmp = ps.leftovers(stack, names.hdfs_root)
    if tmp:
        problems.append(f"HDFS: left in _tmp: {tmp[:5]}")

    # DLQ: per group, each invalid record exactly once with reason and source; no valid one
    letters = _dead_letters(stack, names.dlq_topic)
    unreadable = [d for d in letters if d.headers is None]
    if unreadable:
        problems.append(
            f"DLQ: {len(unreadable)} dead letters whose header names no Python client can "
            f"decode (so no group or source can be read): {[d.value for d in unreadable][:5]}"
        )
    by_group: dict[bytes, list[DeadLetter]] = defaultdict(list)
    for d in letters:
        if d.headers is not None:
            by_group[d.headers.get("clickfan.dlq.group", b"")].append(d)
    for group in (names.es_group, names.hdfs_group):
        counted: Counter[tuple[int, int]] = Counter()
        for d in by_group.get(group.encode(), []):
            h = d.headers or {}
            try:
                coord = (int(h["clickfan.source.partition"]), int(h["clickfan.source.offset"]))
            except (KeyError, ValueError):
                problems.append(f"DLQ {group}: a dead letter without its source: {h}")
                continue
            counted[coord] += 1
            if not h.get("clickfan.error.reason"):
                problems.append(f"DLQ {group}: {label.get(coord, coord)} has no reason")
            if h.get("clickfan.source.topic") != names.topic.encode():
                problems.append(f"DLQ {group}: {label.get(coord, coord)} names another topic")
        lost = set(invalid) - set(counted)
        if lost:
            problems.append(f"DLQ {group}: invalid records missing: {names_of(lost)}")
        twice_dlq = [c for c, n in counted.items() if n > 1]
        if twice_dlq:
            problems.append(f"DLQ {group}: dead-lettered more than once: {names_of(twice_dlq)}")
        wrongly = set(counted) & valid_coords
        if wrongly:
            problems.append(f"DLQ {group}: valid records dead-lettered: {names_of(wrongly)}")
        unknown = set(counted) - set(invalid) - valid_coords
        if unknown:
            problems.append(f"DLQ {group}: dead letters of offsets never produced: {unknown}")
    return problems
