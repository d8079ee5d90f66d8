"""The monitor's TOML configuration and its defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from clickfan.errors import ClickfanError
from clickfan.lagmon import config as lagconfig
from clickfan.settings import Settings, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lagmon.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_is_the_local_stack_with_settings_values() -> None:
    settings = load({"CLICKFAN_LAG_WINDOW": "4", "CLICKFAN_MONITOR_PORT": "8100"})
    config = lagconfig.load(settings)
    assert [(c.name, c.bootstrap_servers) for c in config.clusters] == [
        ("local", "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094")
    ]
    assert (config.host, config.port, config.window) == ("127.0.0.1", 8100, 4)
    assert (config.interval_s, config.allowed_lag, config.minimum_complete) == (5.0, 0, 0.0)
    assert lagconfig.extra_cluster(settings).servers == ("127.0.0.1:9095",)


def test_file_lists_clusters_and_overrides_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [general]
        interval = 1
        [storage]
        intervals = 5
        min-distance = 0.5
        [evaluator]
        allowed-lag = 10
        minimum-complete = 0.5
        [httpserver]
        port = 8001
        [notifier]
        url = "http://127.0.0.1:9000/hook"
        [cluster.local]
        servers = ["127.0.0.1:9092"]
        [cluster.extra]
        servers = ["127.0.0.1:9095"]
        """,
    )
    config = lagconfig.load(Settings(), path)
    assert [c.name for c in config.clusters] == ["local", "extra"]
    assert config.cluster("extra").bootstrap_servers == "127.0.0.1:9095"
    assert (config.interval_s, config.window, config.min_distance_s) == (1.0, 5, 0.5)
    assert (config.allowed_lag, config.minimum_complete, config.port) == (10, 0.5, 8001)
    assert config.webhook_url == "http://127.0.0.1:9000/hook"
    assert config.with_overrides(port=9001, window=None).port == 9001


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[storage]\nintervalz = 3", "storage.intervalz: unknown setting"),
        ("[storage]\nintervals = 2.5", "storage.intervals: expected int"),
        ("[evaluator]\nallowed-lag = true", "evaluator.allowed-lag: expected int"),
        ("[cluster.local]\nservers = []", "cluster.local.servers"),
        ("[cluster.local]\nbrokers = ['a:1']", "cluster.local: expected a table"),
        ("[cluster.'bad name']\nservers = ['a:1']", "cluster name 'bad name'"),
        ("[storage]\nintervals = 0", "the window (intervals) must be at least 1"),
        ("[evaluator]\nminimum-complete = 2.0", "minimum-complete is a share"),
        ("storage = 3", "storage: expected a table"),
        ("[storage\n", "is not valid TOML"),
    ],
)
def test_bad_files_name_what_is_wrong(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ClickfanError) as caught:
        lagconfig.load(Settings(), write(tmp_path, text))
    assert names in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_file_and_unknown_cluster(tmp_path: Path) -> None:
    with pytest.raises(ClickfanError, match="cannot read lag monitor config"):
        lagconfig.load(Settings(), tmp_path / "absent.toml")
    with pytest.raises(ClickfanError, match="no cluster named 'x' is configured"):
        lagconfig.load(Settings()).cluster("x")
    with pytest.raises(ClickfanError, match="command line: the interval must be positive"):
        lagconfig.load(Settings()).with_overrides(interval_s=0.0)
