"""The archiver resumes from what HDFS holds, whatever state kill -9 left it in.

The random kills of test_pipeline_kill9 rarely land inside the few
milliseconds of a roll's writes, so this test builds those states on HDFS by
hand, with the archiver's own layout: a committed roll half renamed into
place (partition 0) and a half-written, uncommitted temp file (partition 1).
A fresh archiver must finish the first, delete the second, and still archive
every offset exactly once.
"""

from __future__ import annotations

import posixpath
from datetime import timedelta
from pathlib import Path

from clickfan.events import decode_event, encode_event
from clickfan.settings import Settings
from clickfan.sinks.hdfs_layout import COMMITTED_DIR, TMP_DIR, Marker, Roll, bucket
from clickfan.sinks.hdfs_roll import PendingRoll
from tests.integration import pipeline_support as ps
from tests.support import Names

EVENTS = 1_200
COMMITTED_END = 99  # partition 0: offsets 0..99 committed, not all renamed


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

    # partition 0: a committed roll spanning two hours, one file already in place
    roll = PendingRoll(names.topic, 0)
    for offset in range(COMMITTED_END + 1):
        event = events[(0, offset)]
        roll.add(offset, 0.0, bucket(event["event_time"]), encode_event(event))
    files = roll.archive_files()
    assert len(files) == 2, "the roll should span two hour folders"
    tmp = posixpath.join(root, TMP_DIR, Roll(names.topic, 0, 0, COMMITTED_END).name)
    for folder, final, pending in files:
        client.write(posixpath.join(tmp, folder, final.name), data=pending.data())
    client.write(
        posixpath.join(root, COMMITTED_DIR, Marker(names.topic, 0, COMMITTED_END).name), b""
    )
    folder, final, _ = files[0]
    client.makedirs(posixpath.join(root, folder))
    client.rename(posixpath.join(tmp, folder, final.name), posixpath.join(root, folder, final.name))

    # partition 1: killed in the middle of writing a temp file, nothing committed
    half = encode_event(events[(1, 0)])[:50]
    partial = posixpath.join(
        root, TMP_DIR, Roll(names.topic, 1, 0, 150).name, bucket(events[(1, 0)]["event_time"])
    )
    client.write(posixpath.join(partial, f"{names.topic}+1+0+80.jsonl"), data=half)

    worker = ps.WorkerProcess("hdfs", ps.worker_env(stack, names), tmp_path, "hdfs-1")
    worker.start()
    try:
        ps.wait_until(
            lambda: ps.lag(stack, names.hdfs_group, names.topic) == 0,
            timeout=180,
            what="the archiver to commit every offset",
            describe=worker.tail,
        )
        ps.assert_archived(stack, names, summary)
        log = worker.log_path.read_text()
        assert "partition 0: finished 1 committed rolls" in log
        assert "partition 1: finished 0 committed rolls, deleted 1 partial ones" in log
        assert "partition 0: resuming after offset 99" in log
    finally:
        worker.stop()
