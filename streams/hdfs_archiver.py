"""The HDFS archiver: consumer group hdfs-archiver, click-logs -> JSON Lines by event hour."""

from __future__ import annotations

import logging

from clickfan.settings import Settings
from clickfan.sinks.hdfs_sink import HdfsSink
from clickfan.streams import configs, runtime

log = logging.getLogger(__name__)

# How often a roll's age is checked when no records arrive.
_ROLL_CHECK_S = 1.0


def create_worker(settings: Settings, bootstrap_servers: str) -> runtime.Worker:
    return runtime.build(
        settings,
        bootstrap_servers,
        settings.hdfs_group,
        # the archiver writes no rejections of its own: invalid records are dead-lettered
        # before they reach it
        lambda _dead_letter, abort: HdfsSink(
            configs.hdfs(settings), configs.retry_policy(settings), settings.topic, abort
        ),
        log,
        tick_s=_ROLL_CHECK_S,
    )
