"""An idle topic still reaches lag 0, and committed data never waits under _tmp for a record.

Re-delivery: the group's offsets are moved back to 0 after everything was
archived (as after a crash between a roll and its offset commit); every
re-read record is skipped, and the committed offset must still move up to
what HDFS holds, with no new record arriving. Recovery at once: a committed
roll left in a dead owner's folder (a publish given up at a revocation) is
published on assignment, not when the next record arrives.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from clickfan.compose.native import stack as native_stack
from clickfan.generators.producer import ProduceSummary
from clickfan.settings import Settings
from clickfan.sinks.hdfs_fence import data_name, partition_dir
from tests.integration import pipeline_support as ps
from tests.support import Names

EVENTS = 2_000


def _archive_all(
    stack: Settings, names: Names, tmp_path: Path
) -> tuple[ProduceSummary, ps.WorkerProcess]:
    summary = ps.produce(stack, names, EVENTS, start_time=ps.hour_boundary_start())
    worker = ps.WorkerProcess("hdfs", ps.worker_env(stack, names), tmp_path, "hdfs-1")
    _archiver_until(stack, names, worker, timeout=180, what="the archiver to archive everything")
    ps.assert_archived(stack, names, summary)
    return summary, worker


def _archiver_until(
    stack: Settings,
    names: Names,
    worker: ps.WorkerProcess,
    *,
    timeout: float,
    what: str,
    done: Callable[[], bool] | None = None,
) -> None:
    """Run the archiver (again) until ``done`` (default: its lag is 0), then stop it,
    which it must do cleanly."""
    with ps.running([worker]) as workers:
        if done is None:
            ps.wait_drained(
                stack, names, workers, groups=[names.hdfs_group], timeout=timeout, what=what
            )
        else:
            ps.wait_until(done, timeout=timeout, what=what, describe=worker.tail)
    assert workers.codes == [0], worker.tail()


def _rewind(stack: Settings, names: Names) -> None:
    """Commit offset 0 for every partition (the group is empty: its member left)."""
    admin = native_stack.admin_client(stack.bootstrap_servers)
    request = ConsumerGroupTopicPartitions(
        names.hdfs_group, [TopicPartition(names.topic, p, 0) for p in range(stack.partitions)]
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.alter_consumer_group_offsets([request])[names.hdfs_group].result(timeout=30)
            return
        except KafkaException:
            # the coordinator may still see the stopped member for a moment
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_a_batch_of_records_already_archived_still_moves_the_committed_offset(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    summary, worker = _archive_all(stack, names, tmp_path)
    _rewind(stack, names)
    assert ps.lag(stack, names.hdfs_group, names.topic) == EVENTS

    # nothing new is produced from here on
    _archiver_until(
        stack,
        names,
        worker,
        timeout=120,
        what="the re-read, already archived records to be committed",
    )
    ps.assert_archived(stack, names, summary)  # and nothing archived twice


def test_a_committed_roll_left_by_a_dead_owner_is_published_on_assignment(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    summary, worker = _archive_all(stack, names, tmp_path)
    # put one archived file of partition 0 back as a committed, unpublished roll
    client = ps.hdfs_client(stack)
    archived = next(f for f in ps.read_archive(stack, names.hdfs_root) if f.name.partition == 0)
    dead = posixpath.join(names.hdfs_root, partition_dir(names.topic, 0), "dead-owner")
    client.makedirs(dead)
    temp = data_name(archived.name.first, archived.name.last, archived.folder, archived.name.name)
    client.rename(archived.path, posixpath.join(dead, temp))
    assert ps.leftovers(stack, names.hdfs_root) == [posixpath.join(dead, temp)]

    # no record arrives: the group has committed every offset
    _archiver_until(
        stack,
        names,
        worker,
        timeout=120,
        what="the archiver to publish the roll on assignment",
        done=lambda: ps.leftovers(stack, names.hdfs_root) == [],
    )
    ps.assert_archived(stack, names, summary)
    # the dead owner's folder and the first run's own (empty) one
    assert "partition 0: fenced 2 earlier owner folder(s); finished 1 committed rolls" in (
        worker.log_path.read_text()
    )
