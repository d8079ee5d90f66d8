"""`clickfan demo` brings the pipeline up, shows it moving, and stops its processes cleanly."""

from __future__ import annotations

import re

import psutil
import requests

from tests.support import clickfan, names_env


def test_demo_runs_the_pipeline_and_leaves_no_app_process_behind(stack, names) -> None:
    env = {**names_env(names), "CLICKFAN_HDFS_ROLL_S": "2", "COLUMNS": "120"}
    result = clickfan("demo", "--duration", "30", "--rate", "100", env=env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "clickfan demo" in result.stdout
    assert f"group {names.es_group}" in result.stdout
    assert "Stopped the app processes" in result.stdout

    count = requests.get(f"{stack.es_url}/{names.index_prefix}-*/_count", timeout=30).json()
    assert count["count"] > 0
    summary = requests.get(
        f"{stack.webhdfs_url}/webhdfs/v1{names.hdfs_root}",
        params={"op": "GETCONTENTSUMMARY", "user.name": stack.hdfs_user},
        timeout=30,
    ).json()["ContentSummary"]
    assert summary["fileCount"] > 0

    # the view shows each app process's pid; none may outlive the demo
    pids = {int(pid) for pid in re.findall(r"running \(pid (\d+)\)", result.stdout)}
    assert len(pids) == 3
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
