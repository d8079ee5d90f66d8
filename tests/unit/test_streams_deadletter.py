"""Dead-letter sends: judged by the Kafka error's own retriable flag, never dropped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import errors as kafka
from faust.exceptions import ProducerSendError

from clickfan.sinks.base import Aborted, Rejection, SinkRecord
from clickfan.sinks.retry import RetryPolicy
from clickfan.streams import deadletter
from clickfan.streams.deadletter import DeadLetterFenced, DeadLetterQueue, DeadLetterUnwritable


def _wrapped(error: kafka.KafkaError) -> ProducerSendError:
    # what Faust raises when aiokafka's send() fails
    try:
        raise ProducerSendError(f"Error while sending: {error!r}") from error
    except ProducerSendError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "retriable"),
    [
        (kafka.NotEnoughReplicasError(), True),
        (kafka.LeaderNotAvailableError(), True),
        (kafka.KafkaConnectionError(), True),
        (kafka.RequestTimedOutError(), True),
        (kafka.KafkaTimeoutError(), True),  # a batch expired waiting for a leader
        (_wrapped(kafka.UnknownTopicOrPartitionError()), True),  # topic gone for now
        (kafka.MessageSizeTooLargeError(), False),
        (_wrapped(kafka.MessageSizeTooLargeError()), False),
        (kafka.TopicAuthorizationFailedError(), False),
        (kafka.InvalidTopicError(), False),
        (KeyError("a bug"), False),
    ],
)
def test_retriable_by_the_kafka_errors_own_flag(exc: BaseException, retriable: bool) -> None:
    assert deadletter.retriable(exc) is retriable


class FakeWriter:
    """One fenced writer: write() commits all its letters, or fails as a whole with the
    first error ``outcome`` gives for them (numbered across every writer of the test)."""

    def __init__(self, world: FakeWorld, partition: int) -> None:
        self.world = world
        self.partition = partition

    async def start(self) -> None:
        self.world.events.append(("claim", self.partition))

    async def write(self, letters: Any, partition: int) -> None:
        errors = []
        for _, value, _ in letters:
            self.world.tried.append(value)
            error = self.world.outcome(len(self.world.tried))
            if error is not None:
                errors.append(error)
        if errors:
            raise errors[0]
        self.world.committed.extend(value for _, value, _ in letters)
        self.world.dlq_partitions.append(partition)

    async def stop(self) -> None:
        self.world.events.append(("stop", self.partition))


class FakeWorld:
    """The writers, and the DLQ as DeadLetterLog reads it (4 partitions)."""

    def __init__(
        self,
        outcome: Callable[[int], BaseException | None] = lambda n: None,
        on_dlq: dict[int, set[int]] | None = None,
    ) -> None:
        self.outcome = outcome
        self.on_dlq = on_dlq or {}
        self.tried: list[bytes | None] = []
        self.committed: list[bytes | None] = []
        self.dlq_partitions: list[int] = []
        self.events: list[tuple[str, int]] = []  # claims, scans and stops, in order

    async def partition_for(self, source_partition: int) -> int:
        return source_partition % 4

    async def already_sent(self, source_partition: int, start: int) -> set[int]:
        self.events.append(("scan", source_partition))
        return {o for o in self.on_dlq.get(source_partition, set()) if o >= start}


def _rejections(n: int, partition: int = 0) -> list[Rejection]:
    return [
        Rejection(
            SinkRecord("src", partition, i, None, f"v{i}".encode(), None, (), None), "not_json", ""
        )
        for i in range(n)
    ]


def _queue(world: FakeWorld, abort: asyncio.Event) -> DeadLetterQueue:
    policy = RetryPolicy(initial_s=0.001, max_s=0.002, log_interval_s=60)
    return DeadLetterQueue(
        "src.dlq",
        "g",
        policy,
        abort,
        world,  # type: ignore[arg-type]
        lambda partition: FakeWriter(world, partition),
    )


def test_a_failed_transaction_is_retried_whole_and_claimed_anew(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the 2nd record fails in the first transaction, so the whole first try is undone
    world = FakeWorld(lambda n: kafka.NotEnoughReplicasError() if n == 2 else None)

    async def scenario() -> DeadLetterQueue:
        dlq = _queue(world, asyncio.Event())
        await dlq.reset({0: 0})
        await dlq.send(_rejections(3))
        return dlq

    with caplog.at_level(logging.WARNING, logger=deadletter.__name__):
        dlq = asyncio.run(scenario())
    assert world.tried == [b"v0", b"v1", b"v2", b"v0", b"v1", b"v2"]
    assert world.committed == [b"v0", b"v1", b"v2"]
    assert dlq.sent == 3
    # a failed writer is dropped; the next try claims the id again and reads the DLQ again
    assert world.events == [("claim", 0), ("scan", 0), ("stop", 0), ("claim", 0), ("scan", 0)]
    said = caplog.records[0].getMessage()
    assert "dead-letter topic src.dlq" in said and "NotEnoughReplicasError" in said


def test_a_non_retriable_failure_stops_naming_the_topic_and_the_error() -> None:
    world = FakeWorld(lambda n: _wrapped(kafka.MessageSizeTooLargeError()) if n == 2 else None)

    async def scenario() -> None:
        await _queue(world, asyncio.Event()).send(_rejections(3))

    with pytest.raises(DeadLetterUnwritable) as raised:
        asyncio.run(scenario())
    assert world.tried == [b"v0", b"v1", b"v2"]  # tried once, not retried
    assert world.committed == []
    message = str(raised.value)
    assert "src.dlq" in message and "MessageSizeTooLargeError" in message
    assert "not retriable" in message


def test_a_fenced_writer_stops_the_worker_without_writing() -> None:
    world = FakeWorld(lambda n: kafka.ProducerFenced())

    async def scenario() -> None:
        await _queue(world, asyncio.Event()).send(_rejections(2))

    with pytest.raises(DeadLetterFenced) as raised:
        asyncio.run(scenario())
    assert world.committed == [] and world.tried == [b"v0", b"v1"]  # not retried
    assert "took over the dead letters of partition 0" in str(raised.value)
    assert world.events[-1] == ("stop", 0)


def test_a_revocation_ends_the_retries_with_aborted() -> None:
    world = FakeWorld(lambda n: kafka.KafkaConnectionError())

    async def scenario() -> None:
        abort = asyncio.Event()
        send = asyncio.ensure_future(_queue(world, abort).send(_rejections(1)))
        await asyncio.sleep(0.05)
        assert not send.done()
        abort.set()
        with pytest.raises(Aborted):
            await send

    asyncio.run(scenario())
    assert world.committed == []


def test_other_errors_are_not_dressed_up_as_dead_letter_failures() -> None:
    world = FakeWorld(lambda n: ValueError("a bug"))

    async def scenario() -> None:
        await _queue(world, asyncio.Event()).send(_rejections(1))

    with pytest.raises(ValueError):
        asyncio.run(scenario())


def test_the_dlq_is_read_after_the_claim_and_what_is_there_is_not_sent_again() -> None:
    async def scenario() -> DeadLetterQueue:
        # a worker killed before its commit had dead-lettered offsets 1 and 2 (and 0,
        # which the group committed since)
        world = FakeWorld(on_dlq={0: {0, 1, 2}})
        dlq = _queue(world, asyncio.Event())
        await dlq.reset({0: 1})
        await dlq.send(_rejections(4))
        await dlq.send(_rejections(4))  # read again after a seek back: nothing twice
        assert world.committed == [b"v0", b"v3"]  # 0 is before the start: a replay sends it
        # claimed once, before the read, until the next assignment
        assert world.events == [("claim", 0), ("scan", 0)]
        assert world.dlq_partitions == [0]  # a source partition's dead letters stay together
        return dlq

    dlq = asyncio.run(scenario())
    assert dlq.not_again == 2 + 4


def test_each_assignment_claims_every_writer_again() -> None:
    async def scenario() -> FakeWorld:
        world = FakeWorld()
        dlq = _queue(world, asyncio.Event())
        await dlq.reset({0: 0, 5: 0})
        await dlq.send(_rejections(1, partition=0) + _rejections(1, partition=5))
        await dlq.reset({0: 1})
        await dlq.send(_rejections(2, partition=0)[1:])  # the pipeline starts at 1 now
        await dlq.stop()
        return world

    world = asyncio.run(scenario())
    assert world.events == [
        ("claim", 0),
        ("scan", 0),
        ("claim", 5),
        ("scan", 5),
        ("stop", 0),
        ("stop", 5),
        ("claim", 0),
        ("scan", 0),
        ("stop", 0),
    ]
    assert world.dlq_partitions == [0, 1, 0]  # source partition modulo the DLQ's 4
    assert world.committed == [b"v0", b"v0", b"v1"]


def test_transactional_ids_are_one_per_group_source_and_partition() -> None:
    ids = {
        deadletter.transactional_id("g", "click-logs", 0),
        deadletter.transactional_id("g", "click-logs", 1),
        deadletter.transactional_id("g", "click-logs.dlq", 0),
        deadletter.transactional_id("h", "click-logs", 0),
    }
    assert len(ids) == 4
    assert all(i.startswith(("g.", "h.")) for i in ids)  # under the group's ACL prefix
