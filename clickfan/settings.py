"""Every default of clickfan, in one place, with the values each setting allows.

A field's default lives here and nowhere else, and so does its allowed range
(in the field's metadata, beside the default). Each can be overridden by an
environment variable named ``CLICKFAN_<FIELD>`` (upper case), checked when
settings are loaded: a value out of range stops the command with exit 2 and
one line naming the variable and what it allows. Commands override both with
their flags via :func:`dataclasses.replace` (flags are checked by the commands).

Left unchecked here, because the program that reads them says best what is
wrong: versions (Maven), heap sizes (the JVM), paths, URLs and the index
prefix (the Elasticsearch sink checks it at start); only the Elasticsearch and
WebHDFS node URLs are checked here, so that credentials put in one are refused
before anything could print them.
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from clickfan.errors import ClickfanError


class SettingsError(ClickfanError, ValueError):
    """A CLICKFAN_* variable that cannot be read as its field's type or is out of range."""

    exit_code = 2


@dataclass(frozen=True)
class Allowed:
    """The values a setting allows; kept in its field's metadata, next to the default."""

    low: float | None = None
    high: float | None = None
    above: bool = False  # low itself is not allowed
    choices: tuple[str, ...] = ()
    pattern: str = ""
    wants: str = ""  # what pattern means, for the message
    ports: bool = False  # a non-empty list of distinct ports

    def describe(self, value: object) -> str:
        if self.ports:
            return "a comma-separated list of distinct ports 1..65535, not empty"
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.pattern:
            return self.wants
        kind = "an integer" if isinstance(value, int) else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{kind} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{kind} {'above' if self.above else 'of at least'} {self.low:g}"
        return kind

    def allows(self, value: object) -> bool:
        if self.ports:
            return (
                isinstance(value, tuple)
                and len(value) > 0
                and len(set(value)) == len(value)
                and all(1 <= p <= 65535 for p in value)
            )
        if self.choices:
            return value in self.choices
        if self.pattern:
            return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None
        if not isinstance(value, int | float) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high


def _allowed(default: Any, allowed: Allowed) -> Any:
    return field(default=default, metadata={"allowed": allowed})


def _range(default: float, low: float, high: float | None = None, *, above: bool = False) -> Any:
    return _allowed(default, Allowed(low=low, high=high, above=above))


def _port(default: int) -> Any:
    return _range(default, 1, 65535)


def _ports(default: tuple[int, ...]) -> Any:
    return _allowed(default, Allowed(ports=True))


def _choice(default: str, *choices: str) -> Any:
    return _allowed(default, Allowed(choices=choices))


def _pattern(default: str, pattern: str, wants: str) -> Any:
    return _allowed(default, Allowed(pattern=pattern, wants=wants))


def _non_empty(default: str) -> Any:
    return _pattern(default, r"\S.*", "not empty")


def _topic(default: str) -> Any:
    # Kafka's own rule for topic names
    return _pattern(default, r"[A-Za-z0-9._-]{1,249}", "1 to 249 of a-z A-Z 0-9 . _ -")


