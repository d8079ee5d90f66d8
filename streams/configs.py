"""The one place where a worker turns Settings into the small configs its parts take.

Sinks and the dead-letter queue never see Settings: each gets only what it
uses, so a sink can be built and tested without the whole configuration.
"""

from __future__ import annotations

from clickfan.settings import Settings
from clickfan.sinks import clients
from clickfan.sinks.elasticsearch_sink import ElasticsearchConfig
from clickfan.sinks.hdfs_sink import HdfsConfig, RollLimits
from clickfan.sinks.retry import RetryPolicy


def retry_policy(settings: Settings) -> RetryPolicy:
    """How every sink and the dead-letter topic retry a system that is down."""
    return RetryPolicy(
        initial_s=settings.sink_retry_initial_s,
        max_s=settings.sink_retry_max_s,
        log_interval_s=settings.sink_log_interval_s,
    )


def elasticsearch(settings: Settings) -> ElasticsearchConfig:
    return ElasticsearchConfig(
        connection=clients.elasticsearch_connection(settings, indexer=True),
        index_prefix=settings.index_prefix,
        bulk_bytes=settings.es_bulk_bytes,
        index_shards=settings.es_index_shards,
        index_replicas=settings.es_index_replicas,
    )


def hdfs(settings: Settings) -> HdfsConfig:
    return HdfsConfig(
        connection=clients.webhdfs_connection(settings, archiver=True),
        root=settings.hdfs_root,
        roll=RollLimits(
            records=settings.hdfs_roll_records,
            bytes=settings.hdfs_roll_bytes,
            seconds=settings.hdfs_roll_s,
        ),
        format=settings.hdfs_format,
    )
