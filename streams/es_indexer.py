"""The Elasticsearch indexer: consumer group es-indexer, click-logs -> daily indices."""

from __future__ import annotations

import logging

from clickfan.settings import Settings
from clickfan.sinks.elasticsearch_sink import ElasticsearchSink
from clickfan.streams import configs, runtime

log = logging.getLogger(__name__)


def create_worker(settings: Settings, bootstrap_servers: str) -> runtime.Worker:
    return runtime.build(
        settings,
        bootstrap_servers,
        settings.es_group,
        lambda dead_letter, abort: ElasticsearchSink(
            configs.elasticsearch(settings), configs.retry_policy(settings), dead_letter, abort
        ),
        log,
    )
