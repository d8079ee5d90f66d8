"""The monitor's configuration: clusters and evaluation settings.

Defaults come from ``clickfan.settings`` (and so from CLICKFAN_* variables); a
TOML file, in the spirit of Burrow's, overrides them and lists the clusters;
command-line flags override both. Without a file there is one cluster,
``local``, the stack that ``clickfan up`` starts. Example::

    [general]
    interval = 5.0            # seconds between reads of offsets

    [storage]
    intervals = 10            # commits kept per partition (the window)
    min-distance = 0.0        # seconds; closer commits replace the previous one

    [evaluator]
    allowed-lag = 0
    minimum-complete = 0.0

    [httpserver]
    host = "127.0.0.1"
    port = 8000

    [notifier]
    url = "http://127.0.0.1:9000/hook"

    [cluster.local]
    servers = ["127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"]

    [cluster.extra]
    servers = ["127.0.0.1:9095"]
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickfan.errors import ClickfanError
from clickfan.lagmon.protocol import valid_kafka_name
from clickfan.settings import Settings

LOCAL = "local"
EXTRA = "extra"


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    servers: tuple[str, ...]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.servers)


@dataclass(frozen=True)
class MonitorConfig:
    clusters: tuple[ClusterConfig, ...]
    host: str
    port: int
    interval_s: float
    window: int
    min_distance_s: float
    allowed_lag: int
    minimum_complete: float
    webhook_url: str

    def cluster(self, name: str) -> ClusterConfig:
        for c in self.clusters:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.clusters)
        raise ClickfanError(f"no cluster named {name!r} is configured (known: {known})")

    def with_overrides(self, **overrides: object) -> MonitorConfig:
        """Apply CLI flags; ``None`` means "flag not given"."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return validate(dataclasses.replace(self, **given), "command line")


# (section, key) -> (field, type)
_KEYS: dict[tuple[str, str], tuple[str, type]] = {
    ("general", "interval"): ("interval_s", float),
    ("storage", "intervals"): ("window", int),
    ("storage", "min-distance"): ("min_distance_s", float),
    ("evaluator", "allowed-lag"): ("allowed_lag", int),
    ("evaluator", "minimum-complete"): ("minimum_complete", float),
    ("httpserver", "host"): ("host", str),
    ("httpserver", "port"): ("port", int),
    ("notifier", "url"): ("webhook_url", str),
}


def defaults(settings: Settings) -> MonitorConfig:
    return MonitorConfig(
        clusters=(ClusterConfig(LOCAL, tuple(settings.bootstrap_servers.split(","))),),
        host=settings.monitor_host,
        port=settings.monitor_port,
        interval_s=settings.lag_interval_s,
        window=settings.lag_window,
        min_distance_s=settings.lag_min_distance_s,
        allowed_lag=settings.lag_allowed_lag,
        minimum_complete=settings.lag_minimum_complete,
        webhook_url=settings.lag_webhook_url,
    )


def extra_cluster(settings: Settings) -> ClusterConfig:
    """The one-broker cluster of ``clickfan up --extra-cluster``."""
    return ClusterConfig(EXTRA, (f"{settings.host}:{settings.extra_kafka_port}",))


def load(settings: Settings, path: Path | None = None) -> MonitorConfig:
    """Defaults from settings, overridden by the TOML file if one is given."""
    config = defaults(settings)
    if path is None:
        return validate(config, "settings")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClickfanError(f"cannot read lag monitor config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ClickfanError(f"{path} is not valid TOML: {exc}", exit_code=2) from None
    return validate(_apply(config, document, path), str(path))


def _apply(config: MonitorConfig, document: dict[str, Any], path: Path) -> MonitorConfig:
    def bad(where: str, why: str) -> ClickfanError:
        return ClickfanError(f"{path}: {where}: {why}", exit_code=2)

    values: dict[str, Any] = {}
    clusters: list[ClusterConfig] = []
    for section, table in document.items():
        if not isinstance(table, dict):
            raise bad(section, "expected a table like [section]")
        if section == "cluster":
            for name, body in table.items():
                if not isinstance(body, dict) or set(body) != {"servers"}:
                    raise bad(f"cluster.{name}", "expected a table with one key, servers")
                servers = body["servers"]
                if (
                    not isinstance(servers, list)
                    or not servers
                    or not all(isinstance(s, str) and s for s in servers)
                ):
                    raise bad(f"cluster.{name}.servers", 'expected a list like ["host:port"]')
                clusters.append(ClusterConfig(name, tuple(servers)))
            continue
        for key, value in table.items():
            if (section, key) not in _KEYS:
                raise bad(f"{section}.{key}", "unknown setting")
            name, kind = _KEYS[(section, key)]
            accepted = (int, float) if kind is float else (kind,)
            # bool is an int in Python, but never a valid setting here
            if isinstance(value, bool) or not isinstance(value, accepted):
                raise bad(f"{section}.{key}", f"expected {kind.__name__}, got {value!r}")
            values[name] = kind(value)
    if clusters:
        values["clusters"] = tuple(clusters)
    return dataclasses.replace(config, **values)


def validate(config: MonitorConfig, source: str) -> MonitorConfig:
    def bad(why: str) -> ClickfanError:
        return ClickfanError(f"{source}: {why}", exit_code=2)

    names = [c.name for c in config.clusters]
    for name in names:
        if not valid_kafka_name(name):
            raise bad(f"cluster name {name!r} may only use letters, digits, '.', '_' and '-'")
    if len(set(names)) != len(names):
        raise bad("a cluster is listed twice")
    if config.interval_s <= 0:
        raise bad(f"the interval must be positive, not {config.interval_s}")
    if config.window < 1:
        raise bad(f"the window (intervals) must be at least 1, not {config.window}")
    if config.allowed_lag < 0:
        raise bad(f"allowed-lag must be 0 or more, not {config.allowed_lag}")
    if not 0.0 <= config.minimum_complete <= 1.0:
        raise bad(f"minimum-complete is a share between 0 and 1, not {config.minimum_complete}")
    if config.min_distance_s < 0:
        raise bad(f"min-distance must be 0 or more, not {config.min_distance_s}")
    if not 0 <= config.port <= 65535:
        raise bad(f"port {config.port} is not a TCP port")
    return config
