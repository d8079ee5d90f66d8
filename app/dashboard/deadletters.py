"""The page's dead letters: counts by group and reason, the letters, re-drive and purge.

The counts are `clickfan dlq --json`'s, from the same code (streams.dlq: ``read``,
``summarize``, ``summary_json``). A task re-counts every few seconds and pushes them
as the server-sent event ``deadletters``; each round reads only what the DLQ gained
since the last one, and the whole DLQ again after an action of the page and every
FULL_READ_S (a purge by the CLI, retention moving the log start).

GET  /api/deadletters          the counts (what the event carries)
GET  /api/deadletters/letters  a page of one group's (and reason's) letters with their
                               headers, every value previewed as `clickfan dlq show` does
                               (invalid UTF-8 and control characters escaped); they are
                               records' contents, so asked with an action's protections
POST /api/actions/dlq-redrive  {group, reason?, since?, dry_run?}
POST /api/actions/dlq-purge    {group, before}
POST /api/actions/dlq-stop     {group}: ends a running re-drive (SIGTERM, as Ctrl-C)

Re-drive and purge run `clickfan dlq redrive|purge` as child processes, their output
in the action log: the CLI's code, its rounds, progress and confirmation (the page
asks; the child gets --yes). Refused before anything runs: an unknown group or
reason, a group with no dead letters (or none of that reason), a second re-drive of
a group, a purge while its re-drive runs. A re-drive into a sink that is down holds
and retries, as the CLI does; its entry says so and it can be stopped from the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from confluent_kafka import KafkaException

from clickfan.app.dashboard.actions import Actions, Entry, Refused
from clickfan.app.demo import CLICKFAN
from clickfan.errors import ClickfanError
from clickfan.settings import Settings
from clickfan.streams import dlq as dlqs
from clickfan.streams.dlq_commands import ALL_REASONS
from clickfan.supervision import child_env

if TYPE_CHECKING:
    from clickfan.app.dashboard.server import Dashboard

MALFORMED = "(malformed headers)"  # summarize's group and reason for those without ours
FULL_READ_S = 60.0
MIN_PERIOD_S = 2.0
STOP_WAIT_S = 10.0  # `clickfan demo` waits 15 s for the whole dashboard to stop
PAGE = 20
MAX_PAGE = 200
VALUE_CHARS = 2000
HOLDING = (
    "the sink is down: the re-drive holds its dead letters (nothing committed) and "
    "retries until the sink is back; leave it running, or stop it here and re-drive later"
)
_PAST = 2**62  # a start beyond any partition's end: read nothing of it

ReadFn = Callable[..., Generator[dlqs.Letter, None, None]]  # streams.dlq.read's signature


class DeadLetterCounts:
    """`clickfan dlq --json`'s summary, kept up to date by reading only what is new."""

    def __init__(self, bootstrap_servers: str, topic: str, read: ReadFn = dlqs.read) -> None:
        self.bootstrap = bootstrap_servers
        self.topic = topic
        self.read = read
        self.summary: dict[str, dict[str, dlqs.Tally]] = {}
        self.error: str | None = None
        self.at_ms: int | None = None
        self._next: dict[int, int] = {}  # partition -> the first offset not counted yet
        self._full_at: float | None = None  # monotonic time of the last whole read
        self._lock = threading.Lock()

    def stale(self) -> None:
        """Read everything again next time (a purge or a re-drive changed the view)."""
        with self._lock:
            self._full_at = None

    def refresh(self) -> dict[str, Any]:
        with self._lock:
            full = self._full_at is None or time.monotonic() - self._full_at >= FULL_READ_S
            summary = {} if full else copy.deepcopy(self.summary)
            ends: dict[int, int] = {}
            letters = self.read(
                self.bootstrap, self.topic, dlqs.Filter(), None if full else self._next, ends
            )
            try:
                dlqs.summarize(letters, into=summary)
            except (ClickfanError, KafkaException) as exc:  # the last counts stay shown
                self.error = str(exc)
                return self.to_json()
            self.summary, self._next, self.error = summary, ends, None
            self.at_ms = int(time.time() * 1000)
            if full:
                self._full_at = time.monotonic()
            return self.to_json()

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "at": self.at_ms,
            "error": self.error,
            "total": sum(t.count for reasons in self.summary.values() for t in reasons.values()),
            "groups": dlqs.summary_json(self.summary),
            "reasons": list(ALL_REASONS),
        }


def letter_json(letter: dlqs.Letter) -> dict[str, Any]:
    """One letter for the page: everything from the record previewed (escaped) as
    `clickfan dlq show` prints it; the page adds it as text, never as markup."""

    def text(value: str) -> str:
        return dlqs.preview(value.encode(), 300)

    return {
        "partition": letter.partition,
        "offset": letter.offset,
        "dead_lettered": dlqs.show_time(letter.timestamp_ms),
        "problem": letter.problem,
        "group": None if letter.group is None else text(letter.group),
        "reason": None if letter.reason is None else text(letter.reason),
        "attempt": letter.attempt,
        "message": text(letter.message),
        "source": None
        if letter.problem is not None
        else {
            "topic": text(letter.source_topic),
            "partition": letter.source_partition,
            "offset": letter.source_offset,
        },
        "headers": [
            [dlqs.preview(k.encode(), 80), dlqs.preview(v, 200)] for k, v in letter.headers
        ],
        "key": dlqs.preview(letter.key, 200),
        "value": dlqs.preview(letter.value, VALUE_CHARS),
        "value_bytes": None if letter.value is None else len(letter.value),
    }


