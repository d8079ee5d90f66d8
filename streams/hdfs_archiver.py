"""The HDFS archiver: consumer group hdfs-archiver, click-logs -> JSON Lines by event hour."""

from __future__ import annotations

import asyncio
import logging

import faust

from clickfan.settings import Settings
from clickfan.sinks.hdfs_sink import HdfsConfig, HdfsSink, RollLimits
from clickfan.sinks.retry import RetryPolicy
from clickfan.streams.deadletter import DeadLetterQueue
from clickfan.streams.pipeline import SinkPipeline
from clickfan.streams.runtime import make_app, source_topic

log = logging.getLogger(__name__)

# How often a roll's age is checked when no records arrive.
_ROLL_CHECK_S = 1.0


def create_app(settings: Settings, bootstrap_servers: str) -> tuple[faust.App, SinkPipeline]:
    group = settings.hdfs_group
    app = make_app(settings, group, bootstrap_servers)
    abort = asyncio.Event()
    dlq = DeadLetterQueue(app, settings, settings.dlq_topic, group, abort)
    sink = HdfsSink(
        HdfsConfig(
            url=settings.webhdfs_url,
            user=settings.hdfs_user,
            root=settings.hdfs_root,
            roll=RollLimits(
                settings.hdfs_roll_records, settings.hdfs_roll_bytes, settings.hdfs_roll_s
            ),
            request_timeout_s=settings.sink_request_timeout_s,
        ),
        RetryPolicy(
            settings.sink_retry_initial_s, settings.sink_retry_max_s, settings.sink_log_interval_s
        ),
        settings.topic,
        abort,
    )
    pipeline = SinkPipeline(app, settings.topic, sink, dlq, abort, settings.max_event_bytes, log)
    clicks = source_topic(app, settings.topic)

    # concurrency 1: one batch at a time per process, in offset order per partition
    @app.agent(clicks, concurrency=1, name="hdfs-archiver")
    async def archive(stream: faust.StreamT) -> None:
        batches = stream.take_events(settings.worker_batch_records, settings.worker_batch_s)
        async for events in batches:
            await pipeline.process(events)

    # a loop rather than app.timer: a roll may take longer than the interval
    @app.task
    async def roll_by_age() -> None:
        while True:
            await asyncio.sleep(_ROLL_CHECK_S)
            await pipeline.tick()

    pipeline.connect(settings.worker_stats_interval_s)
    return app, pipeline
