"""Retry a failing sink operation forever, with backoff, quietly, until it works or is aborted.

A sink that is down must hold its offsets, not drop records and not flood the
log: the first failure is logged, then at most one line per interval while it
lasts, then one line when the sink is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from clickfan.sinks.base import Aborted

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How every sink retries a system that is down: the same for all of them."""

    initial_s: float  # first backoff
    max_s: float  # backoff doubles up to this
    log_interval_s: float  # at most one log line per interval while it lasts


class Retry:
    """Backoff and outage logging for one external system (shared by all its calls)."""

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        policy: RetryPolicy,
        is_transient: Callable[[BaseException], bool],
    ) -> None:
        self.what = what
        self._log = logger
        self._initial_s = policy.initial_s
        self._max_s = policy.max_s
        self._log_interval_s = policy.log_interval_s
        self._is_transient = is_transient
        self._failing_since: float | None = None
        self._failures = 0
        self._last_log = 0.0

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    async def call(self, op: Callable[[], Awaitable[T]], action: str, abort: asyncio.Event) -> T:
        """Run ``op`` until it succeeds; raise Aborted once ``abort`` is set.

        Errors that are not transient (programming errors) propagate.
        """
        delay = self._initial_s
        while True:
            if abort.is_set():
                raise Aborted(f"{action} on {self.what}")
            try:
                result = await op()
            except Aborted:
                raise
            except Exception as exc:
                if not self._is_transient(exc):
                    raise
                self._failed(action, exc)
                try:
                    await asyncio.wait_for(abort.wait(), timeout=delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, self._max_s)
            else:
                self._succeeded()
                return result

    def _failed(self, action: str, exc: BaseException) -> None:
        now = time.monotonic()
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._last_log < self._log_interval_s:
            return
        self._last_log = now
        down_for = now - self._failing_since
        self._log.warning(
            "%s failed (%s: %s); retrying with backoff up to %gs, offsets held "
            "(%d failures in %.0fs)",
            f"{action} on {self.what}",
            type(exc).__name__,
            str(exc)[:500],
            self._max_s,
            self._failures,
            down_for,
        )

    def _succeeded(self) -> None:
        if self._failing_since is None:
            return
        self._log.warning(
            "%s is back after %d failures in %.0fs; catching up",
            self.what,
            self._failures,
            time.monotonic() - self._failing_since,
        )
        self._failing_since = None
        self._failures = 0