class DeadLetters:
    """The panel's reading, its letters, and its actions (registered on ``actions``)."""

    def __init__(
        self,
        settings: Settings,
        actions: Actions,
        read: ReadFn = dlqs.read,
        command: tuple[str, ...] = (CLICKFAN,),
    ) -> None:
        self.settings = settings
        self.actions = actions
        self.counts = DeadLetterCounts(settings.bootstrap_servers, settings.dlq_topic, read)
        self.command = command
        self.period_s = max(settings.dashboard_interval_s, MIN_PERIOD_S)
        self.groups = (settings.es_group, settings.hdfs_group)
        self.redrives: dict[str, subprocess.Popen[str] | None] = {}  # None: about to start
        self.children: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        actions.more.update(
            {"dlq-redrive": self._redrive, "dlq-purge": self._purge, "dlq-stop": self._stop_redrive}
        )

    # -- the server's part ----------------------------------------------------------

    def install(self, app: web.Application, dashboard: Dashboard) -> None:
        async def counts(request: web.Request) -> web.Response:
            if self.counts.at_ms is None and self.counts.error is None:
                await asyncio.to_thread(self.counts.refresh)
            return web.json_response(self.counts.to_json())

        async def letters(request: web.Request) -> web.Response:
            try:
                dashboard.check_request(request)
                q = request.query
                args = (q.get("group", ""), q.get("reason"), q.get("after"), q.get("limit"))
                found = await asyncio.to_thread(self.letters, *args)
            except Refused as exc:
                return web.json_response({"error": str(exc)}, status=exc.status)
            return web.json_response(found)

        async def startup(app: web.Application) -> None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._loop(dashboard.hub.publish))

        async def cleanup(app: web.Application) -> None:
            if self._stop is not None:
                self._stop.set()
            if self._task is not None:
                await self._task
            await asyncio.to_thread(self.stop_children)

        app.router.add_get("/api/deadletters", counts)
        app.router.add_get("/api/deadletters/letters", letters)
        app.on_startup.append(startup)
        app.on_cleanup.append(cleanup)

    async def _loop(self, publish: Callable[[str, Any], None]) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                publish("deadletters", await asyncio.to_thread(self.counts.refresh))
            except Exception as exc:  # one failed count must not end the panel
                self.counts.error = f"counting failed: {type(exc).__name__}: {exc}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.period_s)

    def stop_children(self) -> None:
        """The dashboard stops: its re-drives stop too (SIGTERM: they commit what is
        durable and exit; the next run resumes the round)."""
        with self._lock:
            children = list(self.children)
        for proc in children:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in children:
            try:
                proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()  # safe: a re-drive resumes after a kill -9, nothing twice

    # -- show -------------------------------------------------------------------------

    def letters(
        self, group: str, reason: str | None, after: str | None, limit: str | None
    ) -> dict[str, Any]:
        """A page of ``group``'s letters (of ``reason``) after the cursor "partition:offset"."""
        try:
            count = PAGE if limit in (None, "") else int(limit)
        except ValueError:
            raise Refused(f"limit must be a number, not {limit!r}") from None
        if not 1 <= count <= MAX_PAGE:
            raise Refused(f"limit must be between 1 and {MAX_PAGE}")
        starts: dict[int, int] | None = None
        if after:
            try:
                partition, offset = (int(x) for x in after.split(":"))
            except ValueError:
                raise Refused(f"after must be partition:offset, not {after!r}") from None
            starts = {p: _PAST for p in range(partition)} | {partition: offset + 1}
        summary = self.counts.summary
        if group not in summary:
            self.counts.refresh()  # new since the last round?
            summary = self.counts.summary
        if group not in summary:
            raise Refused(f"no dead letters of {group!r} on {self.settings.dlq_topic}", 404)
        if reason and reason not in summary[group]:
            raise Refused(
                f"no dead letters of {group} with reason {reason!r}; it has: "
                f"{', '.join(sorted(summary[group]))}",
                404,
            )
        malformed = group == MALFORMED
        wanted = dlqs.Filter() if malformed else dlqs.Filter(group, reason or None)
        shown: list[dict[str, Any]] = []
        more = False
        last: dlqs.Letter | None = None
        s = self.settings
        found = self.counts.read(s.bootstrap_servers, s.dlq_topic, wanted, starts)
        try:
            for letter in found:
                if malformed and letter.problem is None:
                    continue
                if len(shown) == count:
                    more = True
                    break
                shown.append(letter_json(letter))
                last = letter
        except (ClickfanError, KafkaException) as exc:
            raise Refused(f"cannot read {s.dlq_topic}: {exc}", 503) from None
        finally:
            found.close()
        return {
            "group": group,
            "reason": reason or None,
            "letters": shown,
            "next": f"{last.partition}:{last.offset}" if more and last is not None else None,
        }

    # -- actions ----------------------------------------------------------------------

    def _group(self, p: dict[str, Any]) -> str:
        group = str(p.get("group") or "")
        if group not in self.groups:
            raise Refused(f"unknown group {group!r}; the groups are {', '.join(self.groups)}", 404)
        return group

    def _time(self, p: dict[str, Any], key: str) -> int | None:
        text = str(p.get(key) or "").strip()
        if not text:
            return None
        try:
            return dlqs.parse_time(text)
        except ValueError as exc:
            raise Refused(f"{key}: {exc}") from None

    def _has(self, group: str, reason: str | None = None) -> None:
        """Refused unless the DLQ holds dead letters of ``group`` (of ``reason``) now."""
        self.counts.refresh()
        if self.counts.error is not None:
            raise Refused(f"cannot read {self.settings.dlq_topic}: {self.counts.error}", 503)
        have = self.counts.summary.get(group, {})
        if not have:
            raise Refused(f"no dead letters of {group} on {self.settings.dlq_topic}", 409)
        if reason is not None and reason not in have:
            raise Refused(
                f"no dead letters of {group} with reason {reason}; it has: "
                f"{', '.join(sorted(have))}",
                409,
            )

    def _connection(self) -> list[str]:
        s = self.settings
        return ["--dlq-topic", s.dlq_topic, "--bootstrap-servers", s.bootstrap_servers]

    def _redrive(self, p: dict[str, Any]) -> tuple[str, Callable[[Entry], None]]:
        group = self._group(p)
        reason = str(p.get("reason") or "") or None
        if reason is not None and reason not in ALL_REASONS:
            known = ", ".join(ALL_REASONS)
            raise Refused(f"unknown reason {reason!r}; the reasons are {known}", 404)
        since = self._time(p, "since")
        dry_run = bool(p.get("dry_run"))
        self._has(group, reason)
        argv = [*self.command, "dlq", "redrive", "--group", group, *self._connection()]
        argv += ["--loglevel", "warning"]  # the page's log: the outcome and the sink's retries
        if reason is not None:
            argv += ["--reason", reason]
        if since is not None:
            argv += ["--since", dlqs.show_time(since)]
        if dry_run:
            argv.append("--dry-run")
        else:
            with self._lock:
                if group in self.redrives:
                    raise Refused(f"a re-drive of {group} is running; wait for it or stop it", 409)
                self.redrives[group] = None
        title = (
            f"re-drive {group}"
            + (f" reason {reason}" if reason else "")
            + (f" since {dlqs.show_time(since)}" if since is not None else "")
            + (" (dry run)" if dry_run else "")
        )
        return title, lambda entry: self._child(entry, argv, None if dry_run else group)

    def _purge(self, p: dict[str, Any]) -> tuple[str, Callable[[Entry], None]]:
        group = self._group(p)
        before = self._time(p, "before")
        if before is None:
            raise Refused("before: a time is needed (ISO 8601, an age such as 2h, or now)")
        with self._lock:
            if group in self.redrives:
                raise Refused(f"a re-drive of {group} is running: purge when it is done", 409)
        self._has(group)
        argv = [*self.command, "dlq", "purge", "--group", group, "--yes", *self._connection()]
        argv += ["--before", dlqs.show_time(before)]  # the time the page confirmed
        return f"purge {group} before {dlqs.show_time(before)}", lambda e: self._child(e, argv)

    def _stop_redrive(self, p: dict[str, Any]) -> tuple[str, Callable[[Entry], None]]:
        group = self._group(p)
        with self._lock:
            proc = self.redrives.get(group)
        if proc is None:
            raise Refused(f"no re-drive of {group} is running", 409)

        def run(entry: Entry) -> None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            self.actions.log.line(
                entry,
                f"asked the re-drive of {group} to stop: what its sink made durable is "
                "committed, the rest is re-driven by the next run",
            )

        return f"stop the re-drive of {group}", run

    def _child(self, entry: Entry, argv: list[str], redrive_of: str | None = None) -> None:
        log = self.actions.log
        env = child_env({**os.environ, "NO_COLOR": "1", "COLUMNS": "120"})
        proc: subprocess.Popen[str] | None = None
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="backslashreplace",
                env=env,
            )
            with self._lock:
                self.children.add(proc)
                if redrive_of is not None:
                    self.redrives[redrive_of] = proc
            with proc:
                assert proc.stdout is not None
                holding = False
                for line in proc.stdout:
                    log.line(entry, line)
                    if not holding and "retrying with backoff" in line:
                        holding = True
                        log.line(entry, HOLDING)
            if proc.returncode != 0:
                log.close(entry, False, f"exited with {proc.returncode}")
        finally:
            with self._lock:
                if proc is not None:
                    self.children.discard(proc)
                if redrive_of is not None:
                    self.redrives.pop(redrive_of, None)
            self.counts.stale()
