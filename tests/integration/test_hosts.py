"""`clickfan up --hosts` for real: namespaces, a bridge, three brokers as three hosts.

Root only. It runs on a home of its own (its own tag, addresses and data), with
--kafka-only, so it never meets the stack the rest of the suite uses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from clickfan.compose.native import hosts
from clickfan.settings import Settings
from tests.support import clickfan

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="--hosts needs root (network namespaces and a bridge)"
)


def _netns() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _links() -> str:
    return subprocess.run(["ip", "link", "show"], capture_output=True, text=True).stdout


def test_three_hosts_up_status_console_tools_crash_and_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"CLICKFAN_HOME": str(home), "CLICKFAN_CACHE_DIR": str(Settings().artifacts_dir)}
    net = hosts.HostNet.for_home(Settings(home=home))
    try:
        done = clickfan("up", "--hosts", "--kafka-only", env=env, timeout=400)
        assert done.returncode == 0, done.stderr[-3000:]
        status = json.loads(clickfan("status", "--json", env=env).stdout)
        details = {s["name"]: s["detail"] for s in status["services"]}
        for i in (1, 2, 3):
            assert net.address(i) in details[f"kafka-h{i}"]
        assert status["kafka_cluster"]["healthy"]

        # the seed notes' console producer and consumer, on two different hosts
        produced = clickfan(
            "kafka",
            "kafka-console-producer",
            "--bootstrap-server",
            f"{net.address(1)}:9092",
            "--topic",
            "click-logs",
            input="one\ntwo\nthree\n",
            env=env,
            timeout=120,
        )
        assert produced.returncode == 0, produced.stderr
        consumed = clickfan(
            "kafka",
            "kafka-console-consumer",
            "--bootstrap-server",
            f"{net.address(3)}:9092",
            "--topic",
            "click-logs",
            "--from-beginning",
            "--max-messages",
            "3",
            env=env,
            timeout=120,
        )
        assert sorted(consumed.stdout.split()) == ["one", "three", "two"]

        # one host's broker stopped and started again by name, as on the plain stack
        stopped = clickfan("stop", "kafka-h2", env=env, timeout=120)
        assert stopped.returncode == 0 and "stopped kafka-h2" in stopped.stderr, stopped.stderr
        status = json.loads(clickfan("status", "--json", env=env).stdout)
        states = {s["name"]: s["state"] for s in status["services"]}
        assert states["kafka-h2"] == "down" and states["kafka-h1"] == "healthy", states
        started = clickfan("start", "kafka-h2", env=env, timeout=300)
        assert started.returncode == 0, started.stderr[-3000:]
        status = json.loads(clickfan("status", "--json", env=env).stdout)
        assert {s["name"]: s["state"] for s in status["services"]}["kafka-h2"] == "healthy"

        # a run killed without `down`: its brokers die, the network stays behind ...
        for b in hosts.host_brokers(Settings(home=home)):
            os.kill(int(b.pid_file.read_text()), signal.SIGKILL)
        assert net.namespace(1) in _netns()
        # ... and the next `up` removes it before building a new one
        again = clickfan("up", "--hosts", "--kafka-only", env=env, timeout=400)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "removed what a killed --hosts run left" in again.stderr
    finally:
        down = clickfan("down", env=env, timeout=200)
    assert down.returncode == 0, down.stderr
    assert net.namespace(1) not in _netns() and net.bridge not in _links()
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert f"clickfan-hosts-{net.tag}" not in rules
