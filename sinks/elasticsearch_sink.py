"""The Elasticsearch sink: bulk-index click events, id = event_id, into daily indices.

Every flush ends with each document of the batch either indexed or confirmed
in the dead-letter topic; only then are the batch's offsets safe to commit.
What a failure means decides what happens (see es_bulk.outcome):

- the cluster is busy or broken (connection refused, timeouts, 429, 5xx, on
  the whole request or on single items): retried with backoff as long as it
  lasts;
- the cluster's state refuses writes (an index closed, a write block, a
  missing index with auto-create off, no authorization): the documents are
  held and retried the same way, logged once per interval with the reason,
  so an operator can fix it; nothing of it is dead-lettered;
- the document's own fault (a value its mapping cannot take): dead-lettered
  with Elasticsearch's reason, and the worker goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import elasticsearch
from elasticsearch import AsyncElasticsearch

from clickfan.sinks import es_bulk, es_index
from clickfan.sinks.base import DeadLetterFn, Rejection, Sink, SinkRecord
from clickfan.sinks.retry import Retry, RetryPolicy

log = logging.getLogger(__name__)

REJECTED_REASON = "es_rejected"


@dataclass(frozen=True)
class ElasticsearchConfig:
    url: str
    index_prefix: str  # daily indices <prefix>-YYYY.MM.DD, template <prefix>
    bulk_bytes: int  # a bigger batch is sent as several bulk requests
    request_timeout_s: float  # one HTTP call
    index_shards: int
    index_replicas: int


class ItemsToRetry(Exception):
    """Some documents of a bulk request were not indexed and not refused: not done yet."""


def _transient(exc: BaseException) -> bool:
    # Request-level failures are all retried: never drop a batch, never commit
    # past it. A 4xx on a whole request (bad credentials, a closed index) is
    # something an operator fixes while the worker waits.
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
        self._es = AsyncElasticsearch(
            config.url,
            request_timeout=config.request_timeout_s,
            # retries are ours (with backoff and without limit), not the client's
            max_retries=0,
            retry_on_timeout=False,
        )
        self._retry = Retry(f"Elasticsearch at {config.url}", log, retry, is_transient=_transient)
        self._buffer: list[SinkRecord] = []
        self._template_ready = False

    async def start(self) -> None:
        await self.ensure_template()

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
            await self._retry.call(attempt, f"bulk indexing {len(docs)} documents", self._abort)
        return rejections

    async def close(self, partitions: set[int]) -> None:
        self._buffer = [r for r in self._buffer if r.partition not in partitions]

    async def stop(self) -> None:
        await self._es.close()
