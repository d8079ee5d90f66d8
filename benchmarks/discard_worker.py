"""A worker whose sink does all the Python work of a real one, then discards the result.

    python -m benchmarks.discard_worker es|hdfs

The consume path of `clickfan worker es|hdfs` without Elasticsearch or HDFS:
the same Faust app, record reader, batches, decoding, validation, dead-lettering and offset
commits (streams.runtime.build), with a sink that turns each record into what
the real sink would send (es: the bulk request body, serialized as the client
does; hdfs: the JSON Lines file contents of a roll) and drops it. Its rate is
the ceiling of the worker's Python side, compared with kafka-consumer-perf-test.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from clickfan.errors import ClickfanError
from clickfan.events import encode_event
from clickfan.settings import load
from clickfan.sinks import es_bulk
from clickfan.sinks.base import DeadLetterFn, Sink, SinkRecord
from clickfan.sinks.elasticsearch_sink import BULK_SERIALIZER, IndexNames
from clickfan.sinks.hdfs_layout import bucket
from clickfan.sinks.hdfs_roll import PendingRoll
from clickfan.streams import faust_compat, runtime

log = logging.getLogger("benchmarks.discard_worker")


class DiscardSink(Sink):
    """Builds each batch's request body or file contents, then forgets it."""

    def __init__(self, kind: str, topic: str, index_prefix: str) -> None:
        self._kind = kind
        self._topic = topic
        self._index_name = IndexNames(index_prefix)
        self._offsets: dict[int, int] = {}
        self.bytes = 0

    async def open(self, partitions: set[int]) -> None:
        self._offsets.clear()

    async def put(self, records: Sequence[SinkRecord]) -> None:
        if self._kind == "es":
            docs = [
                es_bulk.Doc(
                    record=r,
                    index=self._index_name(r.event["event_time"]),
                    id=r.event["event_id"],
                    size=es_bulk.doc_size(r),
                )
                for r in records
                if r.event is not None
            ]
            # the request body, as the client serializes it
            self.bytes += len(BULK_SERIALIZER.dumps(es_bulk.operations(docs)))
        else:
            rolls: dict[int, PendingRoll] = {}
            for r in records:
                roll = rolls.setdefault(r.partition, PendingRoll(self._topic, r.partition))
                if r.event is None:
                    roll.add(r.offset, 0.0, None, None)
                else:
                    roll.add(r.offset, 0.0, bucket(r.event["event_time"]), encode_event(r.event))
            for roll in rolls.values():
                self.bytes += sum(len(f.data()) for _, _, f in roll.archive_files())
        for r in records:
            self._offsets[r.partition] = r.offset + 1

    async def flush(self, force: bool = False) -> dict[int, int]:
        offsets, self._offsets = self._offsets, {}
        return offsets

    async def close(self, partitions: set[int]) -> None:
        for p in partitions:
            self._offsets.pop(p, None)

    async def stop(self) -> None:
        pass


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in ("es", "hdfs"):
        sys.exit("usage: python -m benchmarks.discard_worker es|hdfs")
    kind = sys.argv[1]
    faust_compat.read_any_header_keys()  # as `clickfan worker` reads its fetches
    settings = load()
    runtime.setup_logging(settings.worker_loglevel, settings.sink_log_interval_s)
    group = settings.es_group if kind == "es" else settings.hdfs_group

    def make_sink(_dead_letter: DeadLetterFn, _abort: asyncio.Event) -> Sink:
        return DiscardSink(kind, settings.topic, settings.index_prefix)

    try:
        runtime.check_topics(settings.bootstrap_servers, settings.topic, settings.dlq_topic)
        worker = runtime.build(settings, settings.bootstrap_servers, group, make_sink, log)
        worker.run()
    except ClickfanError as exc:
        sys.exit(f"discard worker: {exc}")


if __name__ == "__main__":
    main()
