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

A group's dead letters from one source partition are written by one fenced writer
at a time, in Kafka transactions (FencedWriter below): its
transactional id names the group, the source topic and the partition, so the
worker that takes a partition over claims that id, and the broker then refuses
every later write of the member that had it (a worker paused past its session,
say) and aborts what it left open. Only then does the new owner read the DLQ
(read_committed, once every transaction before its claim has ended) to find which
records past the group's committed offset are dead letters already, and does not
send them twice: once per group, even with a zombie or a send retried after a
broker died. Readers of the DLQ therefore read it read_committed (aborted
attempts are never shown). Each source partition's dead letters go to one DLQ
partition (source partition modulo the DLQ's partition count).

A send counts as done only when its transaction committed (acks=all); until
then the source offset is not handled and is not committed. A failed send is
judged by the Kafka error's own ``retriable`` flag: a retriable one (no leader,
not enough replicas, the topic unknown for now, brokers unreachable) is retried
with backoff while the offsets are held and a line per interval names the topic
and the error; any other (message too large for the topic, not authorized)
raises DeadLetterUnwritable, and the worker exits non-zero without committing
past the record. A writer fenced by another member raises DeadLetterFenced:
the worker exits non-zero and is restarted, since the partition has moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, ProducerFenced
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import KafkaError as ConfluentKafkaError

from clickfan import kafka_client
from clickfan.errors import ClickfanError
from clickfan.sinks.base import Rejection
from clickfan.sinks.retry import Retry, RetryPolicy
from clickfan.streams.positions import ask_kafka

log = logging.getLogger(__name__)
T = TypeVar("T")

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


class DeadLetterFenced(ClickfanError):
    """Another member claimed a partition's dead-letter writer: this worker lost it."""


# key, value, headers of one dead letter
Letter = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


class DeadLetterWriter(Protocol):
    async def start(self) -> None:
        """Claim the writer's transactional id: fences every earlier writer of it."""

    async def write(self, letters: Sequence[Letter], partition: int) -> None:
        """Write ``letters`` to the DLQ partition in one transaction, all or none."""

    async def stop(self) -> None: ...


class FencedWriter:
    """A transactional producer for one source partition's dead letters.

    Its transactional id is the same for every member of the group that ever owns
    the partition, so starting it (InitProducerId) bumps the id's epoch: the broker
    aborts the transaction the last owner left open and refuses its later writes
    and commits (ProducerFenced).
    """

    def __init__(
        self, bootstrap_servers: str, topic: str, transactional_id: str, timeout_s: float
    ) -> None:
        self._topic = topic
        self._timeout_s = timeout_s
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            transactional_id=transactional_id,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=int(timeout_s * 1000),
            # a transaction left open by a writer that died ends by itself after this
            transaction_timeout_ms=int(transaction_timeout_s(timeout_s) * 1000),
            **kafka_client.active().aiokafka(),
        )

    async def start(self) -> None:
        await self._bounded(self._producer.start(), "claiming the dead-letter writer")

    async def write(self, letters: Sequence[Letter], partition: int) -> None:
        await self._producer.begin_transaction()
        try:
            futures = [
                await self._producer.send(
                    self._topic, value=value, key=key, partition=partition, headers=headers
                )
                for key, value, headers in letters
            ]
            await self._bounded(asyncio.gather(*futures), "sending dead letters")
            await self._bounded(self._producer.commit_transaction(), "committing dead letters")
        except BaseException:
            # nothing of it is ever read (read_committed); a writer that cannot even
            # abort is dropped by the queue, and the next claim aborts it
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.abort_transaction(), self._timeout_s)
            raise

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._producer.stop(), self._timeout_s)

    async def _bounded(self, step: Awaitable[object], what: str) -> None:
        try:
            await asyncio.wait_for(step, self._timeout_s)
        except TimeoutError:
            # as a send that timed out in the client: retriable (see retriable)
            raise KafkaTimeoutError(f"{what} took over {self._timeout_s:g}s") from None


def transaction_timeout_s(request_timeout_s: float) -> float:
    """How long a dead-letter transaction may stay open: a send's whole retry budget."""
    return max(10.0, 2 * request_timeout_s)


def transactional_id(group: str, source_topic: str, partition: int) -> str:
    """The id every owner of ``partition`` uses for its dead letters (':' is in no topic
    name, so a worker's ids and a re-drive's, whose source is the DLQ, never meet)."""
    return f"{group}.dlq-writer:{source_topic}:{partition}"


