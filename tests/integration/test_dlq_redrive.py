"""`clickfan dlq`: dead letters listed by group and reason, re-driven after a fix (through a
kill -9 half-way), failing again with attempt 2, and purged for one group only.

Elasticsearch refuses every valid event of the test's day (its index is made beforehand
with ``city`` mapped as a number), so the indexer dead-letters them all as es_rejected;
the malformed records are dead-lettered by both groups. The fix: delete that index, so
the indexer's template makes it anew. The archiver only dead-letters malformed records,
so valid records for its re-drive are written to the DLQ as its dead letters (as a
stricter validation rule, fixed since, would have left them).
"""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import CLICKFAN, Names, clickfan, committed, end_offsets, free_port

EVENTS = 300
BAD_FRACTION = 0.05
DAY = datetime(2001, 1, 1, 8, 0, tzinfo=UTC)


def _summary(env: dict[str, str]) -> dict:
    done = clickfan("dlq", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _count(summary: dict, group: str) -> int:
    return sum(t["count"] for t in summary.get(group, {}).values())


def _redrive_killed_half_way(
    stack: Settings,
    names: Names,
    env: dict[str, str],
    group: str,
    log: Path,
    past: dict[int, int] | None = None,
) -> tuple[bool, str]:
    """Start a re-drive, kill -9 it once it committed some of the DLQ past ``past``
    (partition -> offset), run it again to its end: (whether the kill landed before the
    end, the second run's output)."""
    ends = end_offsets(stack, names.dlq_topic, stack.partitions)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [CLICKFAN, "dlq", "redrive", "--group", group],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ps.wait_until(
            lambda: (
                any(
                    o > (past or {}).get(p, 0)
                    for p, o in committed(
                        stack, f"{group}.redrive", names.dlq_topic, stack.partitions
                    ).items()
                )
                or proc.poll() is not None
            ),
            timeout=240,
            what=f"the re-drive of {group} to commit something",
            describe=log.read_text,
            interval=0.05,
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    done_before = committed(stack, f"{group}.redrive", names.dlq_topic, stack.partitions)
    # the round's last record of each partition (past it lie only transaction markers)
    last = {}
    for r in ps.read_topic(stack, names.dlq_topic):
        if r.offset < ends[r.partition]:
            last[r.partition] = max(last.get(r.partition, 0), r.offset + 1)
    half_way = any(done_before.get(p, 0) < end for p, end in last.items())
    again = clickfan("dlq", "redrive", "--group", group, env=env, timeout=400)
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr[-3000:]}"
    return half_way, again.stdout


def _inject_hdfs_dead_letters(stack: Settings, names: Names, events: list[bytes]) -> None:
    ps.put_dead_letters(
        stack,
        names,
        events,
        group=names.hdfs_group,
        reason=b"invalid_values",
        message=b"a rule since relaxed",
        first_offset=1_000_000,
    )
    # written by something else: never re-driven, and shown as such
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "acks": "all"})
    producer.produce(names.dlq_topic, b"\x1b[31mnot ours\x00", headers=[("x", b"y")])
    assert producer.flush(30) == 0


def _assert_failed_again_once(stack: Settings, names: Names, group: str) -> None:
    """Each malformed record the group dead-lettered is on the DLQ again once, attempt 2,
    with its original source headers."""
    letters = ps.dead_letters(stack, names, group)
    firsts = {
        ps.source_of(r)
        for r in letters
        if r.headers.get("clickfan.dlq.attempt") == b"1"
        and r.headers["clickfan.error.reason"] != b"es_rejected"
        and ps.source_of(r)[1] < 1_000_000  # not the injected ones (valid, archived)
    }
    again = [r for r in letters if r.headers.get("clickfan.dlq.attempt") == b"2"]
    assert {r.headers.get("clickfan.dlq.attempt") for r in letters} == {b"1", b"2"}
    assert firsts
    assert sorted(ps.source_of(r) for r in again) == sorted(firsts), f"{group}: once each"
    assert all(r.headers["clickfan.source.topic"] == names.topic.encode() for r in again)
    assert all(r.headers["clickfan.redrive.topic"] == names.dlq_topic.encode() for r in again)


