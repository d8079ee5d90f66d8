"""The Elasticsearch sink: bulk-index click events, id = event_id, into daily indices.

Every flush ends with each document of the batch either indexed or confirmed
in the dead-letter topic; only then are the batch's offsets safe to commit.
What a failure means decides what happens (see es_bulk.outcome):

- the cluster is busy or broken (connection refused, timeouts, 429, 5xx, on
  the whole request or on single items): retried with backoff as long as it
  lasts;
- the cluster's state refuses writes (an index closed, a write block, a
  missing index with auto-create off): the documents are held and retried the
  same way, logged once per interval with the reason, so an operator can fix
  it; nothing of it is dead-lettered;
- the cluster refuses *us* (credentials rejected, a privilege the key lacks,
  a certificate we do not trust, a plaintext client on its TLS port): no retry
  can fix that, so the worker stops with exit 1 and a one-line reason
  (clients.Refused); its offsets are not committed, so nothing is lost, and a
  supervisor restarting it shows the same line until an operator fixes it;
- the document's own fault (a value its mapping cannot take): dead-lettered
  with Elasticsearch's reason, and the worker goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import elasticsearch
import orjson
from elasticsearch.serializer import NdjsonSerializer

from clickfan.sinks import clients, es_bulk, es_index
from clickfan.sinks.base import DeadLetterFn, Rejection, Sink, SinkRecord
from clickfan.sinks.retry import Retry, RetryPolicy

log = logging.getLogger(__name__)

REJECTED_REASON = "es_rejected"


@dataclass(frozen=True)
class ElasticsearchConfig:
    connection: clients.ElasticsearchConnection  # nodes, credentials, CA, timeout of a call
    index_prefix: str  # daily indices <prefix>-YYYY.MM.DD, template <prefix>
    bulk_bytes: int  # a bigger batch is sent as several bulk requests
    index_shards: int
    index_replicas: int


class _OrjsonNdjsonSerializer(NdjsonSerializer):
    """The client's bulk body writer with orjson (several times faster than json.dumps).

    Only valid events reach a bulk body: no NaN, no integer beyond 64 bits, no
    lone surrogate, which are where orjson and json.dumps differ.
    """

    def json_dumps(self, data: object) -> bytes:
        return orjson.dumps(data, default=self.default)


# How the client writes a bulk request's body (one JSON document per line).
BULK_SERIALIZER = _OrjsonNdjsonSerializer()


class IndexNames:
    """es_index.index_name with a memory: the index of each (local minute, zone) seen.

    A valid event_time is ``YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`` and zones are whole
    minutes, so its UTC day, hence its index, follows from the minute and the zone
    alone; events arrive close in time, so nearly every one is a hit (parsing the time
    again for each was a tenth of the indexer's own work).
    """

    MAX_ENTRIES = 4096

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._names: dict[str, str] = {}

    def __call__(self, event_time: str) -> str:
        key = event_time[:16] + ("Z" if event_time.endswith("Z") else event_time[-6:])
        name = self._names.get(key)
        if name is None:
            name = es_index.index_name(self._prefix, event_time)
            if len(self._names) >= self.MAX_ENTRIES:
                self._names.clear()
            self._names[key] = name
        return name


class ItemsToRetry(Exception):
    """Some documents of a bulk request were not indexed and not refused: not done yet."""


def _transient(exc: BaseException) -> bool:
    # Request-level failures are retried: never drop a batch, never commit past
    # it. A 4xx on a whole request (a closed index) is something an operator
    # fixes while the worker waits; a refusal of us (clients.refusal) is not.
    if clients.refusal(exc, "Elasticsearch") is not None:
        return False
    return isinstance(exc, elasticsearch.TransportError | elasticsearch.ApiError | ItemsToRetry)


class ElasticsearchSink(Sink):
    def __init__(
        self,
        config: ElasticsearchConfig,
        retry: RetryPolicy,
        dead_letter: DeadLetterFn,
        abort: asyncio.Event,
    ) -> None:
        self._prefix = es_index.check_prefix(config.index_prefix)
        self._config = config
        self._dead_letter = dead_letter
        self._abort = abort
        # retries with backoff are ours; the client only moves on to the next node
        self._es = clients.async_elasticsearch_client(
            config.connection, serializers={BULK_SERIALIZER.mimetype: BULK_SERIALIZER}
        )
        self._retry = Retry(
            f"Elasticsearch at {config.connection.shown}", log, retry, is_transient=_transient
        )
        self._buffer: list[SinkRecord] = []
        self._index_name = IndexNames(self._prefix)
        self._template_ready = False

    async def start(self) -> None:
        # a plaintext client on a TLS port sees only closed connections, as if the
        # node were down: said once, at start, instead of retried for ever
        refused = await asyncio.to_thread(clients.plaintext_on_tls, self._config.connection.urls)
        if refused is not None:
            raise refused
        await self.ensure_template()

    async def _call(self, op: Callable[[], Awaitable[None]], action: str) -> None:
        try:
            await self._retry.call(op, action, self._abort)
        except Exception as exc:
            refused = clients.refusal(exc, "Elasticsearch")
            if refused is None:
                raise
            raise refused from None

    async def ensure_template(self) -> None:
        """Install (or update) the index template before the first document is indexed."""
        if self._template_ready:
            return
        c = self._config
        body = es_index.template_body(self._prefix, c.index_shards, c.index_replicas)

        async def put() -> None:
            await self._es.indices.put_index_template(
                name=es_index.template_name(self._prefix), **body
            )

        await self._call(put, "installing the index template")
        self._template_ready = True
        log.info("index template %r installed for %s-*", self._prefix, self._prefix)

    async def open(self, partitions: set[int]) -> None:
        self._buffer.clear()

    async def put(self, records: Sequence[SinkRecord]) -> None:
        self._buffer.extend(records)

    async def flush(self, force: bool = False) -> dict[int, int]:
        # Each flush indexes the whole buffer: one stream batch, sent as one
        # or more bulk requests of at most es_bulk_bytes.
        if not self._buffer:
            return {}
        records = self._buffer
        await self.ensure_template()
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
        rejections = await self._index(docs)
        if rejections:
            await self._dead_letter(rejections)
        self._buffer = []
        offsets: dict[int, int] = {}
        for r in records:
            offsets[r.partition] = max(offsets.get(r.partition, 0), r.offset + 1)
        return offsets

    async def _index(self, docs: list[es_bulk.Doc]) -> list[Rejection]:
        """Index ``docs`` until each is indexed or rejected; return the rejected ones."""
        pending = docs
        rejections: list[Rejection] = []

        async def attempt() -> None:
            nonlocal pending
            todo, retry_later = pending, []
            held: list[str] = []  # why the cluster refused, one per document held
            while todo:
                chunk = es_bulk.first_chunk(todo, self._config.bulk_bytes)
                try:
                    response = await self._es.bulk(
                        operations=es_bulk.operations(chunk),
                        filter_path="errors,items.*.status,items.*.error",
                    )
                except Exception:
                    pending = retry_later + list(todo)
                    raise
                todo = todo[len(chunk) :]
                if not response.get("errors"):
                    continue
                for doc, item in zip(chunk, response["items"], strict=True):
                    result, error = es_bulk.judge(item)
                    if result is es_bulk.Outcome.RETRY:
                        retry_later.append(doc)
                    elif result is es_bulk.Outcome.HOLD:
                        retry_later.append(doc)
                        held.append(error)
                    elif result is es_bulk.Outcome.REFUSED:
                        raise clients.Refused(
                            f"Elasticsearch does not allow the indexer to write {doc.index} "
                            f"({error}); grant the privilege or fix CLICKFAN_INDEX_PREFIX"
                        )
                    elif result is es_bulk.Outcome.REJECTED:
                        rejections.append(Rejection(doc.record, REJECTED_REASON, error))
            pending = retry_later
            if held:
                raise ItemsToRetry(
                    f"{len(held)} documents held, the cluster refuses writes ({held[0]}); "
                    "open the index, lift the block, create it or grant the privilege"
                )
            if retry_later:
                raise ItemsToRetry(f"{len(retry_later)} documents got 429/5xx")

        if docs:
            await self._call(attempt, f"bulk indexing {len(docs)} documents")
        return rejections

    async def close(self, partitions: set[int]) -> None:
        self._buffer = [r for r in self._buffer if r.partition not in partitions]

    async def stop(self) -> None:
        await self._es.close()
