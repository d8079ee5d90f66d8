"""`clickfan dlq redrive`: a group's dead letters back into its own sink, after a fix.

Why a worker of its own reading the DLQ, and not a copy to click-logs: a copy would
reach the other group too (twice for it), and a per-group retry topic would be one
more copy to keep exactly once. The re-drive is the group's worker (same sink, same
pipeline, same commits only after flush) with the DLQ as its source topic and the
consumer group ``<group>.redrive`` as its progress, so a kill -9 resumes where the
sink made records durable. What it hands the sink:

- the group's own well-formed dead letters (and the --reason/--since asked for);
- everything else passes as handled: other groups' records, malformed ones (never
  re-driven blindly), records before the group's purge position.

Elasticsearch is idempotent by event id. The HDFS sink names files by its source
topic, so re-driven files are ``<dlq topic>+<p>+<first>+<last>.jsonl``: they never
collide with the archive of click-logs, and each DLQ offset is archived once.
A record refused again is dead-lettered again as the group's, with its original
source headers and clickfan.dlq.attempt raised by one.

A re-drive is a round: it ends at the DLQ's end as of the round's start (committed as
the consumer group ``<group>.redrive-round``). A run killed half-way and started again
finishes the same round, so the dead letters the first run wrote again (past that end)
are not retried in it, and the DLQ ends as an uninterrupted run would leave it; the
next round starts at this one's end and retries them. Records past the end that a
run fetched anyway are never handed to the sink.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from clickfan.settings import Settings
from clickfan.sinks.base import Aborted, DeadLetterFn, Sink, SinkRecord
from clickfan.sinks.elasticsearch_sink import ElasticsearchSink
from clickfan.sinks.hdfs_sink import HdfsSink
from clickfan.streams import configs, runtime
from clickfan.streams import dlq as dlqs

log = logging.getLogger(__name__)

_ROLL_CHECK_S = 1.0
_DONE_CHECK_S = 1.0


@dataclass
class Selection:
    """Which DLQ records the re-drive hands the sink, and how many of each it saw."""

    wanted: dlqs.Filter
    purged: dict[int, int]  # partition -> the group's purge position
    starts: dict[int, int]  # partition -> where this run starts
    ends: dict[int, int]  # partition -> where the round ends
    redriven: int = 0
    skipped: int = 0  # other groups', other reasons, before --since, purged
    malformed: int = 0  # headers missing or malformed: never re-driven
    seen: dict[int, int] = field(default_factory=dict)  # partition -> next offset

    def __call__(self, record: SinkRecord) -> bool:
        if record.offset >= self.ends.get(record.partition, 0):
            return False  # the next round's (the next round starts at this one's end)
        self.seen[record.partition] = record.offset + 1
        letter = dlqs.judge(
            record.partition,
            record.offset,
            record.timestamp_ms,
            record.key,
            record.value,
            record.headers,
        )
        if letter.problem is not None:
            self.malformed += 1
            return False
        if record.offset < self.purged.get(record.partition, 0) or not self.wanted.matches(letter):
            self.skipped += 1
            return False
        self.redriven += 1
        return True

    def finished(self, reader: dlqs.DlqReader) -> bool:
        """Whether every record before the round's end has been seen. Past the last record
        there may be transaction markers only, which no consumer is handed: the DLQ is
        asked whether a record is left."""
        for p, end in self.ends.items():
            at = self.seen.get(p, self.starts.get(p, 0))
            if at < end and reader.first_record(p, at, end) is not None:
                return False
        return True


def create_worker(
    settings: Settings,
    bootstrap_servers: str,
    group: str,
    selection: Selection,
) -> runtime.Worker:
    """The re-drive of ``group`` (settings.es_group or settings.hdfs_group); it stops by
    itself once it has handed the sink everything before the round's end."""
    if group == settings.es_group:

        def make_sink(dead_letter: DeadLetterFn, abort: asyncio.Event) -> Sink:
            return ElasticsearchSink(
                configs.elasticsearch(settings), configs.retry_policy(settings), dead_letter, abort
            )

        tick_s = None
    else:

        def make_sink(dead_letter: DeadLetterFn, abort: asyncio.Event) -> Sink:
            return HdfsSink(
                configs.hdfs(settings), configs.retry_policy(settings), settings.dlq_topic, abort
            )

        tick_s = _ROLL_CHECK_S
    worker = runtime.build(
        settings,
        bootstrap_servers,
        dlqs.redrive_group(group),
        make_sink,
        log,
        tick_s=tick_s,
        redrive=runtime.Redrive(group, selection),
    )

    async def stop_at_end() -> None:
        reader = dlqs.DlqReader(bootstrap_servers, settings.dlq_topic)
        try:
            while not await asyncio.to_thread(selection.finished, reader):
                await asyncio.sleep(_DONE_CHECK_S)
        finally:
            reader.close()
        log.info("read up to the end of the round: making the rest durable, then stopping")
        # no time limit (the stop's own drain has one): a sink that is down is waited
        # for, retrying, as the workers do
        try:
            await worker.pipeline.drain()
        except Aborted:
            return  # stopped meanwhile (a signal): what is not committed is read again
        worker.stop()

    worker.app.task(worker.guard("watching for the end", stop_at_end))
    return worker
