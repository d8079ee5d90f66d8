"""The Elasticsearch indexer: consumer group es-indexer, click-logs -> daily indices."""

from __future__ import annotations

import asyncio
import logging

import faust

from clickfan.settings import Settings
from clickfan.sinks.base import Aborted
from clickfan.sinks.elasticsearch_sink import ElasticsearchSink
from clickfan.streams.deadletter import DeadLetterQueue
from clickfan.streams.pipeline import SinkPipeline
from clickfan.streams.runtime import make_app, source_topic

log = logging.getLogger(__name__)


def create_app(settings: Settings, bootstrap_servers: str) -> tuple[faust.App, SinkPipeline]:
    group = settings.es_group
    app = make_app(settings, group, bootstrap_servers)
    abort = asyncio.Event()
    dlq = DeadLetterQueue(app, settings, settings.dlq_topic, group, abort)
    sink = ElasticsearchSink(settings, dlq.send, abort)
    pipeline = SinkPipeline(app, settings.topic, sink, dlq, abort, settings.max_event_bytes, log)
    clicks = source_topic(app, settings.topic)

    # concurrency 1: one batch at a time per process, in offset order per partition
    @app.agent(clicks, concurrency=1, name="es-indexer")
    async def index(stream: faust.StreamT) -> None:
        batches = stream.take_events(settings.worker_batch_records, settings.worker_batch_s)
        async for events in batches:
            await pipeline.process(events)

    @app.task
    async def install_template() -> None:
        try:
            await sink.ensure_template()
        except Aborted:
            pass  # a rebalance came first; the first flush installs it

    pipeline.connect(settings.worker_stats_interval_s)
    return app, pipeline
