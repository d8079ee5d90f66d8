"""A child started with child_env() stops as on SIGTERM once its parent is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from clickfan.supervision import PARENT_PID_VARIABLE, child_env
from tests.support import process_gone

# the child: reports SIGTERM in its log, as the workers' clean stop would
CHILD = """
import signal, sys, time
from clickfan.supervision import stop_with_parent
def stopped(*_):
    print("SIGTERM", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stopped)
stop_with_parent()
print("ready", flush=True)
time.sleep(120)
print("still running", flush=True)
"""

# the parent: starts the child the way the demo does, prints its pid, then waits
PARENT = """
import subprocess, sys, time
from clickfan.supervision import child_env
log = open(sys.argv[1], "ab")
child = subprocess.Popen([sys.executable, "-c", sys.argv[2]], stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True, env=child_env())
print(child.pid, flush=True)
time.sleep(120)
"""


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_child_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(log), CHILD], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert _wait(lambda: log.exists() and "ready" in log.read_text(), 30), "child not ready"
        assert not process_gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait(lambda: process_gone(child), 15), "the orphaned child went on running"
        assert log.read_text().split() == ["ready", "SIGTERM"]
    finally:
        if not process_gone(child):
            os.kill(child, signal.SIGKILL)


def test_child_env_names_this_process_and_keeps_the_rest() -> None:
    env = child_env({"A": "1"})
    assert env == {"A": "1", PARENT_PID_VARIABLE: str(os.getpid())}
    assert child_env()[PARENT_PID_VARIABLE] == str(os.getpid())
