"""The optional brokers' services and the `--with` option, without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from clickfan.compose.native import stack
from clickfan.compose.native.services import optional_services
from clickfan.compose.native.services.messaging import RabbitMQ, Redis, env_port
from clickfan.errors import ClickfanError
from clickfan.experiments.registry import available
from clickfan.settings import Settings, SettingsError


def test_with_takes_known_names_once() -> None:
    assert stack.parse_with("redis, rabbitmq,redis") == ("redis", "rabbitmq")
    for bad in ("kafka", "", "redis,mysql"):
        with pytest.raises(ClickfanError, match="choose from rabbitmq, redis"):
            stack.parse_with(bad)


def test_a_missing_package_is_named_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(RabbitMQ, "installed", lambda self: False)
    monkeypatch.setattr(Redis, "installed", lambda self: True)
    settings = Settings(home=tmp_path)
    with pytest.raises(ClickfanError) as info:
        stack.check_installed(settings, ("rabbitmq", "redis"))
    assert "apt-get install rabbitmq-server" in str(info.value)
    assert "redis-server" not in str(info.value)
    stack.check_installed(settings, ("redis",))
    with pytest.raises(ClickfanError, match="not installed"):
        RabbitMQ(settings).prepare("java")
    assert not (tmp_path / "data").exists()


def test_services_bind_the_hosts_address_and_keep_data_under_the_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, host="127.0.0.1")
    rabbit, redis = optional_services(settings)
    env = rabbit.env()
    assert env["RABBITMQ_NODE_IP_ADDRESS"] == "127.0.0.1"
    assert env["RABBITMQ_MNESIA_BASE"].startswith(str(tmp_path))
    assert "{127,0,0,1}" in env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    argv = redis.launch_spec("java").argv
    assert argv[argv.index("--bind") + 1] == "127.0.0.1"
    assert argv[argv.index("--dir") + 1].startswith(str(tmp_path))
    # Redis rewrites its command line: the marker must survive in the new title
    assert redis.marker in argv[argv.index("--proc-title-template") + 1]
    assert rabbit.marker in rabbit.launch_spec("java").argv


def test_ports_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKFAN_REDIS_PORT", "7001")
    assert env_port("redis_port", 6390) == 7001
    monkeypatch.setenv("CLICKFAN_REDIS_PORT", "seventy")
    with pytest.raises(SettingsError, match="CLICKFAN_REDIS_PORT"):
        env_port("redis_port", 6390)


def test_the_experiment_is_registered_and_quick() -> None:
    brokers = available()["brokers"]
    assert brokers.quick and "rabbitmq" in brokers.needs