class DeadLetterQueue:
    def __init__(
        self,
        topic: str,
        group: str,
        retry: RetryPolicy,
        abort: asyncio.Event,
        written: DeadLetterLog,
        new_writer: Callable[[int], DeadLetterWriter],
        redriving: bool = False,
    ) -> None:
        self.topic_name = topic
        self._redriving = redriving
        self._group = group
        self._abort = abort
        self._retry = Retry(f"dead-letter topic {topic}", log, retry, is_transient=retriable)
        self._written = written
        self._new_writer = new_writer  # source partition -> its (unstarted) fenced writer
        self._writers: dict[int, DeadLetterWriter] = {}  # claimed since the last assignment
        self._starts: dict[int, int] = {}  # source partition -> committed offset at assignment
        # source partition -> offsets at or past its start that are on the DLQ already
        self._sent_before: dict[int, set[int]] = {}
        self.sent = 0
        self.not_again = 0  # found on the DLQ (sent before), not sent twice

    async def reset(self, starts: dict[int, int]) -> None:
        """On assignment: the partitions' reading starts at ``starts``. Every writer is
        claimed again (lazily, on a partition's first dead letter): another member may
        have owned a partition since, and written to the DLQ meanwhile."""
        await self.stop()
        self._starts = dict(starts)
        self._sent_before = {}

    async def stop(self) -> None:
        """Let go of every writer (they are claimed again when next needed)."""
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            await writer.stop()

    async def close(self) -> None:
        """The worker stops: the writers and the DLQ's readers."""
        await self.stop()
        await asyncio.to_thread(self._written.close)

    async def send(self, rejections: Sequence[Rejection]) -> None:
        """Write ``rejections`` to the DLQ once each, and return when they are committed.

        Raises DeadLetterUnwritable on an error that is not retriable,
        DeadLetterFenced when another member took a partition's writer over, and
        Aborted when the partitions are revoked (or the worker stops) meanwhile.
        """
        by_partition: dict[int, list[Rejection]] = {}
        for r in rejections:
            by_partition.setdefault(r.record.partition, []).append(r)
        for partition, theirs in by_partition.items():
            await self._send_partition(partition, theirs)

    async def _send_partition(self, partition: int, rejections: list[Rejection]) -> None:
        async def attempt() -> None:
            writer = await self._claim(partition)
            done = self._sent_before.setdefault(partition, set())
            pending = [r for r in rejections if r.record.offset not in done]
            self.not_again += len(rejections) - len(pending)
            rejections[:] = pending  # counted once, whatever the retries
            if not pending:
                return
            letters = [
                (r.record.key, r.record.value, headers(r, self._group, self._redriving))
                for r in pending
            ]
            try:
                await writer.write(letters, await self._written.partition_for(partition))
            except ProducerFenced:
                await self._drop(partition)
                raise DeadLetterFenced(
                    f"another member of {self._group} took over the dead letters of "
                    f"partition {partition} (this worker was paused or cut off past its "
                    "session): stopping, so that it starts again clean"
                ) from None
            except BaseException:
                await self._drop(partition)  # claimed anew, and the DLQ read again, next time
                raise
            done.update(r.record.offset for r in pending)
            self.sent += len(pending)

        try:
            await self._retry.call(
                attempt, f"dead-lettering {len(rejections)} records", self._abort
            )
        except Exception as exc:
            error = kafka_error(exc)
            if error is None:
                raise  # not Kafka's answer (Aborted, fenced, or a bug): as it is
            what = getattr(error, "description", "") or str(error)
            raise DeadLetterUnwritable(
                f"cannot write to the dead-letter topic {self.topic_name}: "
                f"{type(error).__name__}, not retriable ({what}); the records it was for "
                "stay uncommitted: fix the topic, then start the worker again"
            ) from exc

    async def _claim(self, partition: int) -> DeadLetterWriter:
        writer = self._writers.get(partition)
        if writer is not None:
            return writer
        writer = self._new_writer(partition)
        start = self._starts.get(partition, 0)
        try:
            await writer.start()  # from here on no earlier owner adds to the DLQ
            found = await self._written.already_sent(partition, start)
        except BaseException:
            await writer.stop()  # claimed (and the DLQ read) again on the next try
            raise
        self._writers[partition] = writer
        if found:
            log.info(
                "partition %d: %d records past offset %d are dead letters already",
                partition,
                len(found),
                start,
            )
        self._sent_before[partition] = found
        return writer

    async def _drop(self, partition: int) -> None:
        writer = self._writers.pop(partition, None)
        if writer is not None:
            await writer.stop()


