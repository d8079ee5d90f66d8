"""The partition experiment, end to end (about three minutes: not in the default run).

Root only, and only when asked: CLICKFAN_TEST_PARTITION=1. It starts its own three
hosts beside the stack (a home of its own) and removes them afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from clickfan.compose.native.hosts import HostNet
from clickfan.settings import Settings
from tests.support import clickfan

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="--hosts needs root"),
    pytest.mark.skipif(
        os.environ.get("CLICKFAN_TEST_PARTITION") != "1",
        reason="about three minutes: run with CLICKFAN_TEST_PARTITION=1 (or `experiment all`)",
    ),
]


def test_partition_experiment_reports_ok(tmp_path: Path) -> None:
    env = {"CLICKFAN_HOME": str(tmp_path / "home")}
    done = clickfan(
        "experiment", "partition", "--out", str(tmp_path / "out"), "--json", env=env, timeout=900
    )
    report = json.loads(done.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert done.returncode == 0 and report["ok"], f"{failed}\n{done.stderr[-3000:]}"
    modes = {m["acks"]: m for m in report["details"]["modes"]}
    assert modes["all"]["lost"] == 0 and modes["1"]["lost_acknowledged_while_leader_cut"] > 0
    (folder,) = (tmp_path / "out").iterdir()
    assert {p.name for p in folder.glob("*.png")} == {"isr.png", "leaders.png", "acks.png"}
    # the run's own hosts (beside the home) are gone again
    net = HostNet.for_home(Settings(home=tmp_path / "home" / "partition-hosts"))
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert net.namespace(1) not in listed
