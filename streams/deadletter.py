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

A failed send is judged by the Kafka error's own ``retriable`` flag: a
retriable one (no leader, not enough replicas, the topic unknown for now,
brokers unreachable) is retried with backoff while the offsets are held and a
line per interval names the topic and the error; any other (message too
large for the topic, not authorized) raises DeadLetterUnwritable, and the
worker exits non-zero without committing past the record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import faust
from aiokafka.errors import KafkaError, KafkaTimeoutError

from clickfan.errors import ClickfanError
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


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The Kafka client's error behind ``exc`` (Faust wraps send errors in its own)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaError):
            return seen
        seen = seen.__cause__
    return None


def retriable(exc: BaseException) -> bool:
    """Whether a failed dead-letter send may succeed if tried again, by the error's own flag."""
    error = kafka_error(exc)
    if error is None:
        return False
    # A request that timed out (e.g. no leader within the request timeout) is retriable
    # in Kafka's own clients (Java's TimeoutException); aiokafka leaves its flag unset.
    return bool(error.retriable) or isinstance(error, KafkaTimeoutError)


class DeadLetterUnwritable(ClickfanError):
    """The dead-letter topic refused a record for good: the worker must stop, not skip it."""


class DeadLetterQueue:
    def __init__(
        self,
        app: faust.App,
        topic: str,
        group: str,
        retry: RetryPolicy,
        abort: asyncio.Event,
    ) -> None:
        self.topic_name = topic
        self._topic = app.topic(topic, key_serializer="raw", value_serializer="raw")
        self._group = group
        self._abort = abort
        self._retry = Retry(f"dead-letter topic {topic}", log, retry, is_transient=retriable)
        self.sent = 0

    async def send(self, rejections: Sequence[Rejection]) -> None:
        """Produce ``rejections`` and wait until every one is acknowledged.

        Raises DeadLetterUnwritable on an error that is not retriable, and
        Aborted when the partitions are revoked (or the worker stops) meanwhile.
        """
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

        if not pending:
            return
        try:
            await self._retry.call(attempt, f"dead-lettering {len(pending)} records", self._abort)
        except Exception as exc:
            error = kafka_error(exc)
            if error is None:
                raise  # not Kafka's answer (Aborted, or a bug): as it is
            what = getattr(error, "description", "") or str(error)
            raise DeadLetterUnwritable(
                f"cannot write to the dead-letter topic {self.topic_name}: "
                f"{type(error).__name__}, not retriable ({what}); the records it was for "
                "stay uncommitted: fix the topic, then start the worker again"
            ) from exc
