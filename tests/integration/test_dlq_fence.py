"""The dead-letter writers are fenced on real Kafka: a group's dead letters stay once each
whatever an earlier owner of the partition does after losing it.

The soak found a record dead-lettered twice by one group (1 in 2 636): a worker paused
past its session sent a dead letter after the new owner had read the DLQ, or a send was
retried after a broker died. These tests play the earlier owner by hand, with the
project's own DeadLetterQueue and FencedWriter (and a raw transactional producer for
one that died mid-transaction), against the test's own DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from clickfan.settings import Settings
from clickfan.sinks.base import Rejection, SinkRecord
from clickfan.sinks.retry import RetryPolicy
from clickfan.streams import deadletter
from clickfan.streams.deadletter import (
    DeadLetterFenced,
    DeadLetterLog,
    DeadLetterQueue,
    FencedWriter,
    transaction_timeout_s,
    transactional_id,
)
from tests.integration import pipeline_support as ps
from tests.support import Names

TIMEOUT_S = 10.0


@pytest.fixture(autouse=True)
def _finalized() -> Iterator[None]:
    """A fenced producer leaves futures holding ProducerFenced that nobody awaits; their
    finalizers log. Run them here: run inside a later ast.parse (pytest rewriting a module
    it imports), they make CPython 3.11 raise "AST constructor recursion depth mismatch"."""
    yield
    gc.collect()


def _queue(stack: Settings, names: Names) -> DeadLetterQueue:
    group = names.es_group
    written = DeadLetterLog(
        stack.bootstrap_servers,
        names.dlq_topic,
        group,
        names.topic,
        transaction_timeout_s(TIMEOUT_S),
    )
    return DeadLetterQueue(
        names.dlq_topic,
        group,
        RetryPolicy(initial_s=0.1, max_s=1.0, log_interval_s=60),
        asyncio.Event(),
        written,
        lambda p: FencedWriter(
            stack.bootstrap_servers,
            names.dlq_topic,
            transactional_id(group, names.topic, p),
            TIMEOUT_S,
        ),
    )


def _rejections(names: Names, partition: int, offsets: range) -> list[Rejection]:
    return [
        Rejection(
            SinkRecord(names.topic, partition, o, None, b"{bad %d" % o, None, (), None),
            "not_json",
            "Expecting property name",
        )
        for o in offsets
    ]


def _on_dlq(stack: Settings, names: Names) -> list[tuple[int, int]]:
    """(source partition, offset) of each committed dead letter of the group, in DLQ order."""
    return sorted(ps.source_of(r) for r in ps.dead_letters(stack, names, names.es_group))


def test_an_owner_that_lost_the_partition_cannot_write_after_the_new_one_claimed_it(
    stack: Settings, names: Names
) -> None:
    async def scenario() -> None:
        old = _queue(stack, names)
        await old.reset({0: 0})
        await old.send(_rejections(names, 0, range(0, 5)))  # then it is paused...
        new = _queue(stack, names)
        await new.reset({0: 0})  # ...and the group gave partition 0 to another member,
        await new.send(_rejections(names, 0, range(0, 10)))  # which reads 0..9 again
        assert (new.sent, new.not_again) == (5, 5)
        # the old owner wakes up and goes on with what it had fetched
        with pytest.raises(DeadLetterFenced):
            await old.send(_rejections(names, 0, range(5, 12)))
        await new.send(_rejections(names, 0, range(10, 12)))
        await old.close()
        await new.close()

    asyncio.run(scenario())
    assert _on_dlq(stack, names) == [(0, o) for o in range(12)]


def test_a_transaction_left_open_by_a_killed_writer_is_aborted_and_never_read(
    stack: Settings, names: Names
) -> None:
    group = names.es_group

    async def scenario() -> None:
        # a writer killed while its transaction was open: offsets 3 and 4 sent, no commit
        dead = AIOKafkaProducer(
            bootstrap_servers=stack.bootstrap_servers,
            transactional_id=transactional_id(group, names.topic, 1),
            enable_idempotence=True,
        )
        await dead.start()
        await dead.begin_transaction()
        for r in _rejections(names, 1, range(3, 5)):
            await (
                await dead.send(
                    names.dlq_topic,
                    value=r.record.value,
                    partition=1 % stack.partitions,
                    headers=deadletter.headers(r, group),
                )
            )
        # never committed nor aborted: as if the process was killed here
        new = _queue(stack, names)
        await new.reset({1: 3})
        await new.send(_rejections(names, 1, range(3, 6)))
        assert (new.sent, new.not_again) == (3, 0)  # the aborted ones are not "on the DLQ"
        await new.close()
        with contextlib.suppress(Exception):  # fenced by now: it cannot even say goodbye
            await dead.stop()

    asyncio.run(scenario())
    assert _on_dlq(stack, names) == [(1, 3), (1, 4), (1, 5)]


def test_a_claim_reads_the_dlq_only_once_other_writers_transactions_have_ended(
    stack: Settings, names: Names
) -> None:
    """Source partitions p and p + N share a DLQ partition (N: its partition count). A
    dead letter of p committed after a transaction of p + N began is not visible to a
    read_committed reader until that transaction ends: the claim must wait for it."""
    group = names.es_group
    shared = stack.partitions  # partition N shares DLQ partition 0 with partition 0

    async def scenario() -> None:
        before = _queue(stack, names)  # partition 0's owner, whose claim is done
        await before.reset({0: 6})
        await before.send(_rejections(names, 0, range(6, 7)))
        other = AIOKafkaProducer(
            bootstrap_servers=stack.bootstrap_servers,
            transactional_id=transactional_id(group, names.topic, shared),
            enable_idempotence=True,
        )
        await other.start()
        await other.begin_transaction()
        (first,) = _rejections(names, shared, range(0, 1))
        await (
            await other.send(
                names.dlq_topic, value=b"x", partition=0, headers=deadletter.headers(first, group)
            )
        )
        # meanwhile partition 0's owner dead-letters offset 7, and is then killed
        await before.send(_rejections(names, 0, range(7, 8)))
        await before.close()
        # the other transaction ends 3 s after partition 0's next owner claims it
        loop = asyncio.get_running_loop()
        threading.Timer(
            3.0, lambda: asyncio.run_coroutine_threadsafe(other.commit_transaction(), loop)
        ).start()
        started = time.monotonic()
        after = _queue(stack, names)
        await after.reset({0: 7})
        await after.send(_rejections(names, 0, range(7, 9)))
        waited = time.monotonic() - started
        print(f"the claim waited {waited:.1f}s for the other transaction to end")
        assert (after.sent, after.not_again) == (1, 1)
        await after.close()
        await other.stop()

    asyncio.run(scenario())
    assert _on_dlq(stack, names) == [(0, 6), (0, 7), (0, 8), (shared, 0)]