def test_inspect_redrive_after_a_fix_and_purge(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    index = f"{names.index_prefix}-{DAY:%Y.%m.%d}"
    ps.create_refusing_index(stack, index)
    summary = ps.produce(stack, names, EVENTS, bad_fraction=BAD_FRACTION, start_time=DAY)
    valid = {eid for eid, _, _ in ps.iter_valid(summary)}
    bad = sum(1 for d in summary.deliveries or [] if d.bad_kind)
    assert bad > 0 and len(valid) + bad == EVENTS

    # small batches and rolls: many commits, so that the kill lands half-way
    env = ps.worker_env(stack, names, worker_batch_records=10, hdfs_roll_records=5)
    with ps.running_workers(env, tmp_path) as workers:
        ps.wait_drained(stack, names, workers, timeout=300)
    assert not ps.es_ids(stack, names), "Elasticsearch refused the day's events"

    # inspect: counts by group and reason
    listed = _summary(env)
    assert listed[names.es_group]["es_rejected"]["count"] == len(valid)
    assert _count(listed, names.es_group) == len(valid) + bad
    assert _count(listed, names.hdfs_group) == bad
    filtered = clickfan("dlq", "--group", names.es_group, "--reason", "es_rejected", env=env)
    assert filtered.returncode == 0 and str(len(valid)) in filtered.stdout
    for wrong in (["--group", "nobody"], ["--reason", "no_such_reason"], ["--since", "soon"]):
        refused = clickfan("dlq", *wrong, env=env)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr

    # the fix, then a re-drive killed half-way and run again: every document, once
    with ps.es_client(stack) as es:
        es.indices.delete(index=index)
    half_way, out = _redrive_killed_half_way(stack, names, env, names.es_group, tmp_path / "es.log")
    print(f"es re-drive: killed half-way: {half_way}; then: {out.strip()}")
    assert half_way
    assert set(ps.es_ids(stack, names)) == valid
    _assert_failed_again_once(stack, names, names.es_group)

    # the archiver's re-drive: valid dead letters archived once, malformed ones again
    # dead-lettered with attempt 2
    valid_at = {(p, o) for _, p, o in ps.iter_valid(summary)}
    injected = [
        r.value
        for r in ps.read_topic(stack, names.topic)
        if (r.partition, r.offset) in valid_at and r.value is not None
    ][:200]
    before_injected = end_offsets(stack, names.dlq_topic, stack.partitions)
    _inject_hdfs_dead_letters(stack, names, injected)
    show = clickfan("dlq", "show", "--limit", "100000", env=env)
    assert show.returncode == 0, show.stderr
    assert "MALFORMED HEADERS" in show.stdout and "\x1b" not in show.stdout
    assert "\\x1b[31mnot ours\\x00" in show.stdout
    dry = clickfan("dlq", "redrive", "--group", names.hdfs_group, "--dry-run", env=env)
    assert dry.returncode == 0 and f"would re-drive {bad + len(injected)}" in dry.stdout

    # killed once some of the injected ones are archived
    half_way, out = _redrive_killed_half_way(
        stack, names, env, names.hdfs_group, tmp_path / "hdfs.log", before_injected
    )
    print(f"hdfs re-drive: killed half-way: {half_way}; then: {out.strip()}")
    assert half_way
    files = ps.read_archive(stack, names.hdfs_root)
    redriven = [e["event_id"] for f in files if f.name.topic == names.dlq_topic for e in f.events]
    assert sorted(redriven) == sorted(json.loads(v)["event_id"] for v in injected)
    archived = [e["event_id"] for f in files if f.name.topic == names.topic for e in f.events]
    assert len(archived) == len(set(archived)) == len(valid)
    _assert_failed_again_once(stack, names, names.hdfs_group)

    # purge one group: the other keeps all of its dead letters
    before = _summary(env)
    purged = clickfan(
        "dlq", "purge", "--group", names.es_group, "--before", "now", "--yes", env=env
    )
    assert purged.returncode == 0, purged.stderr
    after = _summary(env)
    assert names.es_group not in after
    assert after[names.hdfs_group] == before[names.hdfs_group]
    nothing = clickfan("dlq", "redrive", "--group", names.es_group, env=env)
    assert nothing.returncode == 0 and "nothing to re-drive" in nothing.stdout


def _retrying_after_assignment(text: str) -> bool:
    """The re-drive has its partitions and says it retries the sink (holding them)."""
    assigned = text.find("assigned partitions")
    return assigned >= 0 and text.rfind("retrying with backoff") > assigned


def test_a_redrive_into_a_sink_that_is_down_holds_then_finishes(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    index = f"{names.index_prefix}-{DAY:%Y.%m.%d}"
    ps.create_refusing_index(stack, index)
    summary = ps.produce(stack, names, 60, start_time=DAY)
    valid = {eid for eid, _, _ in ps.iter_valid(summary)}
    env = ps.worker_env(stack, names)
    with ps.running_workers(env, tmp_path, kinds=["es"]) as workers:
        ps.wait_drained(
            stack,
            names,
            workers,
            groups=[names.es_group],
            timeout=300,
            what="the indexer to commit every offset",
        )
    assert _summary(env)[names.es_group]["es_rejected"]["count"] == len(valid)
    with ps.es_client(stack) as es:
        es.indices.delete(index=index)

    # Elasticsearch unreachable (nothing listens on its port): the re-drive holds
    log = tmp_path / "down.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [CLICKFAN, "dlq", "redrive", "--group", names.es_group],
            env={**env, "CLICKFAN_ES_PORT": str(free_port())},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ps.wait_until(
            lambda: _retrying_after_assignment(log.read_text()),
            timeout=240,
            what="the re-drive to say it retries indexing",
            describe=log.read_text,
        )
        assert proc.poll() is None, log.read_text()
        progress = committed(stack, f"{names.es_group}.redrive", names.dlq_topic, stack.partitions)
        assert not any(progress.values()), "nothing is committed while the sink is down"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert code == 1 and "run it again to finish the round" in log.read_text(), log.read_text()
    assert not ps.es_ids(stack, names)

    done = clickfan("dlq", "redrive", "--group", names.es_group, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"re-drove {len(valid)} dead letters" in done.stdout
    assert set(ps.es_ids(stack, names)) == valid
    assert (
        "nothing to re-drive"
        in clickfan("dlq", "redrive", "--group", names.es_group, env=env).stdout
    )


def test_a_redrive_takes_the_sink_flags_of_a_worker_started_with_its_own(
    stack: Settings, names: Names
) -> None:
    """Workers started with --index-prefix, --hdfs-root or --format: their dead letters go
    back to the same indices and folder, in the same format, given the same flags."""
    ps.produce(stack, names, 40, start_time=DAY)
    events = [r.value for r in ps.read_topic(stack, names.topic) if r.value is not None]
    for group, reason in ((names.es_group, b"es_rejected"), (names.hdfs_group, b"invalid_values")):
        ps.put_dead_letters(
            stack, names, events, group=group, reason=reason, message=b"since fixed"
        )
    env = ps.worker_env(stack, names)
    prefix, root = f"{names.index_prefix}-flagged", f"{names.hdfs_root}/flagged"

    es = clickfan("dlq", "redrive", "--group", names.es_group, "--index-prefix", prefix, env=env)
    assert es.returncode == 0 and f"re-drove {len(events)} dead letters" in es.stdout, es.stderr
    hdfs = clickfan(
        "dlq", "redrive", "--group", names.hdfs_group, "--hdfs-root", root, "--format",
        "parquet", env=env, timeout=400,
    )  # fmt: skip
    assert hdfs.returncode == 0 and f"re-drove {len(events)} dead letters" in hdfs.stdout

    ids = {json.loads(e)["event_id"] for e in events}
    with ps.es_client(stack) as client:
        client.indices.refresh(index=f"{prefix}-*")
        hits = client.search(index=f"{prefix}-*", size=len(events) + 1, _source=False)
        indices = set(client.indices.get(index=f"{names.index_prefix}-*"))
    assert {h["_id"] for h in hits["hits"]["hits"]} == ids
    # none under the prefix of the environment's CLICKFAN_INDEX_PREFIX alone
    assert indices and all(i.startswith(f"{prefix}-") for i in indices), indices
    files = ps.read_archive(stack, root)
    assert files and all(f.path.endswith(".parquet") for f in files)
    assert sorted(e["event_id"] for f in files for e in f.events) == sorted(ids)
