"""Every interleaving of a zombie's roll with its successor's take-over (in-memory NameNode).

The NameNode is faked by a dictionary with HDFS's rules for the few calls the
sink makes (a rename fails when its source is gone or its target exists; a
create with createparent=false fails when the folder is gone). The zombie
rolls a partition; before its k-th HDFS call, for every k, a successor takes
the partition over and archives the same records (re-delivered to it from
Kafka). A third owner then takes over once more and finishes whatever is
left. In every case each offset is archived exactly once and _tmp is empty.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hdfs import HdfsError

from clickfan.sinks.base import SinkRecord
from clickfan.sinks.clients import WebHdfsConnection
from clickfan.sinks.hdfs_layout import COMMITTED_DIR, TMP_DIR, ArchiveFile
from clickfan.sinks.hdfs_sink import HdfsConfig, HdfsSink, RollLimits
from clickfan.sinks.retry import RetryPolicy

TOPIC = "clicks"
ROOT = "/archive"
RECORDS = 10
DIR = None  # a folder in the fake namespace (files hold bytes)


class FakeNameNode:
    def __init__(self) -> None:
        self.entries: dict[str, bytes | None] = {"/": DIR}
        self.calls = 0

    def call(self) -> None:
        # a sink retrying a failing call forever would hang the test: fail instead
        self.calls += 1
        assert self.calls < 2_000, "the sink keeps retrying a call that cannot succeed"

    def parent_is_dir(self, path: str) -> bool:
        return self.entries.get(posixpath.dirname(path), b"") is DIR

    def below(self, path: str) -> list[str]:
        return [p for p in self.entries if p.startswith(path.rstrip("/") + "/")]


class FakeClient:
    """The calls HdfsSink makes on hdfs.InsecureClient, on a FakeNameNode."""

    def __init__(self, nn: FakeNameNode, before: Callable[[], None] = lambda: None) -> None:
        self.nn = nn
        self.hook = before

    def before(self) -> None:
        self.nn.call()
        self.hook()

    def status(self, path: str, strict: bool = True) -> dict[str, Any] | None:
        self.before()
        if path not in self.nn.entries:
            return None
        return {"type": "DIRECTORY" if self.nn.entries[path] is DIR else "FILE"}

    def makedirs(self, path: str) -> None:
        self.before()
        while path not in self.nn.entries:
            self.nn.entries[path] = DIR
            path = posixpath.dirname(path)

    def list(self, path: str) -> list[str]:
        self.before()
        if self.nn.entries.get(path, b"") is not DIR:
            raise HdfsError(f"{path} does not exist")
        return sorted(
            posixpath.basename(p)
            for p in self.nn.below(path)
            if "/" not in p[len(path.rstrip("/")) + 1 :]
        )

    def walk(self, path: str) -> Iterator[tuple[str, list[str], list[str]]]:
        self.before()
        if self.nn.entries.get(path, b"") is not DIR:
            raise HdfsError(f"{path} does not exist")
        files: dict[str, list[str]] = {}
        for p in sorted(self.nn.below(path)):
            if self.nn.entries[p] is not DIR:
                files.setdefault(posixpath.dirname(p), []).append(posixpath.basename(p))
        for folder, names in files.items():
            yield folder, [], names

    def rename(self, src: str, dst: str) -> None:
        self.before()
        nn = self.nn
        if src not in nn.entries or dst in nn.entries or not nn.parent_is_dir(dst):
            raise HdfsError(f"Unable to rename {src!r} to {dst!r}.")
        for p in [src, *nn.below(src)]:
            nn.entries[dst + p[len(src) :]] = nn.entries.pop(p)

    def delete(self, path: str, recursive: bool = False) -> bool:
        self.before()
        if path not in self.nn.entries:
            return False
        for p in [path, *self.nn.below(path)]:
            del self.nn.entries[p]
        return True

    def _create(self, path: str, overwrite: bool, createparent: str) -> Any:
        assert createparent == "false"  # the sink must never create its folder again
        self.before()
        return SimpleNamespace(headers={"location": path})

    def _request(self, method: str, url: str, data: bytes) -> Any:
        # the DataNode's half of a create: here the missing folder is found
        if not self.nn.parent_is_dir(url):
            raise HdfsError(f"Parent directory doesn't exist: {posixpath.dirname(url)}")
        self.nn.entries[url] = data
        return True


def _sink(nn: FakeNameNode, before: Callable[[], None] = lambda: None) -> HdfsSink:
    connection = WebHdfsConnection(("http://fake",), "u", request_timeout_s=1.0)
    config = HdfsConfig(connection, ROOT, RollLimits(RECORDS, 1 << 20, 3600.0))
    sink = HdfsSink(config, RetryPolicy(0.001, 0.001, 60.0), TOPIC, asyncio.Event())
    sink._client = FakeClient(nn, before)  # type: ignore[assignment]
    return sink


def _records() -> list[SinkRecord]:
    # two event hours, so a roll has two files
    times = ["2026-01-31T22:59:59Z"] * 4 + ["2026-01-31T23:00:00Z"] * (RECORDS - 4)
    return [
        SinkRecord(TOPIC, 0, o, None, None, None, (), {"event_id": f"e{o}", "event_time": t})
        for o, t in enumerate(times)
    ]


async def _archive(sink: HdfsSink) -> dict[int, int]:
    await sink.open({0})
    await sink.put(_records())
    return await sink.flush()


def _archived_offsets(nn: FakeNameNode) -> list[int]:
    offsets: list[int] = []
    for path, data in nn.entries.items():
        relative = path[len(ROOT) + 1 :]
        if data is DIR or not relative or relative.split("/")[0] in (TMP_DIR, COMMITTED_DIR):
            continue
        assert ArchiveFile.parse(posixpath.basename(path)) is not None, path
        offsets += [int(json.loads(line)["event_id"][1:]) for line in data.splitlines()]
    return sorted(offsets)


def _zombie_calls() -> int:
    """How many HDFS calls the zombie's roll makes when nobody interferes."""
    nn = FakeNameNode()
    zombie = _sink(nn)
    asyncio.run(zombie.open({0}))
    asyncio.run(zombie.put(_records()[:1]))  # take over, before counting
    calls = [0]
    zombie._client = FakeClient(nn, lambda: calls.__setitem__(0, calls[0] + 1))  # type: ignore[assignment]
    asyncio.run(zombie.put(_records()[1:]))
    asyncio.run(zombie.flush())
    return calls[0]


