"""A worker whose supervising parent is killed outright stops by itself, cleanly.

The demo, the dashboard and the experiments start workers as children; killed with
kill -9 they cannot stop them. The worker notices that its parent is gone and stops
as on SIGTERM: it flushes and commits what its sink holds, and does not go on
consuming unseen (clickfan.supervision).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names, process_gone

# the parent: starts `clickfan worker hdfs` as the demo starts its children
PARENT = """
import sys, time
from pathlib import Path
from clickfan.app.demo import CLICKFAN, AppProcess
worker = AppProcess("hdfs", [CLICKFAN, "worker", "hdfs"], Path(sys.argv[1]))
worker.start()
print(worker.proc.pid, flush=True)
time.sleep(600)
"""


def test_worker_stops_and_commits_when_its_parent_is_killed(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    log = tmp_path / "hdfs.log"
    # a roll that would wait 10 minutes: only the clean stop publishes and commits it
    env = ps.worker_env(stack, names, hdfs_roll_s=600, hdfs_roll_records=100_000)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(log)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    try:
        ps.wait_until(
            lambda: log.exists() and "assigned partitions" in log.read_text(),
            timeout=120,
            what="the worker to get its partitions",
            describe=lambda: log.read_text() if log.exists() else "(no log)",
        )
        summary = ps.produce(stack, names, 300, seed=11)
        ps.wait_until(
            lambda: "300 records handled" in log.read_text(),
            timeout=120,
            what="the worker to hold all 300 records in its roll",
            describe=log.read_text,
        )
        assert ps.lag(stack, names.hdfs_group, names.topic) == 300, "committed before the test"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        ps.wait_until(
            lambda: process_gone(worker),
            timeout=90,
            what="the orphaned worker to stop",
            describe=log.read_text,
        )
    finally:
        if not process_gone(worker):
            os.kill(worker, signal.SIGKILL)
    text = log.read_text()
    assert "SIGTERM: flushing what the sink holds" in text, text
    assert ps.lag(stack, names.hdfs_group, names.topic) == 0, text
    ps.assert_archived(stack, names, summary)
