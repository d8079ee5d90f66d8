"""Children that stop when their supervising parent is gone.

The demo, the dashboard and the experiments start workers, producers and monitors as
child processes and stop them on the way out. A parent killed outright (kill -9, an
OOM kill) cannot, and its children would go on unseen: a worker consuming, a
producer producing. So a parent starts each child with ``child_env()``, and every
`clickfan` command calls ``stop_with_parent()`` first: once that parent is gone the
child stops as on SIGTERM, each command's clean stop (a worker flushes and commits).
"""

from __future__ import annotations

import os
import signal
import threading
import time

PARENT_PID_VARIABLE = "CLICKFAN_PARENT_PID"
POLL_S = 1.0


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) for a child that stops with us."""
    return {**(os.environ if env is None else env), PARENT_PID_VARIABLE: str(os.getpid())}


def stop_with_parent() -> None:
    """When started by child_env(): SIGTERM ourselves once that parent is gone."""
    parent = os.environ.pop(PARENT_PID_VARIABLE, None)  # our own children get their own
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        # orphans are adopted by init (or a subreaper): the parent pid changes
        while os.getppid() == int(parent):
            time.sleep(POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()
