"""One source topic into one sink, committing only what the sink made durable.

Why offsets are committed here and not by Faust: faust-streaming commits
"acked" offsets, and it acks on its own in places (a message it skips as
stale after a rebalance, a filtered value, take() buffers when the agent
resumes), and has had commit bugs (#606). So the source topic is declared
with ``acks=False``, Faust never commits it, and this class commits exactly
the offsets that Sink.flush() returns, right after the flush.

Every record handed to the sink is the next one of its partition: the pipeline
knows where each partition's reading starts (the group's committed offset, read
at assignment) and, when a batch begins past that position (records dropped as
fetched before a rebalance while Faust did not rewind), seeks back to it instead
of handing the sink a gap that the next commit would skip for good.

One task at a time touches the sink (the batch being written, the roll
timer, the rebalance handlers and the shutdown drain share one lock), and a
rebalance aborts pending work first, so a revoked partition is never written
after its revocation and a record fetched before a rebalance is never written
after it. A batch is prepared (checked against each partition's position,
decoded, judged) apart from the sink, so that the worker can prepare the next
one while the sink writes the last; a batch prepared before a rebalance is
dropped at write time, like one fetched before it.

This class knows nothing of how it is wired into Faust (streams.runtime does
that) and lets every unexpected error escape: the runtime turns it into a
non-zero exit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import faust
from faust.types import TP, Message

from clickfan.sinks.base import Aborted, Rejection, Sink, SinkRecord
from clickfan.streams import faust_compat
from clickfan.streams.deadletter import DeadLetterQueue
from clickfan.streams.records import to_sink_records


class Positions(Protocol):
    """What the broker holds (streams.positions.BrokerPositions)."""

    async def starting(self, partitions: set[int]) -> dict[int, int]: ...

    async def first_offset(self, partition: int, offset: int) -> int | None: ...


@dataclass(frozen=True)
class Batch:
    """A batch prepared for the sink: its records (each decoded, or None when invalid),
    the invalid ones' rejections, and the group generation it was fetched in."""

    generation: int
    epoch: int  # SinkPipeline._epoch when prepared
    records: list[SinkRecord]
    rejections: list[Rejection]


