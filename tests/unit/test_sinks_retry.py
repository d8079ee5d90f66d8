"""Retrying a down sink: until it works, quietly, and giving up only when aborted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from clickfan.sinks.base import Aborted
from clickfan.sinks.retry import Retry, RetryPolicy


def _retry(logger: logging.Logger, log_interval_s: float = 60.0) -> Retry:
    return Retry(
        "thing",
        logger,
        RetryPolicy(initial_s=0.001, max_s=0.002, log_interval_s=log_interval_s),
        is_transient=lambda exc: isinstance(exc, ConnectionError),
    )


def test_retries_transient_errors_until_success_logging_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def op() -> str:
        nonlocal calls
        calls += 1
        if calls < 20:
            raise ConnectionError("down")
        return "ok"

    logger = logging.getLogger("test.retry")
    with caplog.at_level(logging.WARNING, logger="test.retry"):
        result = asyncio.run(_retry(logger).call(op, "writing", asyncio.Event()))
    assert result == "ok" and calls == 20
    # one line when it failed, one when it came back: not one per attempt
    assert len(caplog.records) == 2
    assert "back after 19 failures" in caplog.records[-1].getMessage()


def test_other_errors_propagate() -> None:
    async def op() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        asyncio.run(_retry(logging.getLogger("t")).call(op, "x", asyncio.Event()))


def test_abort_stops_retrying() -> None:
    async def scenario() -> None:
        abort = asyncio.Event()

        async def op() -> None:
            raise ConnectionError("down")

        task = asyncio.ensure_future(_retry(logging.getLogger("t")).call(op, "x", abort))
        await asyncio.sleep(0.05)
        assert not task.done()
        abort.set()
        with pytest.raises(Aborted):
            await task

    asyncio.run(scenario())
