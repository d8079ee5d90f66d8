"""The dead-letter path: records that are not click events, with why and where from.

A dead letter keeps the original key, value and headers and adds headers in
the spirit of Kafka Connect's ``__connect.errors.*``:

    clickfan.error.reason       one of clickfan.events.REASONS, or es_rejected
    clickfan.error.message      what exactly was wrong (cut to 1 KB)
    clickfan.source.topic / .partition / .offset / .timestamp
    clickfan.dlq.group          the consumer group (worker) that dead-lettered it
    clickfan.dlq.attempt        1 for a first dead letter, raised by one each time a
                                re-drive (`clickfan dlq redrive`) fails again
    clickfan.redrive.topic / .partition / .offset
                                on a dead letter a re-drive failed again: the DLQ
                                record it re-drove (its source headers stay the original)

Both groups read every record, and each dead-letters on its own: a worker
never depends on the other group to account for a record it skipped, so one
group's outage or lag cannot leave the other's archive with holes. The DLQ
therefore holds a bad record once per group; read it filtered by
``clickfan.dlq.group`` (or deduplicated by source topic/partition/offset).

A send counts as done only when the brokers confirmed it (acks=all); until
then the source offset is not handled and is not committed. Each source
partition's dead letters go to one DLQ partition (source partition modulo the
DLQ's partition count), so that a worker taking a partition over can find, by
reading that DLQ partition backwards from its end, which records past the
group's committed offset were dead-lettered already (by a worker killed before
it committed, say), and does not send them twice: once per group.

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
import time
from collections.abc import Sequence

import faust
from aiokafka.errors import KafkaError, KafkaTimeoutError
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import KafkaError as ConfluentKafkaError

from clickfan import kafka_client
from clickfan.errors import ClickfanError
from clickfan.sinks.base import Rejection
from clickfan.sinks.retry import Retry, RetryPolicy
from clickfan.streams.positions import ask_kafka

log = logging.getLogger(__name__)

REASON = "clickfan.error.reason"
MESSAGE = "clickfan.error.message"
SOURCE_TOPIC = "clickfan.source.topic"
SOURCE_PARTITION = "clickfan.source.partition"
SOURCE_OFFSET = "clickfan.source.offset"
SOURCE_TIMESTAMP = "clickfan.source.timestamp"
GROUP = "clickfan.dlq.group"
ATTEMPT = "clickfan.dlq.attempt"
REDRIVE_TOPIC = "clickfan.redrive.topic"
REDRIVE_PARTITION = "clickfan.redrive.partition"
REDRIVE_OFFSET = "clickfan.redrive.offset"
SOURCE_HEADERS = (SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, SOURCE_TIMESTAMP)

_MAX_MESSAGE = 1024


def attempt_of(headers: dict[str, bytes]) -> int:
    """A dead letter's attempt count; 1 without the header (written before it existed)."""
    try:
        return max(1, int(headers.get(ATTEMPT, b"1")))
    except ValueError:
        return 1