class SinkPipeline:
    def __init__(
        self,
        app: faust.App,
        topic: str,
        sink: Sink,
        dead_letters: DeadLetterQueue,
        abort: asyncio.Event,
        max_event_bytes: int,
        log: logging.Logger,
        positions: Positions,
        select: Callable[[SinkRecord], bool] | None = None,
        fail: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self._app = app
        # told of an error in a batch written in the background (see take); None: logged
        self._fail = fail
        self._writing: asyncio.Future[None] | None = None  # the last batch taken
        self._select = select  # see records.to_sink_records
        self._topic = topic
        self._sink = sink
        self._dlq = dead_letters
        self._abort = abort
        self._max_event_bytes = max_event_bytes
        self._log = log
        self._lock = asyncio.Lock()  # the sink's
        self._reading = asyncio.Lock()  # where each partition is (self._next)
        self._positions = positions
        self._assigned: set[int] = set()
        self._next: dict[int, int] = {}  # partition -> the offset the sink needs next
        self._epoch = 0  # counts revocations and assignments (each resets self._next)
        self._resync = False  # self._next is to be read again from the committed offsets
        self._stopping = False
        self.records = 0  # handed to the sink (valid or not; the invalid are dead-lettered)
        self.stale = 0  # fetched before a rebalance, dropped here and read again
        self.repeated = 0  # read again after a rewind, already handed to the sink
        self.rewinds = 0  # seeks back over records that never reached the sink
        self._last_stats = (time.monotonic(), 0)

    async def take(self, messages: Sequence[Message]) -> None:
        """Prepare a batch, then write it in the background once the last one is written.

        Returns when the batch before it is written and committed, so the caller fetches
        and prepares the next batch while the sink writes this one: one batch's CPU
        hides the other's waiting, and the sink still sees one batch at a time, in
        order. A write that fails is handed to ``fail`` (the worker stops) and no later
        batch is written.
        """
        batch = await self.prepare(messages)
        # queued in the same step as prepared: a drain() from now on waits for it
        previous = self._writing
        self._writing = asyncio.ensure_future(self._write_after(previous, batch))
        if previous is not None:
            await asyncio.wait([previous])

    async def _write_after(
        self, previous: asyncio.Future[None] | None, batch: Batch | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled():
                return  # never past a batch that was not written
        try:
            await self.write(batch)
        except Exception as exc:
            self._stopping = True  # nothing more is handed to the sink or committed
            if self._fail is None:
                self._log.exception("writing a batch failed")
            else:
                self._fail("writing a batch", exc)

    def cancel_writes(self) -> None:
        """The process is ending: give up a batch still being written (not committed)."""
        if self._writing is not None and not self._writing.done():
            self._writing.cancel()

    async def prepare(self, messages: Sequence[Message]) -> Batch | None:
        """The part of a batch that touches no sink: which messages continue each partition,
        and each decoded and judged. The workers prepare the next batch while the sink
        writes this one (streams.runtime), so one batch's CPU hides the other's waiting."""
        async with self._reading:
            if self._resync:
                self._resync = False
                self._next = await self._positions.starting(self._assigned)
            # (a write that drops its batch may move it on while this one waits below)
            epoch = self._epoch
            generation = self._app.consumer_generation_id
            current = [
                m
                for m in messages
                if not self._stopping
                and m.generation_id == generation
                and m.partition in self._assigned
            ]
            # fetched before the last rebalance: read again from the committed offset
            self.stale += len(messages) - len(current)
            current = await self._in_order(current)
        if not current:
            return None
        records, rejections = to_sink_records(current, self._max_event_bytes, self._select)
        return Batch(generation, epoch, records, rejections)

    async def write(self, batch: Batch | None) -> None:
        """Dead-letter a prepared batch's bad records, hand all to the sink, commit."""
        if batch is None:
            return
        async with self._lock:
            if (
                self._stopping
                or batch.epoch != self._epoch
                or batch.generation != self._app.consumer_generation_id
            ):
                # a rebalance (or a stop) came between prepare and write: the records are
                # read again from the committed offset, as when fetched before it
                self.stale += len(batch.records)
                if batch.epoch == self._epoch and not self._stopping:
                    # the generation moved on with no assignment seen (yet): the batches
                    # prepared after this one continue it, so they go too, and reading
                    # starts again from what the group committed
                    self._epoch += 1
                    self._resync = True
                return
            try:
                if batch.rejections:
                    await self._dlq.send(batch.rejections)
                await self._sink.put(batch.records)
                self.records += len(batch.records)
                await self._commit(await self._sink.flush())
            except Aborted as exc:
                self._log.info("gave up %s: partitions revoked, the next owner re-reads it", exc)

    async def _in_order(self, messages: Sequence[Message]) -> list[Message]:
        """The messages that continue each partition exactly where the sink is.

        Earlier offsets (read again after a seek) are dropped. When a partition's next
        message lies past the expected offset, the broker is asked what really comes next
        there: offsets that hold no record (transaction markers, compaction) are passed
        over; otherwise the partition is sought back and its messages in this batch dropped.
        """
        taken: list[Message] = []
        rewind: dict[int, int] = {}
        for m in messages:
            p, offset = m.partition, m.offset
            expected = self._next.get(p, offset)
            if p in rewind or offset < expected:
                self.repeated += offset < expected
                continue
            if offset > expected:
                actual = await self._positions.first_offset(p, expected)
                if actual is None or actual < offset:
                    rewind[p] = expected
                    continue
                self._log.info(
                    "partition %d: offsets %d..%d hold no record (transaction markers, "
                    "compaction, or retention deleted them)",
                    p,
                    expected,
                    offset - 1,
                )
            self._next[p] = offset + 1
            taken.append(m)
        for p, offset in rewind.items():
            self._log.info("partition %d: seeking back to %d, where the sink is", p, offset)
            self.rewinds += 1
            await faust_compat.seek(self._app, TP(self._topic, p), offset)
        return taken

    async def tick(self) -> None:
        """Periodic: flush what became due by time alone (e.g. a roll's age)."""
        async with self._lock:
            if not self._assigned or self._stopping:
                return
            try:
                await self._commit(await self._sink.flush())
            except Aborted as exc:
                self._log.info("gave up %s: partitions revoked", exc)

    async def drain(self) -> None:
        """Clean stop: write the batches taken, make everything buffered durable, commit."""
        if self._writing is not None:
            await asyncio.wait([self._writing])
        async with self._lock:
            self._stopping = True
            if self._assigned:
                await self._commit(await self._sink.flush(force=True))

    def stop_now(self) -> None:
        """Make pending sink work give up (a stop that cannot wait any longer)."""
        self._stopping = True
        self._abort.set()

    async def on_revoked(self, revoked: set[TP]) -> None:
        self._abort.set()  # a sink waiting for a down system gives up now
        async with self._reading, self._lock:
            self._epoch += 1
            partitions = {tp.partition for tp in revoked if tp.topic == self._topic}
            self._assigned -= partitions
            await self._sink.close(partitions)

    async def on_assigned(self, assigned: set[TP]) -> None:
        async with self._reading, self._lock:
            self._epoch += 1
            self._resync = False
            partitions = {tp.partition for tp in assigned if tp.topic == self._topic}
            self._assigned = partitions
            if not self._stopping:
                self._abort.clear()
            # whatever was buffered before is gone (closed on revocation): start again
            # from what the group committed
            self._next = await self._positions.starting(partitions) if partitions else {}
            # the dead-letter writers are claimed anew: from these starts on, the DLQ is
            # read for what is there already when a partition first dead-letters
            await self._dlq.reset(self._next)
            await self._sink.open(partitions)
            self._log.info("assigned partitions %s of %s", sorted(partitions), self._topic)

    async def _commit(self, offsets: dict[int, int]) -> None:
        committable = {TP(self._topic, p): o for p, o in offsets.items() if p in self._assigned}
        if not committable:
            return
        if not await faust_compat.commit(self._app, committable):
            self._log.info("commit refused (rebalancing); the records will be read again")

    def log_stats(self) -> None:
        then, records_then = self._last_stats
        now = time.monotonic()
        rate = (self.records - records_then) / max(now - then, 1e-9)
        self._last_stats = (now, self.records)
        self._log.info(
            "%d records handled (%.0f/s lately), %d dead-lettered (%d found there already), "
            "%d dropped as fetched before a rebalance, %d seeks back over %d records read "
            "again, partitions %s",
            self.records,
            rate,
            self._dlq.sent,
            self._dlq.not_again,
            self.stale,
            self.rewinds,
            self.repeated,
            sorted(self._assigned),
        )
