"""One writer per partition, even with a zombie: SIGSTOP an archiver holding data, then SIGCONT.

The zombie archiver reads the first events alone and holds them in memory (its
roll is long), then is stopped (SIGSTOP) past the session timeout. A second
archiver of the same group takes every partition over and archives those
events and more. When the zombie continues (SIGCONT), its roll is overdue and
its roll timer fires before it hears that it lost its partitions: without the
fence on HDFS it would publish files for offsets its successor published.
Afterwards every offset of the topic must be archived exactly once.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import time
from pathlib import Path

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names

FIRST = 3_000  # held by the zombie when it is stopped
SECOND = 1_000  # produced while it is stopped
THIRD = 500  # after it continued, so both members archive again
ZOMBIE_ROLL_S = 25  # longer than it takes to stop it, shorter than it stays stopped


def _handled(worker: ps.WorkerProcess) -> int:
    counts = re.findall(r"(\d+) records handled", worker.log_path.read_text(errors="replace"))
    return int(counts[-1]) if counts else 0


def _signal(worker: ps.WorkerProcess, sig: signal.Signals) -> None:
    assert worker.proc is not None
    os.killpg(worker.proc.pid, sig)


def _drained(
    stack: Settings, names: Names, workers: list[ps.WorkerProcess], timeout: float, what: str
) -> None:
    ps.wait_drained(stack, names, workers, groups=[names.hdfs_group], timeout=timeout, what=what)


def test_a_stalled_archiver_cannot_publish_what_its_successor_archived(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    zombie_env = ps.worker_env(
        stack,
        names,
        hdfs_roll_s=ZOMBIE_ROLL_S,
        hdfs_roll_records=1_000_000,
        worker_stats_interval_s=1,
    )
    zombie = ps.WorkerProcess("hdfs", zombie_env, tmp_path, "zombie")
    successor = ps.WorkerProcess("hdfs", ps.worker_env(stack, names), tmp_path, "successor")
    workers = [zombie, successor]
    stopped = False
    zombie.start()
    try:
        first = ps.produce(stack, names, FIRST, start_time=ps.hour_boundary_start())
        ps.wait_until(
            lambda: _handled(zombie) >= FIRST,
            timeout=120,
            what="the zombie to read the first events",
            describe=zombie.tail,
        )
        holding_since = time.monotonic()  # the zombie's roll opened before this
        # the precondition that makes this test able to fail: it holds them, unpublished
        assert ps.lag(stack, names.hdfs_group, names.topic) == FIRST, zombie.tail()
        _signal(zombie, signal.SIGSTOP)
        stopped = True

        successor.start()
        _drained(
            stack,
            names,
            workers,
            timeout=180,
            what="the successor to take every partition over and archive the first events",
        )
        second = ps.produce(stack, names, SECOND, seed=8)
        _drained(
            stack, names, workers, timeout=120, what="the successor to archive the second events"
        )
        # the zombie's roll is overdue the moment it continues
        time.sleep(max(0.0, holding_since + ZOMBIE_ROLL_S + 2 - time.monotonic()))
        woke_at = len(zombie.log_path.read_text(errors="replace"))
        _signal(zombie, signal.SIGCONT)
        stopped = False
        ps.wait_until(
            lambda: "assigned partitions" in zombie.log_path.read_text(errors="replace")[woke_at:],
            timeout=120,
            what="the zombie to rejoin the group",
            describe=lambda: ps.logs(workers),
        )
        third = ps.produce(stack, names, THIRD, seed=9)
        _drained(stack, names, workers, timeout=180, what="both archivers to archive everything")
        print(zombie.log_path.read_text(errors="replace")[woke_at:])
    finally:
        if stopped:
            _signal(zombie, signal.SIGCONT)
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], f"archivers did not stop cleanly\n{ps.logs(workers)}"
    assert first.deliveries and second.deliveries and third.deliveries
    everything = dataclasses.replace(
        first, deliveries=first.deliveries + second.deliveries + third.deliveries
    )
    ps.assert_archived(stack, names, everything)
