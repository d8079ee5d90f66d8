"""`clickfan worker es|hdfs`: run one process of a consumer group's worker.

Start several processes of the same worker to share the topic's partitions;
the two workers are separate consumer groups and never wait for each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from clickfan import kafka_client
from clickfan import settings as settings_module
from clickfan.errors import ClickfanError
from clickfan.settings import Settings
from clickfan.sinks import es_index

_LOGLEVELS = ("debug", "info", "warning", "error")
# the archive's formats (sinks.hdfs_layout.FORMATS, which the worker imports only when it
# starts; a unit test keeps the three lists equal)
_FORMATS = ("jsonl", "parquet")


def _help(text: str, setting: str) -> str:
    default = getattr(Settings(), setting)
    return f"{text} Default: {default} (CLICKFAN_{setting.upper()}).".lstrip()


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--topic", help=_help("Source topic.", "topic")),
        click.option("--dlq-topic", help=_help("Dead-letter topic.", "dlq_topic")),
        click.option("--group", help="Consumer group id (see the defaults below)."),
        click.option(
            "--bootstrap-servers",
            help="Kafka brokers, host:port,... Default: the local stack (CLICKFAN_HOST, "
            "CLICKFAN_KAFKA_PORTS).",
        ),
        click.option(
            "--kafka-config",
            type=click.Path(dir_okay=False),
            help="Kafka client properties (Java format: SASL, TLS). Default: "
            "CLICKFAN_KAFKA_CONFIG; on a secure local stack the worker's own user.",
        ),
        click.option(
            "--loglevel", type=click.Choice(_LOGLEVELS), help=_help("", "worker_loglevel")
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _start(
    kind: str, settings: Settings, bootstrap_servers: str | None, kafka_config: str | None
) -> None:
    # Faust and the sinks are imported only when a worker really starts.
    from clickfan.streams import es_indexer, faust_compat, hdfs_archiver, runtime

    faust_compat.check_version()
    faust_compat.read_any_header_keys()
    settings = kafka_client.use(
        settings, "es-indexer" if kind == "es" else "hdfs-archiver", kafka_config
    )
    bootstrap = kafka_client.bootstrap(settings, bootstrap_servers)
    runtime.setup_logging(settings.worker_loglevel, settings.sink_log_interval_s)
    group = settings.es_group if kind == "es" else settings.hdfs_group
    runtime.check_topics(bootstrap, settings.topic, settings.dlq_topic, group=group)
    module = es_indexer if kind == "es" else hdfs_archiver
    module.create_worker(settings, bootstrap).run()


@click.group("worker")
def worker() -> None:
    """Run a worker: the Elasticsearch indexer or the HDFS archiver."""


@worker.command("es")
@_common
@click.option("--index-prefix", help=_help("Daily indices <prefix>-YYYY.MM.DD.", "index_prefix"))
def es(
    topic: str | None,
    dlq_topic: str | None,
    group: str | None,
    bootstrap_servers: str | None,
    kafka_config: str | None,
    loglevel: str | None,
    index_prefix: str | None,
) -> None:
    """Index click events into Elasticsearch (consumer group es-indexer)."""
    settings = settings_module.load().with_overrides(
        topic=topic,
        dlq_topic=dlq_topic,
        es_group=group,
        worker_loglevel=loglevel,
        index_prefix=index_prefix,
    )
    try:
        es_index.check_prefix(settings.index_prefix)
    except ValueError as exc:
        raise ClickfanError(str(exc), exit_code=2) from None
    _start("es", settings, bootstrap_servers, kafka_config)


@worker.command("hdfs")
@_common
@click.option("--hdfs-root", help=_help("Archive folder in HDFS.", "hdfs_root"))
@click.option(
    "--format",
    "hdfs_format",
    type=click.Choice(_FORMATS),
    help=_help(
        "Archive file format: jsonl keeps each record's exact bytes, parquet is typed and "
        "columnar for batch engines.",
        "hdfs_format",
    ),
)
@click.option(
    "--roll-records",
    type=click.IntRange(min=1),
    help=_help("Roll a partition's files at this many records.", "hdfs_roll_records"),
)
@click.option(
    "--roll-bytes",
    type=click.IntRange(min=1),
    help=_help("... or at this many bytes.", "hdfs_roll_bytes"),
)
@click.option(
    "--roll-seconds",
    type=click.FloatRange(min=0, min_open=True),
    help=_help("... or when the oldest record is this old.", "hdfs_roll_s"),
)
def hdfs(
    topic: str | None,
    dlq_topic: str | None,
    group: str | None,
    bootstrap_servers: str | None,
    kafka_config: str | None,
    loglevel: str | None,
    hdfs_root: str | None,
    hdfs_format: str | None,
    roll_records: int | None,
    roll_bytes: int | None,
    roll_seconds: float | None,
) -> None:
    """Archive click events to HDFS as JSON Lines or Parquet (consumer group hdfs-archiver)."""
    settings = settings_module.load().with_overrides(
        topic=topic,
        dlq_topic=dlq_topic,
        hdfs_group=group,
        worker_loglevel=loglevel,
        hdfs_root=hdfs_root,
        hdfs_format=hdfs_format,
        hdfs_roll_records=roll_records,
        hdfs_roll_bytes=roll_bytes,
        hdfs_roll_s=roll_seconds,
    )
    if not settings.hdfs_root.startswith("/"):
        raise ClickfanError(f"--hdfs-root must be absolute; got {settings.hdfs_root!r}", 2)
    _start("hdfs", settings, bootstrap_servers, kafka_config)