class Secret:
    """A password, API key or token. Its value is shown by nothing (repr, str, logs,
    `clickfan status`, reports): only :meth:`reveal` gives it, to the client that sends it.

    Secrets come from a file (``CLICKFAN_<NAME>_FILE``) or the environment
    (``CLICKFAN_<NAME>``), never from a command line, which every user of the
    machine can read in the process list.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('****')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(self._value)


def _secret() -> Any:
    return field(default_factory=Secret)


def read_secret(value: Secret, file: str, variable: str) -> Secret:
    """``value`` if given, else the first line of ``file`` (if named); SettingsError if not."""
    if value or not file:
        return value
    try:
        text = Path(file).expanduser().read_text().strip()
    except OSError as exc:
        raise SettingsError(
            f"{_var(variable + '_file')}={file!r}: cannot read it ({exc.strerror})"
        ) from None
    if not text:
        raise SettingsError(f"{_var(variable + '_file')}={file!r}: the file is empty")
    return Secret(text)


def _default_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "clickfan"


@dataclass(frozen=True)
class Settings:
    # where artifacts, data and logs live
    home: Path = field(default_factory=_default_home)
    cache_dir: str = ""  # downloaded server programs; empty: <home>/artifacts
    host: str = _non_empty("127.0.0.1")

    # `clickfan up --secure`: SASL_SSL Kafka with ACLs, certificates from a local CA
    # (compose/native/pki.py) under <home>/secure; the other services follow it
    secure: bool = False
    # a Kafka client-properties file (the Java clients' format) for every clickfan client;
    # empty: plaintext to bootstrap_servers (or <home>/secure/clients/<user>.properties
    # when the local stack runs secure)
    kafka_config: str = ""

    # versions of the real services (resolved from Maven Central)
    kafka_version: str = "4.1.1"
    # 8.19 runs on the machine's Java 17, the same JVM as Kafka and Hadoop, and
    # pairs with the elasticsearch 8.x Python client.
    elasticsearch_version: str = "8.19.7"
    hadoop_version: str = "3.5.0"
    java_home: str = ""  # empty: JAVA_HOME, then the java on PATH

    # Kafka: three brokers in KRaft combined mode
    kafka_ports: tuple[int, ...] = _ports((9092, 9093, 9094))
    kafka_controller_ports: tuple[int, ...] = _ports((19092, 19093, 19094))
    kafka_heap: str = "256m"
    kafka_cluster_id: str = _pattern(
        "Y2xpY2tmYW4tbG9jYWwtMQ", r"[A-Za-z0-9_-]{22}", "22 base64url characters"
    )  # 16 bytes, base64url
    # the optional second, one-broker cluster (`clickfan up --extra-cluster`)
    extra_kafka_port: int = _port(9095)
    extra_kafka_controller_port: int = _port(19095)

    # Elasticsearch: one node
    es_port: int = _port(9200)
    es_transport_port: int = _port(9300)
    es_heap: str = "512m"
    es_user: str = _non_empty("clickfan")  # Elasticsearch refuses to run as root
    # Elasticsearch clusters we do not run (README "Your own clusters"): node URLs tried
    # in turn, an API key (base64 "id:key", as Elasticsearch returns it as `encoded`) or a
    # user and password, and the CA that signed the nodes' certificates
    es_urls: str = ""  # comma-separated; empty: http://host:es_port (https when secure)
    es_api_key: Secret = _secret()  # from CLICKFAN_ES_API_KEY ...
    es_api_key_file: str = ""  # ... or the first line of this file
    es_username: str = ""
    es_password: Secret = _secret()  # CLICKFAN_ES_PASSWORD, or ...
    es_password_file: str = ""
    es_ca_cert: str = ""  # PEM; empty: the system's CAs (the local CA when secure)

    # HDFS: one NameNode, one DataNode
    namenode_rpc_port: int = _port(8020)
    namenode_http_port: int = _port(9870)
    datanode_http_port: int = _port(9864)
    datanode_port: int = _port(9866)
    datanode_ipc_port: int = _port(9867)
    hadoop_heap: str = "256m"
    hdfs_user: str = _non_empty("clickfan")
    # NameNodes of an HA pair (or more) we do not run: tried in order, on to the next
    # when one is down or standby (the hdfs package's failover)
    webhdfs_urls: str = ""  # comma- or semicolon-separated; empty: http://host:namenode_http_port
    webhdfs_ca_cert: str = ""  # PEM, for https:// NameNodes

    # topics
    topic: str = _topic("click-logs")
    dlq_topic: str = _topic("click-logs.dlq")
    partitions: int = _range(6, 1)
    replication_factor: int = _range(3, 1)
    min_insync_replicas: int = _range(2, 1)

    # how long `up` waits for one service to become healthy
    start_timeout_s: float = _range(180.0, 0, above=True)
    stop_timeout_s: float = _range(30.0, 0, above=True)

    # producer (`clickfan produce`, generators/)
    produce_rate: float = _range(0.0, 0)  # events/s; 0 = as fast as the brokers take them
    produce_acks: str = _choice("all", "0", "1", "all", "-1")  # 0 | 1 | all
    produce_idempotence: bool = True  # needs acks=all; switched off with a note otherwise
    produce_compression: str = _choice(
        "lz4", "none", "gzip", "snappy", "lz4", "zstd"
    )  # none | gzip | snappy | lz4 | zstd
    produce_keys: str = _choice("user", "user", "none", "vip")  # user | none | vip
    produce_linger_ms: int = _range(5, 0, 900000)
    produce_batch_size: int = _range(262144, 1, 2147483647)  # bytes per partition batch
    produce_batch_num_messages: int = _range(10000, 1, 1000000)
    produce_queue_max_messages: int = _range(
        100000, 1, 2147483647
    )  # local queue; full -> poll, never drop
    # a record neither acknowledged nor failed by then is reported failed (_MSG_TIMED_OUT)
    produce_delivery_timeout_ms: int = _range(
        120000, 1, 2147483647
    )  # the Java client's delivery.timeout.ms
    produce_metadata_timeout_s: float = _range(
        10.0, 0, above=True
    )  # how long to wait for brokers before giving up
    produce_seed: int = _range(-1, -1)  # -1: a fresh random seed, printed in the summary
    produce_users: int = _range(10000, 1)  # size of the simulated user base
    vip_user_fraction: float = _range(0.1, 0, 1)  # share of users flagged VIP
    vip_partitions: int = _range(
        0, 0
    )  # partitions reserved for VIP users with --keys vip; 0: use vip_share
    vip_share: float = _range(0.8, 0, 1)  # the seed's example: 8 of 10 partitions
    bad_fraction: float = _range(0.0, 0, 1)  # share of malformed records mixed in
    max_event_bytes: int = _range(65536, 1)  # a larger record is not a valid click event
    oversized_event_bytes: int = _range(
        102400, 1
    )  # size of the "oversized" bad records (< 1 MB broker limit)

    # lag monitor (lagmon): Burrow-style evaluation, its HTTP API, `clickfan lag`
    monitor_host: str = _non_empty("127.0.0.1")
    monitor_port: int = _port(8000)
    lag_interval_s: float = _range(
        5.0, 0, above=True
    )  # between reads of log-end offsets and owners
    lag_window: int = _range(10, 1)  # commits kept per partition (Burrow's "intervals")
    lag_min_distance_s: float = _range(0.0, 0)  # a commit closer than this replaces the previous
    lag_allowed_lag: int = _range(0, 0)  # a lag at or below this counts as caught up
    lag_minimum_complete: float = _range(0.0, 0, 1)  # share of the window filled before evaluating
    lag_webhook_url: str = ""  # POST a notice on group status change; empty: log only
    lag_config: str = ""  # TOML file listing clusters; empty: the local stack only
    # bound beyond loopback, every request must carry this token (Bearer, or Basic's password)
    monitor_token: Secret = _secret()  # CLICKFAN_MONITOR_TOKEN, or ...
    monitor_token_file: str = ""
    monitor_tls_cert: str = ""  # PEM certificate (chain) and key: serve https
    monitor_tls_key: str = ""

    # the live web page (`clickfan dashboard`, started by `clickfan demo` too)
    dashboard_host: str = _non_empty("127.0.0.1")
    dashboard_port: int = _port(8080)
    # between reads of the pipeline and pushes to the page
    dashboard_interval_s: float = _range(1.0, 0, above=True)
    dashboard_token: Secret = _secret()  # as the monitor's
    dashboard_token_file: str = ""
    dashboard_tls_cert: str = ""
    dashboard_tls_key: str = ""

    # pipeline: the two workers (streams/) and their sinks (sinks/)
    es_group: str = _non_empty("es-indexer")  # consumer group of `clickfan worker es`
    hdfs_group: str = _non_empty("hdfs-archiver")  # consumer group of `clickfan worker hdfs`
    index_prefix: str = "clicks"  # daily indices <prefix>-YYYY.MM.DD, template <prefix>
    hdfs_root: str = "/clicklogs"  # <root>/dt=YYYY-MM-DD/hour=HH/<topic>+<p>+<first>+<last>.jsonl
    # the archive's file format. jsonl keeps each record's exact bytes (replayable into
    # Kafka byte for byte, what every reader so far expects); parquet is typed and columnar
    # for batch engines, about 10x smaller (docs/archive.md). The roll limits below apply
    # to both.
    hdfs_format: str = _choice("jsonl", "jsonl", "parquet")
    # the most records of one fetch handed to the sink at once (= one ES bulk); a fetch
    # is whatever arrived, so at a steady rate batches are small and leave at once
    worker_batch_records: int = _range(1000, 1)
    es_bulk_bytes: int = _range(5242880, 1)  # a bigger batch is sent as several bulk requests
    sink_request_timeout_s: float = _range(
        30.0, 0, above=True
    )  # one HTTP call to Elasticsearch or WebHDFS
    es_index_shards: int = _range(1, 1, 1024)
    es_index_replicas: int = _range(0, 0)  # the local stack has one node
    hdfs_roll_records: int = _range(
        10000, 1
    )  # a partition's open files are rolled at this many records,
    hdfs_roll_bytes: int = _range(16777216, 1)  # ... or bytes (held in memory until rolled),
    hdfs_roll_s: float = _range(
        30.0, 0, above=True
    )  # ... or this age of the oldest record, whichever comes first
    sink_retry_initial_s: float = _range(
        0.5, 0, above=True
    )  # backoff while a sink (or the DLQ) is failing, doubling
    sink_retry_max_s: float = _range(10.0, 0, above=True)  # ... up to this
    sink_log_interval_s: float = _range(
        30.0, 0, above=True
    )  # a failing sink is logged at most once per interval
    worker_stop_timeout_s: float = _range(
        15.0, 0, above=True
    )  # on SIGTERM/Ctrl-C: time to flush before giving up
    # a worker killed with kill -9 holds its partitions this long (Kafka client default: 45 s)
    worker_session_timeout_s: float = _range(30.0, 0, above=True)
    worker_stats_interval_s: float = _range(
        30.0, 0, above=True
    )  # a progress line in the worker log
    worker_loglevel: str = _choice("info", "debug", "info", "warning", "error")

    # experiments (`clickfan experiment`, `clickfan replay`)
    experiment_out: str = "reports"  # where report folders are written
    # clickfan's brokers check retention every 10 s; against brokers with Kafka's
    # default (5 min) set CLICKFAN_EXPERIMENT_RETENTION_WAIT_S=420
    experiment_retention_wait_s: float = _range(120.0, 0)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{self.host}:{port}" for port in self.kafka_ports)

    @property
    def es_node_urls(self) -> tuple[str, ...]:
        """Every Elasticsearch node to try, in order."""
        given = tuple(u.strip().rstrip("/") for u in self.es_urls.split(",") if u.strip())
        scheme = "https" if self.secure else "http"  # the secure profile's node speaks TLS only
        return given or (f"{scheme}://{self.host}:{self.es_port}",)

    @property
    def es_url(self) -> str:
        """The first node: where one address is shown (status, messages)."""
        return self.es_node_urls[0]

    @property
    def webhdfs_node_urls(self) -> tuple[str, ...]:
        """Every NameNode's HTTP(S) address, in failover order."""
        raw = self.webhdfs_urls.replace(";", ",")
        given = tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())
        return given or (f"http://{self.host}:{self.namenode_http_port}",)

    @property
    def webhdfs_url(self) -> str:
        return self.webhdfs_node_urls[0]

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def secure_marker(self) -> Path:
        """Written by `clickfan up --secure`: this home's data belongs to the secure profile."""
        return self.data_dir / "secure-profile"

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else self.home / "artifacts"

    def with_overrides(self, **overrides: object) -> Settings:
        """Apply CLI flags; ``None`` means "flag not given"."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **given)


def _var(name: str) -> str:
    return f"CLICKFAN_{name.upper()}"


def _parse(raw: str, current: object, name: str, allowed: Allowed | None) -> object:
    try:
        if isinstance(current, bool):
            word = raw.strip().lower()
            if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError("expected true or false")
            return word in ("1", "true", "yes", "on")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, Path):
            return Path(raw).expanduser()
        if isinstance(current, tuple):
            return tuple(int(p) for p in raw.replace(" ", "").split(",") if p)
        if isinstance(current, Secret):
            return Secret(raw.strip())
    except ValueError as exc:
        wants = f"expected {allowed.describe(current)}" if allowed else str(exc)
        raise SettingsError(f"{_var(name)}={raw!r}: {wants}") from None
    return raw


# settings that must agree with each other: (smaller, larger, strictly)
_ORDERED = (
    ("min_insync_replicas", "replication_factor", False),
    ("sink_retry_initial_s", "sink_retry_max_s", False),
    ("max_event_bytes", "oversized_event_bytes", True),
)


def check(settings: Settings, raw: dict[str, str] | None = None) -> None:
    """Raise SettingsError naming the first setting outside what it allows."""
    raw = raw or {}
    for f in fields(Settings):
        allowed = f.metadata.get("allowed")
        value = getattr(settings, f.name)
        if allowed is not None and not allowed.allows(value):
            shown = raw.get(f.name, value)
            raise SettingsError(f"{_var(f.name)}={shown!r}: expected {allowed.describe(value)}")
    for small, large, strictly in _ORDERED:
        a, b = getattr(settings, small), getattr(settings, large)
        if a > b or (strictly and a == b):
            relation = "below" if strictly else "at most"
            raise SettingsError(
                f"{_var(small)}={a} must be {relation} {_var(large)}={b}: change one of them"
            )
    for name, urls in (
        ("es_urls", settings.es_node_urls),
        ("webhdfs_urls", settings.webhdfs_node_urls),
    ):
        for url in urls:
            if not re.fullmatch(r"https?://[^/@\s]+(/\S*)?", url):
                raise SettingsError(
                    f"{_var(name)}: {url.split('@')[-1]!r} is not an http(s)://host:port URL "
                    "(credentials go in their own settings, never in a URL)"
                )
    if len(settings.kafka_controller_ports) != len(settings.kafka_ports):
        raise SettingsError(
            f"{_var('kafka_controller_ports')} must list one port per broker of "
            f"{_var('kafka_ports')} ({len(settings.kafka_ports)})"
        )


def load(environ: dict[str, str] | None = None) -> Settings:
    """Defaults, overridden by CLICKFAN_* environment variables, checked."""
    env = os.environ if environ is None else environ
    base = Settings()
    overrides = {}
    raw = {}
    for f in fields(Settings):
        value = env.get(_var(f.name))
        if value is not None:
            raw[f.name] = value
            allowed = f.metadata.get("allowed")
            overrides[f.name] = _parse(value, getattr(base, f.name), f.name, allowed)
    settings = dataclasses.replace(base, **overrides)
    if "secure" not in raw and settings.secure_marker.exists():
        # brokers formatted with SCRAM users cannot be run or reached in plaintext
        settings = dataclasses.replace(settings, secure=True)
    check(settings, raw)
    return settings