class DeadLetterTopicUnreadable(KafkaError):
    """The DLQ could not be read back (deleted for now, a broker away): retried as a send
    that failed, with the offsets held."""

    retriable = True


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
        transaction_timeout_s: float,
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
        # a transaction left open (its writer killed) ends within this
        self._stable_within_s = transaction_timeout_s + 10.0

        def consumer(isolation: str) -> Consumer:
            return Consumer(
                {
                    **kafka_client.confluent(bootstrap_servers),
                    "group.id": f"{group}.dlq-reader",  # never joins or commits
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "isolation.level": isolation,
                }
            )

        # committed dead letters only; its end is the last stable offset (LSO)
        self._consumer = consumer("read_committed")
        self._uncommitted = consumer("read_uncommitted")  # asked for the end (high watermark)

    def close(self) -> None:
        self._consumer.close()
        self._uncommitted.close()

    async def partition_for(self, source_partition: int) -> int:
        if self._partitions is None:
            self._partitions = await self._in_thread(self._count_partitions)
        return source_partition % self._partitions

    async def already_sent(self, source_partition: int, start: int) -> set[int]:
        """The offsets of ``source_partition`` at or past ``start`` that are on the DLQ."""
        dlq_partition = await self.partition_for(source_partition)
        return await self._in_thread(self._scan_backwards, dlq_partition, source_partition, start)

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except RuntimeError as exc:
            raise DeadLetterTopicUnreadable(str(exc)) from None

    def _count_partitions(self) -> int:
        topic = self._consumer.list_topics(self._topic, timeout=30).topics[self._topic]
        if topic.error is not None or not topic.partitions:
            raise RuntimeError(f"dead-letter topic {self._topic}: {topic.error}")
        return len(topic.partitions)

    def _stable_end(self, dlq_partition: int) -> tuple[int, int]:
        """(log start, end) of a DLQ partition once every transaction begun before now has
        ended: other partitions' writers share it, and a dead letter of ours committed
        after one of theirs that is still open would not be visible yet."""
        tp = TopicPartition(self._topic, dlq_partition)
        what = f"cannot read the ends of {self._topic}[{dlq_partition}]"
        _, end = ask_kafka(what, lambda: self._uncommitted.get_watermark_offsets(tp, timeout=30))
        deadline = time.monotonic() + self._stable_within_s
        while True:
            low, stable = ask_kafka(
                what, lambda: self._consumer.get_watermark_offsets(tp, timeout=30)
            )
            if stable >= end:
                return low, stable
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self._topic}[{dlq_partition}] holds a transaction open since before "
                    f"offset {stable} for over {self._stable_within_s:.0f}s"
                )
            time.sleep(0.2)

    def _scan_backwards(self, dlq_partition: int, source_partition: int, start: int) -> set[int]:
        """Read back until the source partition shows a dead letter before its start.

        A group writes a partition's dead letters in offset order, going back only to
        its committed offset after a restart, so everything older is before the start.
        """
        found: set[int] = set()
        settled = False  # a dead letter before the start was seen: no need to go further back
        low, end = self._stable_end(dlq_partition)
        topic_key, partition_key, offset_key = self._where
        while end > low and not settled:
            begin = max(low, end - self.CHUNK)
            for headers in self._read(dlq_partition, begin, end):
                if headers.get(GROUP) != self._group:
                    continue
                if headers.get(topic_key) != self._source_topic:
                    continue
                try:
                    p = int(headers.get(partition_key, b""))
                    offset = int(headers.get(offset_key, b""))
                except ValueError:
                    continue
                if p != source_partition:
                    continue
                if offset >= start:
                    found.add(offset)
                else:
                    settled = True  # (the rest of this chunk is read: it runs forwards)
            end = begin
        return found

    def _read(self, dlq_partition: int, start: int, end: int) -> list[dict[str, bytes]]:
        """The headers of the committed records at offsets start..end-1 of a DLQ partition."""
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
