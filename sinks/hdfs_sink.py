"""The HDFS sink: JSON Lines or Parquet by event hour, every offset archived exactly once.

Records of a partition are held in memory (bounded by the roll limits) as one
pending roll: a contiguous offset range, one file per event hour. Rolling
writes each file completely into this owner's folder under ``_tmp/``, then
commits the roll by renaming its marker into ``_committed/``, then renames
the files into their hour folders (see sinks.hdfs_layout for why this
survives kill -9 at any moment). Only then does the partition's offset
become safe to commit in Kafka.

Taking a partition over (within a second of its assignment, or when its
first record arrives) first fences every earlier owner, then finishes their
committed rolls and deletes the rest (see sinks.hdfs_fence: a stalled
archiver that lost the partition can then never publish a file). Records
below the committed end are skipped, so re-delivery never archives twice,
and a batch of only such records still moves the committed offset up to
what HDFS holds, so an idle topic reaches lag 0.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from hdfs import HdfsError
from hdfs.client import _to_error

from clickfan.events import encode_event
from clickfan.sinks import clients, hdfs_formats
from clickfan.sinks.base import Sink, SinkRecord
from clickfan.sinks.hdfs_fence import (
    TakeOverPlan,
    commit_name,
    data_name,
    partition_dir,
    plan_take_over,
)
from clickfan.sinks.hdfs_layout import COMMITTED_DIR, TMP_DIR, Marker, Roll, bucket
from clickfan.sinks.hdfs_roll import PendingRoll
from clickfan.sinks.retry import Retry, RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

# A fenced partition whose records still arrive this long after is held by nobody.
FENCED_GRACE_S = 120.0


@dataclass(frozen=True)
class RollLimits:
    """A partition's pending records are rolled at whichever limit comes first."""

    records: int
    bytes: int
    seconds: float  # age of the oldest pending record


@dataclass(frozen=True)
class HdfsConfig:
    connection: clients.WebHdfsConnection  # NameNodes (WebHDFS), user, CA, timeout of a call
    root: str  # the archive's folder
    roll: RollLimits
    format: str = hdfs_formats.DEFAULT  # of the files it writes; one of hdfs_layout.FORMATS


class Fenced(Exception):
    """Another archiver took the partition over after this one: drop it, never retry."""


def _transient(exc: BaseException) -> bool:
    # NameNode or DataNode down, safe mode, a timeout: all wait for HDFS to recover.
    # A refusal (permission denied, a certificate we do not trust) does not pass.
    if clients.refusal(exc, "HDFS") is not None:
        return False
    return isinstance(exc, HdfsError | requests.RequestException)


@dataclass
class _PartitionState:
    owner: str  # this owner's folder (absolute); gone once another owner fenced it
    next_offset: int | None  # first offset not yet handled; lower ones are skipped
    committed_end: int | None  # end of the newest marker
    roll: PendingRoll
    report: bool = False  # committed_end + 1 is to be (re)committed in Kafka
    fenced_at: float | None = None  # monotonic; taken over by another archiver since


