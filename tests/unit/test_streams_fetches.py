"""faust_compat.take_fetches' drain loop with a fake consumer: whole fetches, Faust's rules."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from clickfan.streams import faust_compat

A, B = TP("clicks", 0), TP("clicks", 1)


def _msg(tp: TP, offset: int) -> Any:
    return SimpleNamespace(tp=tp, partition=tp.partition, offset=offset)


class FakeConsumer:
    """Faust's Consumer as the drain loop uses it; stops after the scripted fetches."""

    consumer_stopped_errors = (ConnectionAbortedError,)

    def __init__(self, fetches: list[list[tuple[TP, Any]]]) -> None:
        self._fetches = fetches
        self._stopped = asyncio.Event()
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self.should_stop = False
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        if not self._fetches:
            self._stopped.set()
            return
        for item in self._fetches.pop(0):
            yield item


def _drain(consumer: FakeConsumer, on_fetch: Any) -> None:
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    asyncio.run(faust_compat._drain_fetches(consumer, on_fetch, fetcher))


def test_each_fetch_is_handed_on_whole_and_faust_read_offsets_kept() -> None:
    consumer = FakeConsumer(
        [
            [(A, _msg(A, 0)), (B, _msg(B, 5)), (A, _msg(A, 1))],
            [],  # an empty fetch hands nothing on
            [(A, _msg(A, 0)), (A, _msg(A, 2)), (B, _msg(B, 6))],  # A 0: below the read offset
        ]
    )
    got: list[list[tuple[int, int]]] = []

    async def on_fetch(messages: list[Any]) -> None:
        got.append([(m.partition, m.offset) for m in messages])

    _drain(consumer, on_fetch)
    assert got == [[(0, 0), (1, 5), (0, 1)], [(0, 2), (1, 6)]]
    assert dict(consumer._read_offset) == {A: 2, B: 6}


def test_a_seek_resets_the_read_offset_and_the_records_come_again() -> None:
    consumer = FakeConsumer([[(A, _msg(A, 3))], [(A, _msg(A, 1)), (A, _msg(A, 2))]])
    got: list[int] = []

    async def on_fetch(messages: list[Any]) -> None:
        got.extend(m.offset for m in messages)
        consumer._read_offset[A] = 1 if got == [3] else consumer._read_offset[A]  # Faust's seek

    _drain(consumer, on_fetch)
    assert got == [3, 1, 2]


@pytest.mark.parametrize("stopping", [True, False])
def test_a_stop_ends_the_loop_quietly_anything_else_escapes(stopping: bool) -> None:
    consumer = FakeConsumer([[(A, _msg(A, 0))]])
    consumer.transport.app.should_stop = stopping

    async def on_fetch(messages: list[Any]) -> None:
        raise ConnectionAbortedError("the consumer stopped")

    if stopping:
        _drain(consumer, on_fetch)
    else:
        with pytest.raises(ConnectionAbortedError):
            _drain(consumer, on_fetch)
