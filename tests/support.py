"""Small helpers the tests share: run the real `clickfan` command, wait for a condition."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CLICKFAN = str(Path(sys.executable).with_name("clickfan"))
T = TypeVar("T")


def clickfan(
    *args: str,
    env: dict[str, str] | None = None,
    replace_env: bool = False,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `clickfan` command as a user would, capturing its output."""
    full_env = dict(env or {}) if replace_env else {**os.environ, **(env or {})}
    return subprocess.run(
        [CLICKFAN, *args],
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 60, pause: float = 0.5
) -> T:
    """Poll probe() until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(pause)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