CALLS = _zombie_calls()


@pytest.mark.parametrize("k", range(CALLS + 1))
def test_successor_before_any_call_of_the_zombies_roll(k: int) -> None:
    nn = FakeNameNode()

    async def scenario() -> None:
        zombie = _sink(nn)
        await zombie.open({0})
        await zombie.put(_records())  # taken over; the roll is held in memory
        calls = [0]
        successor_safe: list[dict[int, int]] = []

        def before() -> None:
            calls[0] += 1
            if calls[0] == k + 1:  # just before the zombie's k-th call (0-based)
                # the successor runs to the end here, its own event loop in this thread
                successor_safe.append(asyncio.run(_archive(_sink(nn))))

        zombie._client = FakeClient(nn, before)  # type: ignore[assignment]
        zombie_safe = await zombie.flush()
        if k == CALLS:  # nobody interfered: the zombie was simply the owner
            assert zombie_safe == {0: RECORDS} and not successor_safe
            successor_safe.append(await _archive(_sink(nn)))  # re-delivery: skipped
        # what the successor reports safe to commit is what HDFS holds, either way
        assert successor_safe == [{0: RECORDS}]
        third = _sink(nn)
        await third.open({0})
        assert await third.flush() == {}  # takes over; nothing re-read, nothing to commit

    asyncio.run(scenario())
    assert _archived_offsets(nn) == list(range(RECORDS))
    tmp = [p for p in nn.entries if p.startswith(f"{ROOT}/{TMP_DIR}/") and nn.entries[p] is not DIR]
    assert tmp == []
    markers = [p for p in nn.entries if p.startswith(f"{ROOT}/{COMMITTED_DIR}/")]
    assert markers == [f"{ROOT}/{COMMITTED_DIR}/{TOPIC}+0+{RECORDS - 1}"]


