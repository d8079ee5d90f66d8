"""The worker's loud failure path and the faust-streaming version check."""

from __future__ import annotations

import asyncio
import logging
from importlib import metadata

import pytest

from clickfan.errors import ClickfanError
from clickfan.streams import faust_compat, runtime


class FakePipeline:
    def __init__(self) -> None:
        self.stopped = False

    def stop_now(self) -> None:
        self.stopped = True


def _worker() -> tuple[runtime.Worker, FakePipeline]:
    pipeline = FakePipeline()
    worker = runtime.Worker(object(), pipeline, "g", stop_timeout_s=3600)  # type: ignore[arg-type]
    return worker, pipeline


def test_an_error_escaping_a_guarded_coroutine_stops_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker, pipeline = _worker()

    async def agent() -> None:
        raise ValueError("http://[x")

    with caplog.at_level(logging.CRITICAL, logger=runtime.__name__):
        asyncio.run(worker.guard("the agent", agent)())
    assert worker.exit_deadline is not None
    worker.exit_deadline.cancel()  # the process would exit(1) if the orderly stop hung
    assert isinstance(worker.failure, ValueError)
    assert pipeline.stopped  # pending sink work gives up; nothing more is committed
    record = caplog.records[-1]
    assert "the agent failed: ValueError: http://[x" in record.getMessage()
    assert record.exc_info is not None  # a bug: with its traceback


def test_a_stop_by_faust_is_not_a_failure() -> None:
    worker, pipeline = _worker()

    async def agent() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(worker.guard("the agent", agent)())
    assert worker.failure is None and not pipeline.stopped


def test_the_first_failure_is_the_one_reported() -> None:
    worker, _ = _worker()
    worker.fail("the agent", ClickfanError("the dead-letter topic refuses records"))
    worker.fail("the periodic flush", KeyError("later"))
    assert worker.exit_deadline is not None
    worker.exit_deadline.cancel()
    assert isinstance(worker.failure, ClickfanError)


def test_faust_version_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    faust_compat.check_version()  # the installed one is the pinned one
    monkeypatch.setattr(metadata, "version", lambda name: "0.16.0")
    with pytest.raises(ClickfanError) as raised:
        faust_compat.check_version()
    assert raised.value.exit_code == 2
    message = str(raised.value)
    assert "0.16.0" in message and f"pip install faust-streaming=={faust_compat.PINNED}" in message
    assert "\n" not in message


def test_a_repeated_client_error_is_logged_once_per_interval() -> None:
    once = runtime._OncePerInterval(interval_s=3600)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("aiokafka.cluster", logging.ERROR, "", 0, message, None, None)

    missing = "Topic t.dlq not found in cluster metadata"
    assert [once.filter(record(missing)) for _ in range(3)] == [True, False, False]
    assert once.filter(record("Topic other not found in cluster metadata"))
