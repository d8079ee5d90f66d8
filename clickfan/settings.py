"""Every default of clickfan, in one place.

A field's default lives here and nowhere else. Each can be overridden by an
environment variable named ``CLICKFAN_<FIELD>`` (upper case), and commands
override both with their flags via :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path


class SettingsError(ValueError):
    """A CLICKFAN_* variable that cannot be read as its field's type."""


def _default_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "clickfan"


@dataclass(frozen=True)
class Settings:
    # where artifacts, data and logs live
    home: Path = field(default_factory=_default_home)
    cache_dir: str = ""  # downloaded server programs; empty: <home>/artifacts
    host: str = "127.0.0.1"

    # versions of the real services (resolved from Maven Central)
    kafka_version: str = "4.1.1"
    # 8.19 runs on the machine's Java 17, the same JVM as Kafka and Hadoop, and
    # pairs with the elasticsearch 8.x Python client.
    elasticsearch_version: str = "8.19.7"
    hadoop_version: str = "3.5.0"
    java_home: str = ""  # empty: JAVA_HOME, then the java on PATH

    # Kafka: three brokers in KRaft combined mode
    kafka_ports: tuple[int, ...] = (9092, 9093, 9094)
    kafka_controller_ports: tuple[int, ...] = (19092, 19093, 19094)
    kafka_heap: str = "256m"
    kafka_cluster_id: str = "Y2xpY2tmYW4tbG9jYWwtMQ"  # 16 bytes, base64url
    # the optional second, one-broker cluster (`clickfan up --extra-cluster`)
    extra_kafka_port: int = 9095
    extra_kafka_controller_port: int = 19095

    # Elasticsearch: one node
    es_port: int = 9200
    es_transport_port: int = 9300
    es_heap: str = "512m"
    es_user: str = "clickfan"  # Elasticsearch refuses to run as root

    # HDFS: one NameNode, one DataNode
    namenode_rpc_port: int = 8020
    namenode_http_port: int = 9870
    datanode_http_port: int = 9864
    datanode_port: int = 9866
    datanode_ipc_port: int = 9867
    hadoop_heap: str = "256m"
    hdfs_user: str = "clickfan"

    # topics
    topic: str = "click-logs"
    dlq_topic: str = "click-logs.dlq"
    partitions: int = 6
    replication_factor: int = 3
    min_insync_replicas: int = 2

    # how long `up` waits for one service to become healthy
    start_timeout_s: float = 180.0
    stop_timeout_s: float = 30.0

    # producer (`clickfan produce`, generators/)
    produce_rate: float = 0.0  # events/s; 0 = as fast as the brokers take them
    produce_acks: str = "all"  # 0 | 1 | all
    produce_idempotence: bool = True  # needs acks=all; switched off with a note otherwise
    produce_compression: str = "lz4"  # none | gzip | snappy | lz4 | zstd
    produce_keys: str = "user"  # user | none | vip
    produce_linger_ms: int = 5
    produce_batch_size: int = 262144  # bytes per partition batch
    produce_batch_num_messages: int = 10000
    produce_queue_max_messages: int = 100000  # local queue; full -> poll, never drop
    # a record neither acknowledged nor failed by then is reported failed (_MSG_TIMED_OUT)
    produce_delivery_timeout_ms: int = 120000  # the Java client's delivery.timeout.ms
    produce_metadata_timeout_s: float = 10.0  # how long to wait for brokers before giving up
    produce_seed: int = -1  # -1: a fresh random seed, printed in the summary
    produce_users: int = 10000  # size of the simulated user base
    vip_user_fraction: float = 0.1  # share of users flagged VIP
    vip_partitions: int = 0  # partitions reserved for VIP users with --keys vip; 0: use vip_share
    vip_share: float = 0.8  # the seed's example: 8 of 10 partitions
    bad_fraction: float = 0.0  # share of malformed records mixed in
    max_event_bytes: int = 65536  # a larger record is not a valid click event
    oversized_event_bytes: int = 102400  # size of the "oversized" bad records (< 1 MB broker limit)

    # lag monitor (lagmon): Burrow-style evaluation, its HTTP API, `clickfan lag`
    monitor_host: str = "127.0.0.1"
    monitor_port: int = 8000
    lag_interval_s: float = 5.0  # between reads of log-end offsets and owners
    lag_window: int = 10  # commits kept per partition (Burrow's "intervals")
    lag_min_distance_s: float = 0.0  # a commit closer than this replaces the previous
    lag_allowed_lag: int = 0  # a lag at or below this counts as caught up
    lag_minimum_complete: float = 0.0  # share of the window filled before evaluating
    lag_webhook_url: str = ""  # POST a notice on group status change; empty: log only
    lag_config: str = ""  # TOML file listing clusters; empty: the local stack only

    # the live web page (`clickfan dashboard`, started by `clickfan demo` too)
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8080
    dashboard_interval_s: float = 1.0  # between reads of the pipeline and pushes to the page

    # pipeline: the two workers (streams/) and their sinks (sinks/)
    es_group: str = "es-indexer"  # consumer group of `clickfan worker es`
    hdfs_group: str = "hdfs-archiver"  # consumer group of `clickfan worker hdfs`
    index_prefix: str = "clicks"  # daily indices <prefix>-YYYY.MM.DD, template <prefix>
    hdfs_root: str = "/clicklogs"  # <root>/dt=YYYY-MM-DD/hour=HH/<topic>+<p>+<first>+<last>.jsonl
    worker_batch_records: int = 1000  # records taken from the stream at once (= one ES bulk)
    worker_batch_s: float = 0.5  # ... or whatever arrived within this time
    es_bulk_bytes: int = 5242880  # a bigger batch is sent as several bulk requests
    sink_request_timeout_s: float = 30.0  # one HTTP call to Elasticsearch or WebHDFS
    es_index_shards: int = 1
    es_index_replicas: int = 0  # the local stack has one node
    hdfs_roll_records: int = 10000  # a partition's open files are rolled at this many records,
    hdfs_roll_bytes: int = 16777216  # ... or bytes (held in memory until rolled),
    hdfs_roll_s: float = 30.0  # ... or this age of the oldest record, whichever comes first
    sink_retry_initial_s: float = 0.5  # backoff while a sink (or the DLQ) is failing, doubling
    sink_retry_max_s: float = 10.0  # ... up to this
    sink_log_interval_s: float = 30.0  # a failing sink is logged at most once per interval
    worker_stop_timeout_s: float = 15.0  # on SIGTERM/Ctrl-C: time to flush before giving up
    # a worker killed with kill -9 holds its partitions this long (Kafka client default: 45 s)
    worker_session_timeout_s: float = 30.0
    worker_stats_interval_s: float = 30.0  # a progress line in the worker log
    worker_loglevel: str = "info"

    # experiments (`clickfan experiment`, `clickfan replay`)
    experiment_out: str = "reports"  # where report folders are written
    # clickfan's brokers check retention every 10 s; against brokers with Kafka's
    # default (5 min) set CLICKFAN_EXPERIMENT_RETENTION_WAIT_S=420
    experiment_retention_wait_s: float = 120.0

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{self.host}:{port}" for port in self.kafka_ports)

    @property
    def es_url(self) -> str:
        return f"http://{self.host}:{self.es_port}"

    @property
    def webhdfs_url(self) -> str:
        return f"http://{self.host}:{self.namenode_http_port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else self.home / "artifacts"

    def with_overrides(self, **overrides: object) -> Settings:
        """Apply CLI flags; ``None`` means "flag not given"."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **given)


def _parse(raw: str, current: object, name: str) -> object:
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
    except ValueError as exc:
        raise SettingsError(f"CLICKFAN_{name.upper()}={raw!r}: {exc}") from None
    return raw


def load(environ: dict[str, str] | None = None) -> Settings:
    """Defaults, overridden by CLICKFAN_* environment variables."""
    env = os.environ if environ is None else environ
    base = Settings()
    overrides = {}
    for f in fields(Settings):
        raw = env.get(f"CLICKFAN_{f.name.upper()}")
        if raw is not None:
            overrides[f.name] = _parse(raw, getattr(base, f.name), f.name)
    return dataclasses.replace(base, **overrides)