def test_the_zombie_roll_makes_enough_calls_to_interleave() -> None:
    # status, 2 files and the marker (create + write each), commit, 2 x (makedirs + rename)
    assert CALLS >= 8


def test_a_batch_already_archived_reports_what_hdfs_holds() -> None:
    nn = FakeNameNode()
    assert asyncio.run(_archive(_sink(nn))) == {0: RECORDS}

    async def redelivered() -> tuple[dict[int, int], dict[int, int]]:
        sink = _sink(nn)
        await sink.open({0})
        idle = await sink.flush()  # taken over; no record seen: the group's offset is unknown
        await sink.put(_records()[:3])  # re-read from an older commit, all archived
        return idle, await sink.flush()

    assert asyncio.run(redelivered()) == ({}, {0: RECORDS})
    assert _archived_offsets(nn) == list(range(RECORDS))


def test_a_fenced_partition_is_dropped_then_stops_the_worker_if_it_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nn = FakeNameNode()

    async def scenario() -> None:
        zombie = _sink(nn)
        await zombie.open({0})
        await zombie.put(_records()[:5])
        await _archive(_sink(nn))  # the successor fences it
        assert await zombie.flush(force=True) == {}  # fenced: nothing published, nothing safe
        await zombie.put(_records()[5:])  # while it learns that it lost the partition
        monkeypatch.setattr("clickfan.sinks.hdfs_sink.FENCED_GRACE_S", -1.0)
        with pytest.raises(RuntimeError, match="still assigned here"):
            await zombie.put(_records()[5:])

    asyncio.run(scenario())
    assert _archived_offsets(nn) == list(range(RECORDS))


def _two_partitions() -> list[SinkRecord]:
    return [
        SinkRecord(TOPIC, p, o, None, None, None, (), {"event_id": f"e{o}", "event_time": t})
        for p in (0, 1)
        for o, t in enumerate(["2026-01-31T22:59:59Z"] * RECORDS)
    ]


def test_partitions_due_together_roll_side_by_side() -> None:
    nn = FakeNameNode()
    writing = threading.Barrier(2, timeout=30)  # both rolls' first file write at once

    class Client(FakeClient):
        def _create(self, path: str, overwrite: bool, createparent: str) -> Any:
            if path.endswith(".jsonl"):
                writing.wait()  # one roll after the other would break the barrier
            return super()._create(path, overwrite, createparent)

    async def scenario() -> dict[int, int]:
        sink = _sink(nn)
        sink._client = Client(nn)  # type: ignore[assignment]
        await sink.open({0, 1})
        await sink.put(_two_partitions())
        return await sink.flush()

    assert asyncio.run(scenario()) == {0: RECORDS, 1: RECORDS}
    assert _archived_offsets(nn) == sorted(list(range(RECORDS)) * 2)


def test_a_failed_roll_escapes_and_the_partitions_rolling_beside_it_are_given_up() -> None:
    nn = FakeNameNode()
    started = threading.Event()

    class Client(FakeClient):
        def _create(self, path: str, overwrite: bool, createparent: str) -> Any:
            if "+1+" in posixpath.basename(path) or "/clicks+1/" in path:
                started.set()
            elif path.endswith(".jsonl"):
                assert started.wait(30)
                raise KeyError("a bug in partition 0's roll")
            return super()._create(path, overwrite, createparent)

    async def scenario() -> None:
        sink = _sink(nn)
        sink._client = Client(nn)  # type: ignore[assignment]
        await sink.open({0, 1})
        await sink.put(_two_partitions())
        with pytest.raises(KeyError, match="a bug"):
            await sink.flush()  # the worker stops on it, committing nothing
        # the restarted worker's sink takes over and archives what is missing, once
        successor = _sink(nn)
        await successor.open({0, 1})
        await successor.put(_two_partitions())
        assert await successor.flush() == {0: RECORDS, 1: RECORDS}

    asyncio.run(scenario())
    assert _archived_offsets(nn) == sorted(list(range(RECORDS)) * 2)
