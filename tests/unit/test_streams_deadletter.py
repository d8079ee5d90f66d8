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
from clickfan.streams.deadletter import DeadLetterQueue, DeadLetterUnwritable


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


class FakeTopic:
    """send() answers with the next outcome: None (acknowledged) or an exception."""

    def __init__(self, outcome: Callable[[int], BaseException | None]) -> None:
        self.outcome = outcome
        self.sent: list[bytes | None] = []
        self.partitions: list[int] = []

    async def send(
        self, key: Any, value: bytes | None, headers: Any, partition: int
    ) -> asyncio.Future[None]:
        self.sent.append(value)
        self.partitions.append(partition)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        error = self.outcome(len(self.sent))
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
        return future


class FakeApp:
    def __init__(self, topic: FakeTopic) -> None:
        self._topic = topic

    def topic(self, name: str, **_: Any) -> FakeTopic:
        return self._topic


def _rejections(n: int) -> list[Rejection]:
    return [
        Rejection(SinkRecord("src", 0, i, None, f"v{i}".encode(), None, (), None), "not_json", "")
        for i in range(n)
    ]


class FakeWritten:
    """The DLQ as DeadLetterLog reads it: 4 partitions, and what is on it already."""

    def __init__(self, on_dlq: dict[int, set[int]] | None = None) -> None:
        self.on_dlq = on_dlq or {}

    async def partition_for(self, source_partition: int) -> int:
        return source_partition % 4

    async def already_sent(self, starts: dict[int, int]) -> dict[int, set[int]]:
        return {
            p: {o for o in self.on_dlq.get(p, set()) if o >= start} for p, start in starts.items()
        }


def _queue(
    topic: FakeTopic, abort: asyncio.Event, written: FakeWritten | None = None
) -> DeadLetterQueue:
    policy = RetryPolicy(initial_s=0.001, max_s=0.002, log_interval_s=60)
    return DeadLetterQueue(
        FakeApp(topic),  # type: ignore[arg-type]
        "src.dlq",
        "g",
        policy,
        abort,
        written or FakeWritten(),  # type: ignore[arg-type]
    )


def test_retriable_failures_are_retried_sending_only_the_failed_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the 2nd record fails twice with a retriable error, then goes through
    topic = FakeTopic(lambda n: kafka.NotEnoughReplicasError() if n in (2, 4) else None)

    async def scenario() -> DeadLetterQueue:
        dlq = _queue(topic, asyncio.Event())
        await dlq.send(_rejections(3))
        return dlq

    with caplog.at_level(logging.WARNING, logger=deadletter.__name__):
        dlq = asyncio.run(scenario())
    assert topic.sent == [b"v0", b"v1", b"v2", b"v1", b"v1"]
    assert dlq.sent == 3
    said = caplog.records[0].getMessage()
    assert "dead-letter topic src.dlq" in said and "NotEnoughReplicasError" in said


def test_a_non_retriable_failure_stops_naming_the_topic_and_the_error() -> None:
    topic = FakeTopic(lambda n: _wrapped(kafka.MessageSizeTooLargeError()) if n == 2 else None)

    async def scenario() -> None:
        await _queue(topic, asyncio.Event()).send(_rejections(3))

    with pytest.raises(DeadLetterUnwritable) as raised:
        asyncio.run(scenario())
    assert topic.sent == [b"v0", b"v1", b"v2"]  # tried once, not retried
    message = str(raised.value)
    assert "src.dlq" in message and "MessageSizeTooLargeError" in message
    assert "not retriable" in message


def test_a_revocation_ends_the_retries_with_aborted() -> None:
    topic = FakeTopic(lambda n: kafka.KafkaConnectionError())

    async def scenario() -> None:
        abort = asyncio.Event()
        send = asyncio.ensure_future(_queue(topic, abort).send(_rejections(1)))
        await asyncio.sleep(0.05)
        assert not send.done()
        abort.set()
        with pytest.raises(Aborted):
            await send

    asyncio.run(scenario())


def test_other_errors_are_not_dressed_up_as_dead_letter_failures() -> None:
    topic = FakeTopic(lambda n: ValueError("a bug"))

    async def scenario() -> None:
        await _queue(topic, asyncio.Event()).send(_rejections(1))

    with pytest.raises(ValueError):
        asyncio.run(scenario())


def test_records_found_on_the_dlq_at_assignment_are_not_sent_again() -> None:
    topic = FakeTopic(lambda n: None)

    async def scenario() -> DeadLetterQueue:
        # a worker killed before its commit had dead-lettered offsets 1 and 2 (and 0,
        # which the group committed since)
        dlq = _queue(topic, asyncio.Event(), FakeWritten({0: {0, 1, 2}}))
        await dlq.recall({0: 1})
        await dlq.send(_rejections(4))
        return dlq

    dlq = asyncio.run(scenario())
    assert topic.sent == [b"v0", b"v3"]  # 0 is before the start: a replay sends it again
    assert dlq.not_again == 2
    assert topic.partitions == [0, 0]  # a source partition's dead letters stay together
