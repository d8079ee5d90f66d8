"""The dead-letter path: records that are not click events, with why and where from.

A dead letter keeps the original key, value and headers and adds headers in
the spirit of Kafka Connect's ``__connect.errors.*``:

    clickfan.error.reason       one of clickfan.events.REASONS, or es_rejected
    clickfan.error.message      what exactly was wrong (cut to 1 KB)
    clickfan.source.topic / .partition / .offset / .timestamp
    clickfan.dlq.group          the consumer group (worker) that dead-lettered it

Both groups read every record, and each dead-letters on its own: a worker
never depends on the other group to account for a record it skipped, so one
group's outage or lag cannot leave the other's archive with holes. The DLQ
therefore holds a bad record once per group; read it filtered by
``clickfan.dlq.group`` (or deduplicated by source topic/partition/offset).

A send counts as done only when the brokers confirmed it (acks=all); until
then the source offset is not handled and is not committed. After a crash a
record may be dead-lettered again (at least once, like the sinks' re-delivery).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import faust
from aiokafka.errors import KafkaError

from clickfan.settings import Settings
from clickfan.sinks.base import Rejection
from clickfan.sinks.retry import Retry, RetryPolicy

log = logging.getLogger(__name__)

REASON = "clickfan.error.reason"
MESSAGE = "clickfan.error.message"
SOURCE_TOPIC = "clickfan.source.topic"
SOURCE_PARTITION = "clickfan.source.partition"
SOURCE_OFFSET = "clickfan.source.offset"
SOURCE_TIMESTAMP = "clickfan.source.timestamp"
GROUP = "clickfan.dlq.group"

_MAX_MESSAGE = 1024


def headers(rejection: Rejection, group: str) -> list[tuple[str, bytes]]:
    r = rejection.record
    ours = [
        (REASON, rejection.reason),
        (MESSAGE, rejection.message[:_MAX_MESSAGE]),
        (SOURCE_TOPIC, r.topic),
        (SOURCE_PARTITION, str(r.partition)),
        (SOURCE_OFFSET, str(r.offset)),
        (SOURCE_TIMESTAMP, "" if r.timestamp_ms is None else str(r.timestamp_ms)),
        (GROUP, group),
    ]
    original = [(k, v) for k, v in r.headers if not k.startswith("clickfan.")]
    return original + [(k, v.encode("utf-8", "replace")) for k, v in ours]


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, KafkaError | asyncio.TimeoutError | ConnectionError)


class DeadLetterQueue:
    def __init__(
        self, app: faust.App, settings: Settings, topic: str, group: str, abort: asyncio.Event
    ) -> None:
        self.topic_name = topic
        self._topic = app.topic(topic, key_serializer="raw", value_serializer="raw")
        self._group = group
        self._abort = abort
        self._retry = Retry(
            f"dead-letter topic {topic}",
            log,
            RetryPolicy(
                settings.sink_retry_initial_s,
                settings.sink_retry_max_s,
                settings.sink_log_interval_s,
            ),
            is_transient=_transient,
        )
        self.sent = 0

    async def send(self, rejections: Sequence[Rejection]) -> None:
        """Produce ``rejections`` and wait until every one is acknowledged."""
        pending = list(rejections)

        async def attempt() -> None:
            nonlocal pending
            futures = [
                await self._topic.send(
                    key=r.record.key,
                    value=r.record.value,
                    headers=headers(r, self._group),
                )
                for r in pending
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
            errors = [res for res in results if isinstance(res, Exception)]
            self.sent += len(pending) - len(errors)
            # only the failed ones again: a confirmed dead letter is not sent twice
            pending = [
                r for r, res in zip(pending, results, strict=True) if isinstance(res, Exception)
            ]
            if errors:
                raise errors[0]

        if pending:
            await self._retry.call(
                attempt, f"dead-lettering {len(pending)} records to {self.topic_name}", self._abort
            )
