"""RabbitMQ and Redis beside the stack, and the `brokers` experiment on the real systems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clickfan.compose.native.services import optional_services
from clickfan.settings import Settings
from tests.support import clickfan

pytestmark = pytest.mark.skipif(
    not all(s.installed() for s in optional_services(Settings())),
    reason="RabbitMQ or Redis missing: apt-get install rabbitmq-server redis-server",
)


def test_start_status_stop_on_a_home_of_their_own(tmp_path: Path) -> None:
    # ports of their own too, so a running `--with` stack is left alone
    env = {
        "CLICKFAN_HOME": str(tmp_path),
        "CLICKFAN_RABBITMQ_PORT": "5692",
        "CLICKFAN_REDIS_PORT": "6392",
    }
    try:
        for name in ("rabbitmq", "redis"):
            done = clickfan("start", name, env=env, timeout=240)
            assert done.returncode == 0, done.stderr
        status = json.loads(clickfan("status", "--json", env=env).stdout)
        by_name = {s["name"]: s for s in status["services"]}
        assert by_name["rabbitmq"]["state"] == "healthy"
        assert by_name["redis"]["state"] == "healthy"
        assert by_name["redis"]["data_dir"].startswith(str(tmp_path))
        again = clickfan("start", "redis", env=env)
        assert "already running" in again.stderr
    finally:
        for name in ("redis", "rabbitmq"):
            clickfan("stop", name, env=env, timeout=120)
    status = json.loads(clickfan("status", "--json", env=env).stdout)
    assert not {"rabbitmq", "redis"} & {s["name"] for s in status["services"]}


def test_an_unknown_name_is_one_line() -> None:
    done = clickfan("up", "--with", "mysql")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "choose from rabbitmq, redis" in done.stderr


def test_brokers_experiment_reports_ok(stack: Settings, tmp_path: Path) -> None:
    done = clickfan(
        "experiment", "brokers", "--events", "1000", "--out", str(tmp_path), "--json", timeout=600
    )
    report = json.loads(done.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert done.returncode == 0 and report["ok"], f"{failed}\n{done.stderr[-3000:]}"
    stores = {s["store"]: s for s in report["details"]["stores"]}
    assert stores["rabbitmq-queue"]["late"] == 0 and stores["kafka"]["late"] == 1000
    (folder,) = tmp_path.iterdir()
    assert {p.name for p in folder.glob("*.png")} == {"retention.png", "throughput.png"}
