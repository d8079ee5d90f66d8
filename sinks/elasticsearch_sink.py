"""The Elasticsearch sink: bulk-index click events, id = event_id, into daily indices.

Every flush ends with each document of the batch either indexed or confirmed
in the dead-letter topic; only then are the batch's offsets safe to commit.
Cluster trouble (connection refused, timeouts, 429, 5xx, whole requests or
single items) is retried with backoff for as long as it lasts; a document the
cluster refuses for good (a 4xx on the item, e.g. a value its mapping cannot
take) is dead-lettered and the worker goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import elasticsearch
from elasticsearch import AsyncElasticsearch

from clickfan.settings import Settings
from clickfan.sinks import es_bulk, es_index
from clickfan.sinks.base import DeadLetterFn, Rejection, Sink, SinkRecord
from clickfan.sinks.retry import Retry, RetryPolicy

log = logging.getLogger(__name__)

REJECTED_REASON = "es_rejected"


class ItemsToRetry(Exception):
    """Some documents of a bulk request got 429/5xx: the batch is not done yet."""


def _transient(exc: BaseException) -> bool:
    # Request-level failures are all retried: never drop a batch, never commit
    # past it. A 4xx on a whole request (bad credentials, a closed index) is
    # something an operator fixes while the worker waits.
    return isinstance(exc, elasticsearch.TransportError | elasticsearch.ApiError | ItemsToRetry)


class ElasticsearchSink(Sink):
    def __init__(self, settings: Settings, dead_letter: DeadLetterFn, abort: asyncio.Event) -> None:
        self._prefix = es_index.check_prefix(settings.index_prefix)
        self._settings = settings
        self._dead_letter = dead_letter
        self._abort = abort
        self._es = AsyncElasticsearch(
            settings.es_url,
            request_timeout=settings.sink_request_timeout_s,
            # retries are ours (with backoff and without limit), not the client's
            max_retries=0,
            retry_on_timeout=False,
        )
        self._retry = Retry(
            f"Elasticsearch at {settings.es_url}",
            log,
            RetryPolicy(
                settings.sink_retry_initial_s,
                settings.sink_retry_max_s,
                settings.sink_log_interval_s,
            ),
            is_transient=_transient,
        )
        self._buffer: list[SinkRecord] = []
        self._template_ready = False
        self.indexed = 0
        self.rejected = 0

    async def ensure_template(self) -> None:
        """Install (or update) the index template before the first document is indexed."""
        if self._template_ready:
            return
        s = self._settings
        body = es_index.template_body(self._prefix, s.es_index_shards, s.es_index_replicas)

        async def put() -> None:
            await self._es.indices.put_index_template(
                name=es_index.template_name(self._prefix), **body
            )

        await self._retry.call(put, "installing the index template", self._abort)
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
                index=es_index.index_name(self._prefix, r.event["event_time"]),
                id=r.event["event_id"],
                size=es_bulk.doc_size(r),
            )
            for r in records
            if r.event is not None
        ]
        rejections = await self._index(docs)
        if rejections:
            await self._dead_letter(rejections)
            self.rejected += len(rejections)
        self.indexed += len(docs) - len(rejections)
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
            while todo:
                chunk = es_bulk.first_chunk(todo, self._settings.es_bulk_bytes)
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
                    status, error = es_bulk.item_status(item)
                    result = es_bulk.outcome(status)
                    if result is es_bulk.Outcome.RETRY:
                        retry_later.append(doc)
                    elif result is es_bulk.Outcome.REJECTED:
                        rejections.append(Rejection(doc.record, REJECTED_REASON, error))
            pending = retry_later
            if retry_later:
                raise ItemsToRetry(f"{len(retry_later)} documents got 429/5xx")

        if docs:
            await self._retry.call(attempt, f"bulk indexing {len(docs)} documents", self._abort)
        return rejections

    async def close(self, partitions: set[int]) -> None:
        self._buffer = [r for r in self._buffer if r.partition not in partitions]

    async def stop(self) -> None:
        await self._es.close()
