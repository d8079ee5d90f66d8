"""The archiver resumes from what HDFS holds, whatever state kill -9 left it in.

The random kills of test_pipeline_kill9 rarely land inside the few
milliseconds of a roll's writes, so this test builds those states on HDFS by
hand, with the archiver's own layout: a dead owner's committed roll half
renamed into place (partition 0), a dead owner's half-written, uncommitted
temp file (partition 1), and a committed roll in the layout before owner
folders, not renamed at all (partition 2). A fresh archiver must fence those
folders, finish the committed rolls, delete the partial one, and still
archive every offset exactly once.
"""

from __future__ import annotations

import posixpath
from datetime import timedelta
from pathlib import Path
from typing import Any

from hdfs import InsecureClient

from clickfan.events import decode_event, encode_event
from clickfan.settings import Settings
from clickfan.sinks.hdfs_fence import commit_name, data_name, partition_dir
from clickfan.sinks.hdfs_layout import COMMITTED_DIR, TMP_DIR, ArchiveFile, Marker, Roll, bucket
from clickfan.sinks.hdfs_roll import PendingRoll
from tests.integration import pipeline_support as ps
from tests.support import Names

EVENTS = 1_200
COMMITTED_END = 99  # partition 0: offsets 0..99 committed, not all renamed
LEGACY_END = 49  # partition 2: offsets 0..49 committed in the old layout, none renamed


def _roll(
    names: Names, events: dict[tuple[int, int], Any], partition: int, end: int
) -> PendingRoll:
    roll = PendingRoll(names.topic, partition)
    for offset in range(end + 1):
        event = events[(partition, offset)]
        roll.add(offset, 0.0, bucket(event["event_time"]), encode_event(event))
    return roll


def _commit(client: InsecureClient, names: Names, partition: int, end: int) -> None:
    marker = Marker(names.topic, partition, end).name
    client.write(posixpath.join(names.hdfs_root, COMMITTED_DIR, marker), b"")


def test_archiver_finishes_committed_rolls_and_drops_partial_ones(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    # events at ~1000/s of event time from 0.3 s before a full hour: the first
    # 100 offsets of a partition span two hour folders
    start = ps.hour_boundary_start() + timedelta(seconds=9.7)
    summary = ps.produce(stack, names, EVENTS, start_time=start)
    events = {
        (r.partition, r.offset): decode_event(r.value, stack.max_event_bytes)
        for r in ps.read_topic(stack, names.topic)
    }
    client = ps.hdfs_client(stack)
    root = names.hdfs_root

    # partition 0: a dead owner's committed roll spanning two hours, one file in place
    files = _roll(names, events, 0, COMMITTED_END).archive_files()
    assert len(files) == 2, "the roll should span two hour folders"
    dead = posixpath.join(root, partition_dir(names.topic, 0), "dead-owner")
    for folder, final, pending in files:
        name = data_name(0, COMMITTED_END, folder, final.name)
        client.write(posixpath.join(dead, name), data=pending.data())
    _commit(client, names, 0, COMMITTED_END)
    folder, final, _ = files[0]
    client.makedirs(posixpath.join(root, folder))
    client.rename(
        posixpath.join(dead, data_name(0, COMMITTED_END, folder, final.name)),
        posixpath.join(root, folder, final.name),
    )

    # partition 1: killed in the middle of writing a temp file, nothing committed
    first = events[(1, 0)]
    half = ArchiveFile(names.topic, 1, 0, 80).name
    dead = posixpath.join(root, partition_dir(names.topic, 1), "dead-owner")
    client.write(
        posixpath.join(dead, data_name(0, 150, bucket(first["event_time"]), half)),
        data=encode_event(first)[:50],
    )
    client.write(posixpath.join(dead, commit_name(0, 150)), data=b"")

    # partition 2: the layout before owner folders, committed, nothing renamed
    legacy = posixpath.join(root, TMP_DIR, Roll(names.topic, 2, 0, LEGACY_END).name)
    for folder, final, pending in _roll(names, events, 2, LEGACY_END).archive_files():
        client.write(posixpath.join(legacy, folder, final.name), data=pending.data())
    _commit(client, names, 2, LEGACY_END)

    with ps.running_workers(ps.worker_env(stack, names), tmp_path, kinds=["hdfs"]) as workers:
        ps.wait_drained(
            stack,
            names,
            workers,
            groups=[names.hdfs_group],
            timeout=180,
            what="the archiver to commit every offset",
        )
        ps.assert_archived(stack, names, summary)
        log = workers[0].log_path.read_text()
        assert (
            "partition 0: fenced 1 earlier owner folder(s); finished 1 committed rolls, "
            "deleted 0 partial ones" in log
        )
        assert "partition 1: fenced 1 earlier owner folder(s); finished 0 committed rolls" in log
        assert "partition 2: fenced 1 earlier owner folder(s); finished 1 committed rolls" in log
        assert "partition 0: resuming after offset 99" in log
        assert "partition 2: resuming after offset 49" in log