def headers(rejection: Rejection, group: str, redriving: bool = False) -> list[tuple[str, bytes]]:
    """A dead letter's headers; ``redriving``: the record is itself a dead letter, re-driven
    from the DLQ and refused again (its source headers and attempt count carry over)."""
    r = rejection.record
    ours = [(REASON, rejection.reason), (MESSAGE, rejection.message[:_MAX_MESSAGE])]
    if redriving:
        prior = dict(r.headers)
        source = [(k, prior.get(k, b"").decode("utf-8", "replace")) for k in SOURCE_HEADERS]
        attempt = attempt_of(prior) + 1
        where = [
            (REDRIVE_TOPIC, r.topic),
            (REDRIVE_PARTITION, str(r.partition)),
            (REDRIVE_OFFSET, str(r.offset)),
        ]
    else:
        source = [
            (SOURCE_TOPIC, r.topic),
            (SOURCE_PARTITION, str(r.partition)),
            (SOURCE_OFFSET, str(r.offset)),
            (SOURCE_TIMESTAMP, "" if r.timestamp_ms is None else str(r.timestamp_ms)),
        ]
        attempt, where = 1, []
    ours += source + [(GROUP, group), (ATTEMPT, str(attempt))] + where
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
        written: DeadLetterLog,
        redriving: bool = False,
    ) -> None:
        self.topic_name = topic
        self._redriving = redriving
        self._topic = app.topic(topic, key_serializer="raw", value_serializer="raw")
        self._group = group
        self._abort = abort
        self._retry = Retry(f"dead-letter topic {topic}", log, retry, is_transient=retriable)
        self._written = written
        # source partition -> offsets past the committed one that are on the DLQ already
        self._sent_before: dict[int, set[int]] = {}
        self.sent = 0
        self.not_again = 0  # found on the DLQ at assignment, not sent twice

    async def recall(self, starts: dict[int, int]) -> None:
        """On assignment: learn which records from ``starts`` on are dead letters already."""
        self._sent_before = await self._written.already_sent(starts) if starts else {}
        found = sum(len(offsets) for offsets in self._sent_before.values())
        if found:
            log.info("%d records past the committed offsets are dead letters already", found)

    async def send(self, rejections: Sequence[Rejection]) -> None:
        """Produce ``rejections`` and wait until every one is acknowledged.

        Raises DeadLetterUnwritable on an error that is not retriable, and
        Aborted when the partitions are revoked (or the worker stops) meanwhile.
        """
        pending = [
            r
            for r in rejections
            if r.record.offset not in self._sent_before.get(r.record.partition, ())
        ]
        self.not_again += len(rejections) - len(pending)

        async def attempt() -> None:
            nonlocal pending
            futures = [
                await self._topic.send(
                    key=r.record.key,
                    value=r.record.value,
                    headers=headers(r, self._group, self._redriving),
                    partition=await self._written.partition_for(r.record.partition),
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


class DeadLetterLog:
    """What one group has dead-lettered from one source topic, read back from the DLQ."""

    CHUNK = 2000  # records read per step backwards
    READ_TIMEOUT_S = 60.0

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group: str,
        source_topic: str,
        redriving: bool = False,
    ) -> None:
        self._topic = topic
        # a re-drive's source is the DLQ itself: its records are found by where they
        # were re-driven from (their source headers name the original record)
        self._where = (
            (REDRIVE_TOPIC, REDRIVE_PARTITION, REDRIVE_OFFSET)
            if redriving
            else (SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET)
        )
        self._group = group.encode()
        self._source_topic = source_topic.encode()
        self._partitions: int | None = None
        self._consumer = Consumer(
            {
                **kafka_client.confluent(bootstrap_servers),
                "group.id": f"{group}.dlq-reader",  # never joins or commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )

    async def partition_for(self, source_partition: int) -> int:
        if self._partitions is None:
            self._partitions = await asyncio.to_thread(self._count_partitions)
        return source_partition % self._partitions

    async def already_sent(self, starts: dict[int, int]) -> dict[int, set[int]]:
        """Source partition -> its offsets at or past ``starts`` that are on the DLQ."""
        by_dlq_partition: dict[int, dict[int, int]] = {}
        for p, start in starts.items():
            by_dlq_partition.setdefault(await self.partition_for(p), {})[p] = start
        found: dict[int, set[int]] = {}
        for dlq_partition, wanted in by_dlq_partition.items():
            found |= await asyncio.to_thread(self._scan_backwards, dlq_partition, wanted)
        return found

    def _count_partitions(self) -> int:
        topic = self._consumer.list_topics(self._topic, timeout=30).topics[self._topic]
        if topic.error is not None or not topic.partitions:
            raise RuntimeError(f"dead-letter topic {self._topic}: {topic.error}")
        return len(topic.partitions)

    def _scan_backwards(self, dlq_partition: int, wanted: dict[int, int]) -> dict[int, set[int]]:
        """Read back until each source partition shows a dead letter before its start.

        A group writes a partition's dead letters in offset order, going back only to
        its committed offset after a restart, so everything older is before the start.
        """
        found: dict[int, set[int]] = {p: set() for p in wanted}
        settled: set[int] = set()
        low, end = ask_kafka(
            f"cannot read the ends of {self._topic}[{dlq_partition}]",
            lambda: self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, dlq_partition), timeout=30
            ),
        )
        topic_key, partition_key, offset_key = self._where
        while end > low and settled != set(wanted):
            start = max(low, end - self.CHUNK)
            for headers in self._read(dlq_partition, start, end):
                if headers.get(GROUP) != self._group:
                    continue
                if headers.get(topic_key) != self._source_topic:
                    continue
                try:
                    p = int(headers.get(partition_key, b""))
                    offset = int(headers.get(offset_key, b""))
                except ValueError:
                    continue
                if p not in wanted:
                    continue
                if offset >= wanted[p]:
                    found[p].add(offset)
                else:
                    settled.add(p)
            end = start
        return {p: offsets for p, offsets in found.items() if offsets}

    def _read(self, dlq_partition: int, start: int, end: int) -> list[dict[str, bytes]]:
        """The headers of the records at offsets start..end-1 of one DLQ partition."""
        self._consumer.assign([TopicPartition(self._topic, dlq_partition, start)])
        out: list[dict[str, bytes]] = []
        deadline = time.monotonic() + self.READ_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                message = self._consumer.poll(1.0)
                if message is None:
                    continue
                if message.error():
                    if message.error().code() == ConfluentKafkaError._PARTITION_EOF:
                        return out
                    if message.error().fatal():
                        raise RuntimeError(f"reading {self._topic}: {message.error()}")
                    continue  # a broker away for a moment: librdkafka goes on by itself
                if message.offset() >= end:
                    return out
                out.append(dict(message.headers() or []))
                if message.offset() == end - 1:
                    return out
            raise RuntimeError(
                f"reading {self._topic}[{dlq_partition}] {start}..{end} took over "
                f"{self.READ_TIMEOUT_S:.0f}s"
            )
        finally:
            self._consumer.unassign()