class HdfsSink(Sink):
    def __init__(
        self, config: HdfsConfig, retry: RetryPolicy, topic: str, abort: asyncio.Event
    ) -> None:
        self._config = config
        self._topic = topic
        self._abort = abort
        self._root = "/" + config.root.strip("/")
        self._client = clients.webhdfs_client(config.connection)
        self._retry = Retry(
            f"HDFS at {config.connection.shown}", log, retry, is_transient=_transient
        )
        self._assigned: set[int] = set()
        self._partitions: dict[int, _PartitionState] = {}
        self._folders: set[str] = set()  # hour folders made (no need to make them again)

    async def _call(self, op: Callable[[], Awaitable[T]], action: str, abort: asyncio.Event) -> T:
        """Retry ``op`` while HDFS is down; a refusal stops the worker with its one line."""
        try:
            return await self._retry.call(op, action, abort)
        except Exception as exc:
            refused = clients.refusal(exc, f"HDFS (as user {self._config.connection.user})")
            if refused is None:
                raise
            raise refused from None

    def _path(self, *parts: str) -> str:
        return posixpath.join(self._root, *parts)

    async def _io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # HdfsCLI is blocking (requests); keep the event loop free for Faust.
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def open(self, partitions: set[int]) -> None:
        # Taken over in flush()/put(): HDFS calls do not belong in a rebalance callback.
        self._assigned = set(partitions)
        for p in partitions:
            self._partitions.pop(p, None)

    async def close(self, partitions: set[int]) -> None:
        self._assigned -= partitions
        for p in partitions:
            self._partitions.pop(p, None)

    async def stop(self) -> None:
        pass

    async def put(self, records: Sequence[SinkRecord]) -> None:
        now = time.monotonic()
        for r in records:
            state = self._partitions.get(r.partition)
            if state is None:
                state = self._partitions[r.partition] = await self._take_over(r.partition)
            if state.fenced_at is not None:
                self._check_still_fenced(state, now)
                continue  # its new owner archives it
            expected = state.next_offset
            if expected is not None and r.offset < expected:
                # archived (or pending) already: a re-delivery; its offset may still
                # have to move up to what HDFS holds
                state.report = True
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
        # Partitions assigned and not taken over yet: fence and recover now, so that a
        # roll committed but not published by the previous owner is not hidden until
        # the next record arrives.
        for p in sorted(self._assigned - self._partitions.keys()):
            self._partitions[p] = await self._take_over(p)
        limits = self._config.roll
        now = time.monotonic()
        due = [
            state
            for state in self._partitions.values()
            if state.fenced_at is None
            and not state.roll.empty()
            and (force or state.roll.due(now, limits.records, limits.bytes, limits.seconds))
        ]
        await self._roll_all(due)
        safe: dict[int, int] = {}
        for p, state in sorted(self._partitions.items()):
            if state.report and state.fenced_at is None and state.committed_end is not None:
                safe[p] = state.committed_end + 1
            state.report = False
        return safe

    async def _roll_all(self, due: list[_PartitionState]) -> None:
        """Roll the partitions ``due`` side by side: each has its own owner folder, marker
        and files, so their WebHDFS round trips overlap (one after another they added up).
        A fenced partition is dropped; any other failure cancels the rest and escapes."""
        tasks = {asyncio.ensure_future(self._roll(state)): state for state in due}
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    exc = task.exception()
                    if isinstance(exc, Fenced):
                        self._fenced(tasks[task], exc)
                    elif exc is not None:
                        raise exc
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
                for task in pending:  # retrieved, so asyncio does not log them as lost
                    if not task.cancelled():
                        task.exception()

    def _fenced(self, state: _PartitionState, exc: Fenced) -> None:
        roll = state.roll
        held = "nothing" if roll.empty() else f"offsets {roll.start}..{roll.end}"
        log.warning(
            "partition %d: fenced, another archiver took it over (%s); dropping %s, "
            "its new owner archives them",
            roll.partition,
            exc,
            held,
        )
        state.fenced_at = time.monotonic()
        state.roll = PendingRoll(self._topic, roll.partition)

    def _check_still_fenced(self, state: _PartitionState, now: float) -> None:
        """Records of a fenced partition: fine while this worker learns it lost it, not for long.

        A fence means the group gave the partition to another member, so this
        one soon hears of it and its partitions are revoked. Records still
        arriving long after mean the fencer was the stale one (a zombie taking a
        partition over before it heard of its own revocation): exit loudly, so a
        restart re-reads the partition from its last commit, rather than hold it
        without archiving it.
        """
        assert state.fenced_at is not None
        if now - state.fenced_at > FENCED_GRACE_S:
            raise RuntimeError(
                f"partition {state.roll.partition} of {self._topic}: still assigned here "
                f"{now - state.fenced_at:.0f}s after another archiver fenced it; stopping "
                "so that a restart re-reads it from its last commit"
            )

    # -- HDFS steps of an owner ----------------------------------------------------

    def _owned(self, state: _PartitionState, step: Callable[[], T]) -> T:
        """Run ``step``; a failure with this owner's folder gone means fenced."""
        try:
            return step()
        except (HdfsError, requests.RequestException) as exc:
            # (if HDFS is down this check fails too, and the step is retried as transient)
            if self._client.status(state.owner, strict=False) is None:
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise Fenced(f"its folder {state.owner} is gone: {reason}") from None
            raise

    def _create(self, path: str, data: bytes) -> None:
        """Write a file; fails if its folder is missing (client.write would create it)."""
        # hdfs 2.7.3 has no parameter for it: its generated _create passes createparent on
        res = self._client._create(path, overwrite=True, createparent="false")
        done = self._client._request(method="PUT", url=res.headers["location"], data=data)
        if not done:
            raise _to_error(done)

    def _move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``; done too when an earlier answer was lost."""
        try:
            self._client.rename(src, dst)
        except HdfsError:
            moved = self._client.status(src, strict=False) is None
            if not moved or self._client.status(dst, strict=False) is None:
                raise

    def _publish(self, owner: str, files: list[tuple[str, str]]) -> None:
        """Rename (temp path below ``owner``, destination below the root) pairs into place."""
        for relpath, dest in files:
            dst = self._path(dest)
            folder = posixpath.dirname(dst)
            if folder not in self._folders:  # an hour's folder is made once per process
                self._client.makedirs(folder)  # outside the owner folder
                self._folders.add(folder)
            try:
                self._move(posixpath.join(owner, relpath), dst)
            except (HdfsError, requests.RequestException):
                self._folders.discard(folder)  # made again on the retry, in case it is gone
                raise

    # -- rolling -------------------------------------------------------------------

    async def _roll(self, state: _PartitionState) -> None:
        roll = state.roll
        assert roll.start is not None and roll.end is not None
        start, end = roll.start, roll.end
        marker = self._path(COMMITTED_DIR, Marker(self._topic, roll.partition, end).name)
        fmt = self._config.format
        files = [
            (data_name(start, end, folder, final.name), posixpath.join(folder, final.name), f)
            for folder, final, f in roll.archive_files(fmt)
        ]
        # encoded once, off the event loop (a Parquet file of a big roll takes a while)
        contents = await self._io(
            lambda: [hdfs_formats.encode(fmt, self._topic, roll.partition, f) for *_, f in files]
        )

        attempts = 0

        def write_and_commit() -> None:
            nonlocal attempts
            attempts += 1
            # After the marker exists the temp files must never be rewritten: a
            # kill -9 mid-rewrite would leave a committed roll with a partial file.
            # Only a retry can find it (an earlier attempt whose answer was lost): no
            # other owner can commit this partition's rolls since this one fenced them.
            if attempts > 1 and self._client.status(marker, strict=False) is not None:
                return
            for (name, _, _), data in zip(files, contents, strict=True):
                self._create(posixpath.join(state.owner, name), data)
            temp_marker = posixpath.join(state.owner, commit_name(start, end))
            self._create(temp_marker, b"")
            self._move(temp_marker, marker)  # the commit point, fenced by its source

        what = f"partition {roll.partition} offsets {start}..{end}"
        await self._call(
            lambda: self._io(self._owned, state, write_and_commit), f"rolling {what}", self._abort
        )
        previous = state.committed_end
        state.committed_end = end
        state.report = True
        state.roll = PendingRoll(self._topic, roll.partition)

        def publish() -> None:
            self._publish(state.owner, [(name, dest) for name, dest, _ in files])
            if previous is not None:
                stale = Marker(self._topic, roll.partition, previous)
                self._client.delete(self._path(COMMITTED_DIR, stale.name))

        await self._call(
            lambda: self._io(self._owned, state, publish), f"publishing {what}", self._abort
        )
        log.debug("rolled %s into %d files", what, len(files))

    # -- taking a partition over -----------------------------------------------------

    def _list(self, path: str) -> list[str]:
        if self._client.status(path, strict=False) is None:
            return []
        return self._client.list(path)

    def _fence_and_recover(self, partition: int) -> _PartitionState:
        base = self._path(partition_dir(self._topic, partition))
        me = uuid.uuid4().hex
        owner = posixpath.join(base, me)
        state = _PartitionState(owner, None, None, PendingRoll(self._topic, partition))
        self._client.makedirs(owner)  # one MKDIRS; nothing is ever created inside with it
        self._client.makedirs(self._path(COMMITTED_DIR))
        # the fence: every earlier owner's folder (and legacy rolls) into ours
        earlier = [posixpath.join(base, n) for n in self._list(base) if n != me]
        for name in self._list(self._path(TMP_DIR)):
            roll = Roll.parse(name)
            if roll is not None and (roll.topic, roll.partition) == (self._topic, partition):
                earlier.append(self._path(TMP_DIR, name))

        def fence_and_recover() -> TakeOverPlan:
            for path in earlier:
                self._move(path, posixpath.join(owner, posixpath.basename(path)))

            # only now what HDFS holds: no earlier owner can commit any more
            fenced_files = [
                posixpath.relpath(posixpath.join(folder, n), owner)
                for folder, _, names in self._client.walk(owner)
                for n in names
            ]
            plan = plan_take_over(
                self._topic, partition, self._list(self._path(COMMITTED_DIR)), fenced_files
            )
            self._publish(owner, plan.publish)
            for path in earlier:
                self._client.delete(posixpath.join(owner, posixpath.basename(path)), recursive=True)
            for marker in plan.stale_markers:
                self._client.delete(self._path(COMMITTED_DIR, marker.name))
            return plan

        plan = self._owned(state, fence_and_recover)
        if earlier:
            log.info(
                "partition %d: fenced %d earlier owner folder(s); finished %d committed "
                "rolls, deleted %d partial ones%s",
                partition,
                len(earlier),
                len(plan.finished),
                len(plan.dropped),
                f", {len(plan.unknown)} unknown files" if plan.unknown else "",
            )
        state.next_offset = plan.resume_offset
        state.committed_end = plan.committed_end
        return state

    async def _take_over(self, partition: int) -> _PartitionState:
        try:
            # a retry after a failure starts over with a new owner folder, which
            # fences the one of the failed attempt like any other
            state = await self._call(
                lambda: self._io(self._fence_and_recover, partition),
                f"taking over partition {partition}",
                self._abort,
            )
        except Fenced as exc:
            state = _PartitionState("", None, None, PendingRoll(self._topic, partition))
            self._fenced(state, exc)
            return state
        log.info(
            "partition %d: resuming after offset %s (from %s)",
            partition,
            state.committed_end,
            self._path(COMMITTED_DIR),
        )
        return state
