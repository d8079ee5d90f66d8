"""The sink lifecycle both writers follow (Kafka Connect's SinkTask, Quix Streams' sinks).

    open(partitions) -> put(records) ... -> flush() -> offsets safe to commit -> close(partitions)

The stream in front of a sink commits a partition's offset only when flush()
returns it, so an offset is committed only after every record before it is
durable in the sink (or confirmed in the dead-letter topic). A sink keeps no
promise across close(): after a rebalance it starts again from what it made
durable, and the stream re-reads the rest from Kafka.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SinkRecord:
    """One Kafka record as a sink sees it.

    ``event`` is the parsed click event; None means the record was not a valid
    event and is already confirmed in the dead-letter topic: the sink writes
    nothing for it but counts its offset as handled.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: tuple[tuple[str, bytes], ...]
    event: dict[str, Any] | None


@dataclass(frozen=True)
class Rejection:
    """A record a sink refused for good (not a transient failure)."""

    record: SinkRecord
    reason: str  # short, for the dead-letter header (e.g. "es_rejected")
    message: str  # what the sink said


# Sends rejections to the dead-letter topic; returns once the brokers confirmed them.
DeadLetterFn = Callable[[Sequence[Rejection]], Awaitable[None]]


class Aborted(Exception):
    """Work given up because the partitions it was for were revoked (or the worker stops).

    Nothing of it was committed; the next owner re-reads it from Kafka.
    """


class Sink(abc.ABC):
    """A writer for one worker process; the stream calls it from one task at a time.

    Sinks get an ``abort`` event when built: once set, work waiting on a down
    system raises Aborted instead of retrying (the stream sets it when
    partitions are revoked or the worker must stop now).
    """

    async def start(self) -> None:  # noqa: B027 (optional hook, most sinks need nothing)
        """The worker started: prepare what the first flush needs (e.g. an index template)."""

    @abc.abstractmethod
    async def open(self, partitions: set[int]) -> None:
        """Partitions of the source topic were assigned; state is (re)built lazily or here."""

    @abc.abstractmethod
    async def put(self, records: Sequence[SinkRecord]) -> None:
        """Take records (in offset order per partition); they may only be buffered."""

    @abc.abstractmethod
    async def flush(self, force: bool = False) -> dict[int, int]:
        """Make what is due durable; return {partition: next offset} safe to commit.

        ``force`` makes everything buffered durable (a clean shutdown). Only
        partitions whose safe offset moved are returned.
        """

    @abc.abstractmethod
    async def close(self, partitions: set[int]) -> None:
        """Partitions were revoked: drop everything not yet durable for them."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Release clients; the process is ending."""
