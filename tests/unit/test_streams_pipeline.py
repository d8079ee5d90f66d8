"""SinkPipeline with a fake app and a fake sink: what it commits, when, and what it drops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from clickfan.events import encode_event
from clickfan.generators.events import EventGenerator
from clickfan.sinks.base import Aborted, Rejection, Sink, SinkRecord
from clickfan.streams.pipeline import SinkPipeline

TOPIC = "clicks"
EVENTS = EventGenerator(7, start_time=datetime(2026, 1, 1, tzinfo=UTC)).take(50)


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TP, int]] = []
        self.seeks: list[tuple[TP, int]] = []
        self.accept = True

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        self.commits.append(dict(offsets))
        return self.accept


class FakeApp:
    def __init__(self) -> None:
        self.consumer = FakeConsumer()
        self.consumer_generation_id = 1


class FakeSink(Sink):
    """Keeps what it was given; flush() returns ``safe`` (or the next offsets of what it got)."""

    def __init__(self, abort: asyncio.Event) -> None:
        self.abort = abort
        self.put_records: list[SinkRecord] = []
        self.safe: dict[int, int] | None = None
        self.down = False  # flush waits like a sink retrying a down system
        self.flushes: list[bool] = []
        self.closed: list[set[int]] = []
        self.opened: list[set[int]] = []

    async def open(self, partitions: set[int]) -> None:
        self.opened.append(set(partitions))

    async def put(self, records: Sequence[SinkRecord]) -> None:
        self.put_records.extend(records)

    async def flush(self, force: bool = False) -> dict[int, int]:
        self.flushes.append(force)
        if self.down:
            await self.abort.wait()
            raise Aborted("flushing on the fake sink")
        if self.safe is not None:
            return self.safe
        offsets: dict[int, int] = {}
        for r in self.put_records:
            offsets[r.partition] = max(offsets.get(r.partition, 0), r.offset + 1)
        return offsets

    async def close(self, partitions: set[int]) -> None:
        self.closed.append(set(partitions))

    async def stop(self) -> None:
        pass


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent = 0
        self.not_again = 0
        self.resets: list[dict[int, int]] = []  # the starts each assignment told
        self.rejections: list[Rejection] = []

    async def send(self, rejections: Sequence[Rejection]) -> None:
        self.rejections.extend(rejections)
        self.sent += len(rejections)

    async def reset(self, starts: dict[int, int]) -> None:
        self.resets.append(dict(starts))


def event(partition: int, offset: int, value: bytes | None = None, generation: int = 1) -> Any:
    if value is None:
        value = encode_event(EVENTS[offset % len(EVENTS)])
    message = SimpleNamespace(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=None,
        value=value,
        timestamp=1.0,
        headers=None,
        generation_id=generation,
    )
    return message


class FakePositions:
    """The broker as the pipeline asks it: committed offsets, and where records are."""

    def __init__(self) -> None:
        self.committed: dict[int, int] = {}
        self.holes: set[tuple[int, int]] = set()  # (partition, offset) with no record

    async def starting(self, partitions: set[int]) -> dict[int, int]:
        return {p: self.committed.get(p, 0) for p in partitions}

    async def first_offset(self, partition: int, offset: int) -> int | None:
        while (partition, offset) in self.holes:
            offset += 1
        return offset


class Harness:
    def __init__(self) -> None:
        self.positions = FakePositions()
        self.app = FakeApp()
        self.abort = asyncio.Event()
        self.sink = FakeSink(self.abort)
        self.dlq = FakeDeadLetters()
        self.pipeline = SinkPipeline(
            self.app,  # type: ignore[arg-type]
            TOPIC,
            self.sink,
            self.dlq,  # type: ignore[arg-type]
            self.abort,
            max_event_bytes=65536,
            log=logging.getLogger("test.pipeline"),
            positions=self.positions,
        )

    @property
    def commits(self) -> list[dict[TP, int]]:
        return self.app.consumer.commits

    async def assign(self, *partitions: int) -> None:
        await self.pipeline.on_assigned({TP(TOPIC, p) for p in partitions} | {TP("other", 0)})

    async def revoke(self, *partitions: int) -> None:
        await self.pipeline.on_revoked({TP(TOPIC, p) for p in partitions})

    async def process(self, messages: Sequence[Any]) -> None:
        """One batch prepared and written, waiting for both (take() without the overlap)."""
        await self.pipeline.write(await self.pipeline.prepare(messages))


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def test_commits_exactly_what_flush_returned() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0, 1)
        h.sink.safe = {0: 2}  # the sink made only partition 0 up to offset 1 durable
        await h.process([event(0, 0), event(0, 1), event(1, 0)])
        assert h.commits == [{TP(TOPIC, 0): 2}]
        assert [r.offset for r in h.sink.put_records] == [0, 1, 0]
        h.sink.safe = {}  # nothing became durable: nothing to commit
        await h.process([event(1, 1)])
        assert h.commits == [{TP(TOPIC, 0): 2}]

    run(scenario)


def test_invalid_records_are_dead_lettered_before_the_sink_and_still_committed() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        await h.process([event(0, 0), event(0, 1, value=b"not json"), event(0, 2)])
        assert [(r.record.offset, r.reason) for r in h.dlq.rejections] == [(1, "not_json")]
        # the sink gets every record (the invalid one as event None) and the offsets move on
        assert [(r.offset, r.event is None) for r in h.sink.put_records] == [
            (0, False),
            (1, True),
            (2, False),
        ]
        assert h.commits == [{TP(TOPIC, 0): 3}]

    run(scenario)


def test_nothing_is_committed_for_a_revoked_partition() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0, 1)
        await h.revoke(1)
        assert h.sink.closed == [{1}]
        # records of partition 1 fetched before the revocation are not even handed over
        await h.process([event(0, 0), event(1, 0)])
        assert [r.partition for r in h.sink.put_records] == [0]
        # and should a sink report it anyway, its offset is not committed
        h.sink.safe = {0: 1, 1: 1}
        await h.process([event(0, 1)])
        assert all(TP(TOPIC, 1) not in c for c in h.commits)
        assert h.commits[-1] == {TP(TOPIC, 0): 1}

    run(scenario)


def test_revocation_aborts_a_flush_waiting_for_a_down_sink() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        h.sink.down = True
        batch = asyncio.ensure_future(h.process([event(0, 0), event(0, 1)]))
        await asyncio.sleep(0.01)
        assert not batch.done()  # held while the sink is down
        await h.revoke(0)
        await asyncio.wait_for(batch, 1)  # gave up: Aborted is handled, not raised
        assert h.commits == []
        assert h.sink.closed == [{0}]
        # a new assignment clears the abort, so the next owner's work is not given up
        h.sink.down = False
        await h.assign(0)
        assert not h.abort.is_set()

    run(scenario)


def test_records_fetched_in_an_older_generation_are_dropped_and_counted() -> None:
    async def scenario() -> None:
        h = Harness()
        h.positions.committed = {0: 1}  # the group is past offset 0
        await h.assign(0)
        h.app.consumer_generation_id = 2
        await h.process([event(0, 0, generation=1), event(0, 1, generation=2)])
        assert [r.offset for r in h.sink.put_records] == [1]
        assert h.pipeline.stale == 1
        await h.process([event(0, 2, generation=1)])  # nothing current: no flush
        assert h.sink.flushes == [False]
        assert h.pipeline.stale == 2

    run(scenario)


def test_stats_line_shows_the_dropped_count(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        h = Harness()
        h.positions.committed = {0: 1}  # the group is past offset 0
        await h.assign(0)
        h.app.consumer_generation_id = 2
        await h.process([event(0, 0, generation=1), event(0, 1, value=b"{", generation=2)])
        with caplog.at_level(logging.INFO, logger="test.pipeline"):
            h.pipeline.log_stats()
        line = caplog.records[-1].getMessage()
        assert line.startswith("1 records handled")
        assert (
            "1 dead-lettered (0 found there already), 1 dropped as fetched before a rebalance"
            in line
        )

    run(scenario)


def test_drain_flushes_everything_and_commits_then_takes_no_more() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        h.sink.safe = {}
        await h.process([event(0, 0), event(0, 1)])
        assert h.commits == []
        h.sink.safe = None
        await h.pipeline.drain()
        assert h.sink.flushes[-1] is True  # force: everything buffered
        assert h.commits == [{TP(TOPIC, 0): 2}]
        await h.process([event(0, 2)])
        await h.pipeline.tick()
        assert [r.offset for r in h.sink.put_records] == [0, 1]
        assert len(h.commits) == 1

    run(scenario)


def test_stop_now_makes_a_waiting_flush_give_up() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        h.sink.down = True
        batch = asyncio.ensure_future(h.process([event(0, 0)]))
        await asyncio.sleep(0.01)
        h.pipeline.stop_now()
        await asyncio.wait_for(batch, 1)
        assert h.commits == []

    run(scenario)


def test_a_refused_commit_is_not_an_error() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        h.app.consumer.accept = False  # the group is rebalancing
        await h.process([event(0, 0)])
        assert h.commits == [{TP(TOPIC, 0): 1}]

    run(scenario)


def test_a_sink_error_that_is_not_an_abort_escapes() -> None:
    class Broken(FakeSink):
        async def flush(self, force: bool = False) -> dict[int, int]:
            raise KeyError("a bug")

    async def scenario() -> None:
        h = Harness()
        h.pipeline._sink = Broken(h.abort)
        await h.assign(0)
        with pytest.raises(KeyError):
            await h.process([event(0, 0)])
        assert h.commits == []

    run(scenario)


def test_a_batch_that_starts_past_the_sinks_position_seeks_back_instead_of_skipping() -> None:
    async def scenario() -> None:
        h = Harness()
        h.positions.committed = {0: 100}
        await h.assign(0)
        # Faust went on from where it had read before the rebalance: 100..149 never came
        await h.process([event(0, 150), event(0, 151)])
        assert h.sink.put_records == [] and h.commits == []
        assert h.app.consumer.seeks == [(TP(TOPIC, 0), 100)]
        # read again from 100: handed over in order, committed without a gap
        await h.process([event(0, o) for o in range(100, 152)])
        assert [r.offset for r in h.sink.put_records] == list(range(100, 152))
        assert h.commits == [{TP(TOPIC, 0): 152}]
        # what arrives again below the position is not handed over twice
        await h.process([event(0, 151), event(0, 152)])
        assert [r.offset for r in h.sink.put_records][-2:] == [151, 152]
        assert h.pipeline.repeated == 1

    run(scenario)


def test_offsets_that_hold_no_record_on_the_broker_are_passed_over() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        h.positions.holes = {(0, 2)}  # a transaction marker
        await h.process([event(0, 0), event(0, 1), event(0, 3), event(0, 4)])
        assert [r.offset for r in h.sink.put_records] == [0, 1, 3, 4]
        assert h.app.consumer.seeks == []
        assert h.commits == [{TP(TOPIC, 0): 5}]

    run(scenario)


def test_each_assignment_starts_again_from_what_the_group_committed() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        await h.process([event(0, 0), event(0, 1)])
        await h.revoke(0)
        h.positions.committed = {0: 1}  # say only offset 0 was committed before
        await h.assign(0)
        await h.process([event(0, 2)])  # Faust did not rewind: 1 is missing
        assert h.app.consumer.seeks == [(TP(TOPIC, 0), 1)]
        # the dead-letter writers start again from the same starts, each assignment
        assert h.dlq.resets[-1] == {0: 1}

    run(scenario)


def test_a_batch_prepared_before_a_rebalance_is_not_written_after_it() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        batch = await h.pipeline.prepare([event(0, 0), event(0, 1)])
        await h.revoke(0)
        await h.assign(0)  # same partition back, nothing committed
        await h.pipeline.write(batch)
        assert h.sink.put_records == [] and h.commits == []
        assert h.pipeline.stale == 2
        await h.process([event(0, 0), event(0, 1)])  # read again from 0
        assert [r.offset for r in h.sink.put_records] == [0, 1]
        assert h.commits == [{TP(TOPIC, 0): 2}]

    run(scenario)


def test_prepare_touches_no_sink_and_checks_against_what_is_prepared_already() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        first = await h.pipeline.prepare([event(0, 0), event(0, 1)])
        second = await h.pipeline.prepare([event(0, 2)])  # continues the first
        assert h.sink.put_records == [] and h.sink.flushes == []
        await h.pipeline.write(first)
        await h.pipeline.write(second)
        assert [r.offset for r in h.sink.put_records] == [0, 1, 2]
        assert h.commits == [{TP(TOPIC, 0): 2}, {TP(TOPIC, 0): 3}]

    run(scenario)


def test_a_dropped_write_drops_the_batches_prepared_after_it_and_reads_again() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        await h.process([event(0, 0)])
        first = await h.pipeline.prepare([event(0, 1), event(0, 2)])
        second = await h.pipeline.prepare([event(0, 3)])  # continues the first
        h.app.consumer_generation_id = 2  # a new generation, its assignment not seen yet
        await h.pipeline.write(first)
        await h.pipeline.write(second)  # would leave a gap at 1..2: dropped as well
        assert [r.offset for r in h.sink.put_records] == [0]
        assert h.pipeline.stale == 3
        h.positions.committed = {0: 1}
        # the next batch is checked against the committed offset again: seek back to 1
        await h.process([event(0, 4, generation=2)])
        assert h.app.consumer.seeks == [(TP(TOPIC, 0), 1)]
        await h.process([event(0, o, generation=2) for o in range(1, 5)])
        assert [r.offset for r in h.sink.put_records] == [0, 1, 2, 3, 4]
        assert h.commits[-1] == {TP(TOPIC, 0): 5}

    run(scenario)


def test_take_writes_in_the_background_one_batch_after_the_other() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        gate = asyncio.Event()
        real_flush = h.sink.flush

        async def slow_flush(force: bool = False) -> dict[int, int]:
            await gate.wait()
            return await real_flush(force)

        h.sink.flush = slow_flush  # type: ignore[method-assign]
        await h.pipeline.take([event(0, 0), event(0, 1)])  # returns with its write pending
        await asyncio.sleep(0.01)
        assert [r.offset for r in h.sink.put_records] == [0, 1] and h.commits == []
        second = asyncio.ensure_future(h.pipeline.take([event(0, 2)]))
        await asyncio.sleep(0.01)
        assert not second.done()  # waits for the first batch's write
        assert [r.offset for r in h.sink.put_records] == [0, 1]  # the sink: one at a time
        gate.set()
        await second
        await h.pipeline.drain()
        assert [r.offset for r in h.sink.put_records] == [0, 1, 2]
        assert h.commits[0] == {TP(TOPIC, 0): 2} and h.commits[-1] == {TP(TOPIC, 0): 3}

    run(scenario)


def test_drain_writes_the_batch_taken_before_it() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.assign(0)
        await h.pipeline.take([event(0, 0)])
        taken = asyncio.ensure_future(h.pipeline.take([event(0, 1), event(0, 2)]))
        await asyncio.sleep(0)  # prepared and queued behind the first
        await h.pipeline.drain()  # a re-drive's stop at the end of its round does this
        await taken
        assert [r.offset for r in h.sink.put_records] == [0, 1, 2]
        assert h.commits[-1] == {TP(TOPIC, 0): 3}

    run(scenario)


def test_a_failed_background_write_is_reported_and_nothing_after_it_is_written() -> None:
    failures: list[tuple[str, BaseException]] = []

    class Broken(FakeSink):
        async def flush(self, force: bool = False) -> dict[int, int]:
            if any(r.offset == 1 for r in self.put_records):
                raise KeyError("a bug")
            return await super().flush(force)

    async def scenario() -> None:
        h = Harness()
        h.pipeline._sink = Broken(h.abort)
        h.pipeline._fail = lambda where, exc: failures.append((where, exc))
        await h.assign(0)
        await h.pipeline.take([event(0, 0)])
        await h.pipeline.take([event(0, 1)])  # its write fails
        await h.pipeline.take([event(0, 2)])
        assert h.pipeline._writing is not None
        await asyncio.wait([h.pipeline._writing])
        assert [r.offset for r in h.pipeline._sink.put_records] == [0, 1]
        assert h.commits == [{TP(TOPIC, 0): 1}]

    run(scenario)
    assert [(where, type(exc)) for where, exc in failures] == [("writing a batch", KeyError)]
