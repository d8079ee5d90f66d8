"""Every use of faust-streaming's private API, in one place, for the one version it was read from.

The workers need three things Faust (and aiokafka under it) has no public API for:

- committing exactly the offsets a sink made durable, in the member's current
  generation and without Faust's ack bookkeeping: ``Consumer._commit``;
- a Worker that hands Ctrl-C and SIGTERM to us (flush first, then stop) and
  draws no spinner: ``faust.Worker._on_sigint``, ``_on_sigterm``,
  ``_schedule_shutdown`` and ``spinner``;
- reading a record whose header key is not UTF-8 (see read_any_header_keys);
- each fetch of the consumer as one list of messages, instead of one Faust
  event per record through the conductor, a channel and a stream (see
  take_fetches): ``Consumer._drain_messages``, ``getmany``, ``_read_offset``;
- reading only committed records (see read_committed):
  ``AIOKafkaConsumerThread._create_worker_consumer``.

Private calls can change meaning in any release without notice, and the
offset commit is what "no loss, no duplicates" rests on. So a worker refuses
to start (exit 2) on any other faust-streaming version than the one these
calls were read from and the kill -9 tests passed with, rather than warn and
run with guarantees nobody checked. To move to a new version: read these
calls in its source, change PINNED here and the pin in pyproject.toml, and
run the pipeline's integration tests (exact, kill -9, Elasticsearch down).
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping
from importlib import metadata
from typing import Any

import faust
from aiokafka.consumer import fetcher
from aiokafka.record import default_records, memory_records
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

from clickfan.errors import ClickfanError

PINNED = "0.15.3"


def check_version() -> None:
    """Exit 2 with what to do when the installed faust-streaming is not PINNED."""
    try:
        found = metadata.version("faust-streaming")
    except metadata.PackageNotFoundError:
        found = "none"
    if found != PINNED:
        raise ClickfanError(
            f"the workers need faust-streaming {PINNED} (they rely on its private offset "
            f"commit and signal handling), but {found} is installed: run "
            f"`pip install faust-streaming=={PINNED}`",
            exit_code=2,
        )


# Kafka's protocol says a header key is a string, but no broker checks it, and a producer
# we did not write (librdkafka's C API, say) can send any bytes. aiokafka decodes header
# keys strictly, so such a record raises inside its fetcher, before any of our code sees
# it, and every restart would stop at the same record. So each fetched batch is read
# with aiokafka's C reader, and only a batch that raises UnicodeDecodeError is read again
# with its pure-Python reader (ten times slower), which re-reads a record whose key is not
# UTF-8 keeping the key's bytes as surrogate escapes (streams.records shows them escaped).


class _LenientSlice(bytearray):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return super().decode(encoding, "surrogateescape")


class _LenientBuffer(bytearray):
    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return _LenientSlice(item) if isinstance(index, slice) else item


class _LenientRecordBatch(default_records._DefaultRecordBatchPy):
    def _read_msg(self, *args: Any) -> Any:
        try:
            return super()._read_msg(*args)
        except UnicodeDecodeError:
            # _read_msg moves its position only once a whole record is read
            self._buffer = _LenientBuffer(self._buffer)
            return super()._read_msg(*args)


# the C reader's batch class (memory_records binds it before read_any_header_keys runs)
_FastRecordBatch = default_records.DefaultRecordBatch


class _FastOrLenientBatch:
    """A record batch read with the C reader; with the lenient one if that raises.

    The fetcher reads a batch's header fields (crc, producer id, offsets: none of
    them text) and then iterates its records; the records are all decoded on the
    first ``next`` so that a failure comes before any record of the batch was handed on.
    """

    __slots__ = ("_buffer", "_batch", "_records")

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer
        self._batch = _FastRecordBatch(buffer)
        self._records: Iterator[Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> _FastOrLenientBatch:
        return self

    def __next__(self) -> Any:
        if self._records is None:
            try:
                records = list(self._batch)
            except UnicodeDecodeError:
                records = list(_LenientRecordBatch(self._buffer))
            self._records = iter(records)
        return next(self._records)


def read_any_header_keys() -> None:
    """Make the consumer read records whose header keys are not UTF-8 (see above)."""
    # the Python MemoryRecords splits a fetch into batches (a cheap loop per batch);
    # it builds them with this module global, which the C MemoryRecords does not use
    memory_records.DefaultRecordBatch = _FastOrLenientBatch
    fetcher.MemoryRecords = memory_records._MemoryRecordsPy


def read_committed() -> None:
    """Make the workers' consumer read committed records only (isolation.level).

    Faust reads read_committed only under its own exactly-once mode, which would
    bring its transaction manager. The dead-letter topic is written in transactions
    (streams.deadletter), and a re-drive reads it: an aborted attempt must never
    reach a sink. A foreign transactional producer's aborted records on click-logs
    are not records either.
    """
    create = aiokafka_driver.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "clickfan_read_committed", False):
        return

    @functools.wraps(create)
    def create_read_committed(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._isolation_level = "read_committed"  # handed to its fetcher at start()
        return consumer

    create_read_committed.clickfan_read_committed = True  # type: ignore[attr-defined]
    aiokafka_driver.AIOKafkaConsumerThread._create_worker_consumer = create_read_committed


# Handles one fetch: the messages of one getmany, in offset order per partition.
FetchHandler = Callable[[list[Message]], Awaitable[None]]


def take_fetches(app: faust.App, topic: faust.TopicT, on_fetch: FetchHandler) -> None:
    """Subscribe ``topic`` and hand each fetch of the app's consumer to ``on_fetch`` whole.

    Faust's own loop (Consumer._drain_messages, the one this replaces) makes each
    record an Event and passes it through the conductor, a channel, a stream and a
    take() buffer, with two futures per record to race the flow control: about 40 % of
    a worker's time, for what one list does here. What it keeps: a fetch taken with
    Faust's getmany (which stamps the generation, skips paused partitions and breaks
    off on a rebalance), records below Faust's read offset (read again before a seek
    took effect) left out, and the read offset moved on.
    """
    app.topics.add(topic)  # what an agent's stream does: the conductor subscribes it
    consumer = app.consumer
    consumer._drain_messages = functools.partial(_drain_fetches, consumer, on_fetch)


async def _drain_fetches(consumer: Any, on_fetch: FetchHandler, fetcher: Any) -> None:
    # Faust 0.15.3's Consumer._drain_messages with the per-record callback replaced
    consumer_should_stop = consumer._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    read_offset = consumer._read_offset
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            fetched = consumer.getmany(timeout=1.0)
            await asyncio.sleep(0)  # as Faust's: getmany can return at once, time after time
            messages: list[Message] = []
            if not consumer.should_stop:
                async for tp, message in fetched:
                    last = read_offset[tp]
                    if last is None or message.offset >= last:
                        read_offset[tp] = message.offset
                        messages.append(message)
            if messages:
                await on_fetch(messages)
    except consumer.consumer_stopped_errors:
        if not consumer.transport.app.should_stop:
            raise
    except asyncio.CancelledError:
        if not consumer.transport.app.should_stop:
            raise


async def commit(app: faust.App, offsets: Mapping[TP, int]) -> bool:
    """Commit ``offsets`` as they are; False when the group refused (e.g. rebalancing)."""
    # The consumer's own commit call: the member's generation, no ack bookkeeping.
    return bool(await app.consumer._commit(offsets))


async def seek(app: faust.App, tp: TP, offset: int) -> None:
    """Read ``tp`` again from ``offset`` (Faust's own seek: it also resets its read offset)."""
    await app.consumer.seek(tp, offset)


class Worker(faust.Worker):
    """faust.Worker with clickfan's logging, no spinner, and stop signals handed to us."""

    def __init__(self, app: faust.App, on_stop_signal: Callable[[signal.Signals], None]) -> None:
        super().__init__(app, quiet=True, redirect_stdouts=False, override_logging=False)
        self.spinner = None  # Faust's startup spinner writes terminal codes to stdout
        self._on_stop_signal = on_stop_signal

    def _on_sigint(self) -> None:
        self._on_stop_signal(signal.SIGINT)

    def _on_sigterm(self) -> None:
        self._on_stop_signal(signal.SIGTERM)

    def shut_down(self, sig: signal.Signals) -> None:
        """Stop the app and the event loop, as Faust does on a signal (only the first call)."""
        self._schedule_shutdown(sig)
