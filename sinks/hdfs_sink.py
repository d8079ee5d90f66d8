"""The HDFS sink: JSON Lines by event hour, every offset archived exactly once.

Records of a partition are held in memory (bounded by the roll limits) as one
pending roll: a contiguous offset range, one file per event hour. Rolling
writes each file completely under ``_tmp/``, then commits the roll with its
marker in ``_committed/``, then renames the files into their hour folders
(see sinks.hdfs_layout for why this survives kill -9 at any moment). Only
then does the partition's offset become safe to commit in Kafka.

A partition's state is loaded from HDFS the first time one of its records
arrives after an assignment: leftovers are finished or deleted, and records
below the committed end are skipped, so re-delivery never archives twice.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from hdfs import HdfsError, InsecureClient

from clickfan.events import encode_event
from clickfan.settings import Settings
from clickfan.sinks.base import Sink, SinkRecord
from clickfan.sinks.hdfs_layout import COMMITTED_DIR, TMP_DIR, Marker, Roll, bucket, plan_recovery
from clickfan.sinks.hdfs_roll import PendingRoll
from clickfan.sinks.retry import Retry, RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")


def _transient(exc: BaseException) -> bool:
    # NameNode or DataNode down, safe mode, a timeout: all wait for HDFS to recover.
    return isinstance(exc, HdfsError | requests.RequestException)


@dataclass
class _PartitionState:
    next_offset: int | None  # first offset not yet handled; lower ones are skipped
    committed_end: int | None  # end of the newest marker
    roll: PendingRoll


class HdfsSink(Sink):
    def __init__(self, settings: Settings, topic: str, abort: asyncio.Event) -> None:
        self._settings = settings
        self._topic = topic
        self._abort = abort
        self._root = "/" + settings.hdfs_root.strip("/")
        self._client = InsecureClient(
            settings.webhdfs_url, user=settings.hdfs_user, timeout=settings.sink_request_timeout_s
        )
        self._retry = Retry(
            f"HDFS at {settings.webhdfs_url}",
            log,
            RetryPolicy(
                settings.sink_retry_initial_s,
                settings.sink_retry_max_s,
                settings.sink_log_interval_s,
            ),
            is_transient=_transient,
        )
        self._partitions: dict[int, _PartitionState] = {}
        self.archived = 0
        self.skipped = 0
        self.rolls = 0

    def _path(self, *parts: str) -> str:
        return posixpath.join(self._root, *parts)

    async def _io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # HdfsCLI is blocking (requests); keep the event loop free for Faust.
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def open(self, partitions: set[int]) -> None:
        # State is loaded lazily in put(): HDFS calls do not belong in a rebalance callback.
        for p in partitions:
            self._partitions.pop(p, None)

    async def close(self, partitions: set[int]) -> None:
        for p in partitions:
            self._partitions.pop(p, None)

    async def stop(self) -> None:
        pass

    async def put(self, records: Sequence[SinkRecord]) -> None:
        now = time.monotonic()
        for r in records:
            state = self._partitions.get(r.partition)
            if state is None:
                state = self._partitions[r.partition] = await self._load(r.partition)
            expected = state.next_offset
            if expected is not None and r.offset < expected:
                self.skipped += 1  # archived (or pending) already: a re-delivery
                continue
            if expected is not None and r.offset > expected:
                log.warning(
                    "partition %d: offsets %d..%d are not in Kafka any more (retention?); "
                    "archiving from %d",
                    r.partition,
                    expected,
                    r.offset - 1,
                    r.offset,
                )
            if r.event is None:  # dead-lettered: counted, not archived
                state.roll.add(r.offset, now, None, None)
            else:
                state.roll.add(r.offset, now, bucket(r.event["event_time"]), encode_event(r.event))
            state.next_offset = r.offset + 1

    async def flush(self, force: bool = False) -> dict[int, int]:
        s = self._settings
        now = time.monotonic()
        committed: dict[int, int] = {}
        for p, state in sorted(self._partitions.items()):
            roll = state.roll
            if roll.empty():
                continue
            if force or roll.due(now, s.hdfs_roll_records, s.hdfs_roll_bytes, s.hdfs_roll_s):
                await self._roll(state)
                committed[p] = (state.committed_end or 0) + 1
        return committed

    # -- rolling -------------------------------------------------------------

    async def _roll(self, state: _PartitionState) -> None:
        roll = state.roll
        assert roll.start is not None and roll.end is not None
        rid = Roll(self._topic, roll.partition, roll.start, roll.end)
        tmp_dir = self._path(TMP_DIR, rid.name)
        marker = self._path(COMMITTED_DIR, Marker(self._topic, roll.partition, roll.end).name)
        files = roll.archive_files()

        def write_and_commit() -> None:
            # After the marker exists the temp files must never be rewritten: a
            # kill -9 mid-rewrite would leave a committed roll with a partial file.
            if self._client.status(marker, strict=False) is not None:
                return
            for folder, final, pending in files:
                path = posixpath.join(tmp_dir, folder, final.name)
                self._client.write(path, data=pending.data(), overwrite=True)
            self._client.write(marker, data=b"", overwrite=True)  # the commit point

        what = f"partition {roll.partition} offsets {roll.start}..{roll.end}"
        await self._retry.call(lambda: self._io(write_and_commit), f"rolling {what}", self._abort)
        previous = state.committed_end
        state.committed_end = roll.end
        state.roll = PendingRoll(self._topic, roll.partition)
        self.rolls += 1
        self.archived += sum(len(f.lines) for _, _, f in files)
        stale = [] if previous is None else [Marker(self._topic, roll.partition, previous)]
        await self._retry.call(
            lambda: self._io(self._publish, rid, stale), f"publishing {what}", self._abort
        )
        log.debug("rolled %s into %d files", what, len(files))

    def _publish(self, rid: Roll, stale: list[Marker]) -> None:
        """Rename a committed roll's files into place; idempotent, also used by recovery."""
        tmp_dir = self._path(TMP_DIR, rid.name)
        for folder, _dirs, names in self._client.walk(tmp_dir, ignore_missing=True):
            for name in names:
                src = posixpath.join(folder, name)
                dst = self._path(posixpath.relpath(src, tmp_dir))
                self._client.makedirs(posixpath.dirname(dst))
                try:
                    self._client.rename(src, dst)
                except HdfsError:
                    # a rename whose answer was lost: done if the file is in place
                    moved = self._client.status(src, strict=False) is None
                    if not moved or self._client.status(dst, strict=False) is None:
                        raise
        self._client.delete(tmp_dir, recursive=True)
        for marker in stale:
            self._client.delete(self._path(COMMITTED_DIR, marker.name))

    # -- recovery ------------------------------------------------------------

    def _list(self, folder: str) -> list[str]:
        path = self._path(folder)
        if self._client.status(path, strict=False) is None:
            return []
        return self._client.list(path)

    def _recover(self, partition: int) -> _PartitionState:
        plan = plan_recovery(self._topic, partition, self._list(COMMITTED_DIR), self._list(TMP_DIR))
        for rid in plan.finish:
            self._publish(rid, [])
        for rid in plan.discard:
            self._client.delete(self._path(TMP_DIR, rid.name), recursive=True)
        for marker in plan.stale_markers:
            self._client.delete(self._path(COMMITTED_DIR, marker.name))
        if plan.finish or plan.discard:
            log.info(
                "partition %d: finished %d committed rolls, deleted %d partial ones",
                partition,
                len(plan.finish),
                len(plan.discard),
            )
        return _PartitionState(
            next_offset=plan.resume_offset,
            committed_end=plan.committed_end,
            roll=PendingRoll(self._topic, partition),
        )

    async def _load(self, partition: int) -> _PartitionState:
        state = await self._retry.call(
            lambda: self._io(self._recover, partition),
            f"recovering partition {partition}",
            self._abort,
        )
        log.info(
            "partition %d: resuming after offset %s (from %s)",
            partition,
            state.committed_end,
            self._path(COMMITTED_DIR),
        )
        return state
