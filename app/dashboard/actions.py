"""What the page's buttons do, each with an entry in the action log.

Checked before anything runs (``Refused`` says why, as one line: an unknown
service, a replay while the group has members, ...), then run in a thread so
that the page keeps updating; every line an action prints goes to its log
entry, which the server pushes to the page.

- services (stop/start; kill -9 for a broker): only when this machine runs the
  native stack (``clickfan up``), through the same calls as `clickfan stop|start`;
- workers and the producer: only those this dashboard runs (``--run`` or
  `clickfan demo`);
- replay: ``experiments.offsets.GroupOffsets.reset``, as `clickfan replay`,
  refused while the group has active members;
- experiments: a quick one as `clickfan experiment NAME`, its output streamed.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from clickfan.app.dashboard.state import ProcessInfo
from clickfan.app.demo import CLICKFAN, AppProcess
from clickfan.compose.native import stack
from clickfan.compose.native.services.kafka import KafkaBroker
from clickfan.errors import ClickfanError
from clickfan.experiments.offsets import GroupOffsets, parse_target, plan_json
from clickfan.settings import Settings
from clickfan.supervision import child_env

LOG_ENTRIES = 100
LOG_LINES = 400  # per entry; an experiment's output is cut at the start
SERVICE_VERBS = {"stop", "start"}
BROKER_VERBS = {"stop", "start", "kill"}
MAX_RATE = 100_000.0


class Refused(Exception):
    """An action that is not run; status is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Entry:
    id: int
    action: str
    started: float
    state: str = "running"  # running | ok | failed
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "started": int(self.started * 1000),
            "finished": int(self.finished * 1000) if self.finished else None,
            "state": self.state,
            "lines": list(self.lines),
        }


# one kind of action: checks its parameters (Refused), then (title, what runs in a thread)
Check = Callable[[dict[str, Any]], tuple[str, Callable[[Entry], None]]]


class ActionLog:
    """Entries newest last; ``changed`` is called (from any thread) on every change."""

    def __init__(self, changed: Callable[[Entry], None] = lambda e: None) -> None:
        self.entries: deque[Entry] = deque(maxlen=LOG_ENTRIES)
        self.changed = changed
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(self, action: str) -> Entry:
        with self._lock:
            entry = Entry(next(self._ids), action, time.time())
            self.entries.append(entry)
        self.changed(entry)
        return entry

    def line(self, entry: Entry, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                entry.lines.append(line.rstrip())
        self.changed(entry)

    def close(self, entry: Entry, ok: bool, text: str = "") -> None:
        if text:
            entry.lines.append(text)
        entry.state = "ok" if ok else "failed"
        entry.finished = time.time()
        self.changed(entry)

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in list(self.entries)]


class _EntryFile(io.TextIOBase):
    """A file for rich's Console that appends each written line to a log entry."""

    def __init__(self, log: ActionLog, entry: Entry) -> None:
        self._log, self._entry = log, entry

    def write(self, text: str) -> int:
        self._log.line(self._entry, text)
        return len(text)


class ManagedApps:
    """The workers and the producer this dashboard runs (none: it only watches)."""

    def __init__(self, apps: list[AppProcess], rate: float | None) -> None:
        self.apps = {a.name: a for a in apps}
        self.rate = rate if "producer" in self.apps else None
        self.lock = threading.Lock()  # one start/stop at a time

    @classmethod
    def start_pipeline(cls, settings: Settings, rate: float, logs: Path) -> ManagedApps:
        apps = [
            AppProcess("es-indexer", [CLICKFAN, "worker", "es"], logs / "dashboard-es-indexer.log"),
            AppProcess(
                "hdfs-archiver", [CLICKFAN, "worker", "hdfs"], logs / "dashboard-hdfs-archiver.log"
            ),
            AppProcess("producer", producer_argv(rate), logs / "dashboard-producer.log"),
        ]
        managed = cls(apps, rate)
        for app in apps:
            if app.name != "producer" or rate > 0:
                app.start()
        return managed

    def stop_all(self) -> None:
        for name in ("producer", "es-indexer", "hdfs-archiver"):  # producer first: workers drain
            if name in self.apps:
                self.apps[name].stop()

    def process_infos(self) -> list[ProcessInfo]:
        return [
            ProcessInfo(a.name, self.running(a.name), a.state, str(a.log_file))
            for a in self.apps.values()
        ]

    def running(self, name: str) -> bool:
        proc = self.apps[name].proc
        return proc is not None and proc.poll() is None


def producer_argv(rate: float) -> list[str]:
    return [CLICKFAN, "produce", "--rate", f"{rate:g}", "--bad-fraction", "0.01"]


class Actions:
    def __init__(
        self,
        settings: Settings,
        apps: ManagedApps,
        log: ActionLog,
        local_stack: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.apps = apps
        self.log = log
        self.local_stack = local_stack
        self.experiment_running = threading.Lock()
        brokers = [s for s in stack.core_services(settings) if isinstance(s, KafkaBroker)]
        self.brokers = [b.name for b in brokers]
        self.services = ["elasticsearch", "datanode", *self.brokers]
        self._offsets: GroupOffsets | None = None  # one admin client for every replay
        # further kinds, each checked and run as those below (deadletters.py adds its own)
        self.more: dict[str, Check] = {}

    def offsets(self) -> GroupOffsets:
        if self._offsets is None:
            self._offsets = GroupOffsets(self.settings.bootstrap_servers)
        return self._offsets

    # -- what the page may offer ------------------------------------------------

    @functools.cached_property
    def quick_experiments(self) -> list[str]:
        # importing the experiments loads matplotlib: once, and not for every page
        from clickfan.experiments.registry import available

        return [n for n, e in available().items() if e.quick]

    def available(self) -> dict[str, Any]:
        return {
            "services": self.services if self.local_stack() else [],
            "brokers": self.brokers if self.local_stack() else [],
            "workers": [n for n in self.apps.apps if n != "producer"],
            "producer": "producer" in self.apps.apps,
            "groups": [self.settings.es_group, self.settings.hdfs_group],
            "experiments": self.quick_experiments,
        }

    # -- checks, then a thread ----------------------------------------------------

    def request(self, kind: str, params: dict[str, Any]) -> Entry:
        """Check one request and start it; Refused when it cannot run."""
        checks: dict[str, Check] = {
            "service": self._service,
            "worker": self._worker,
            "producer": self._producer,
            "replay": self._replay,
            "experiment": self._experiment,
            **self.more,
        }
        if kind not in checks:
            raise Refused(f"unknown action {kind!r}; known: {', '.join(checks)}", 404)
        title, run = checks[kind](params)
        entry = self.log.open(title)
        threading.Thread(
            target=self._run, args=(entry, run), name=f"action-{entry.id}", daemon=True
        ).start()
        return entry

    def _run(self, entry: Entry, run: Callable[[Entry], None]) -> None:
        try:
            run(entry)
        except (ClickfanError, Refused) as exc:
            self.log.close(entry, False, str(exc))
        except Exception as exc:  # the page must hear of any failure
            self.log.close(entry, False, f"failed: {type(exc).__name__}: {exc}")
        else:
            if entry.state == "running":
                self.log.close(entry, True)

    def _service(self, p: dict[str, Any]) -> tuple[str, Callable[[Entry], None]]:
        name, verb = str(p.get("name", "")), str(p.get("verb", ""))
        if not self.local_stack():
            raise Refused(
                "services can only be stopped or started when this machine runs the native "
                "stack (`clickfan up`)",
                403,
            )
        if name not in self.services:
            raise Refused(f"unknown service {name!r}; known: {', '.join(self.services)}", 404)
        verbs = BROKER_VERBS if name in self.brokers else SERVICE_VERBS
        if verb not in verbs:
            raise Refused(f"{name} can be: {', '.join(sorted(verbs))} (not {verb!r})")

        def run(entry: Entry) -> None:
            console = Console(file=_EntryFile(self.log, entry), width=120, highlight=False)
            if verb == "start":
                stack.start_one(self.settings, name, console)
            elif verb == "stop":
                stack.stop_one(self.settings, name, console)
            else:
                pid = stack.running_pid(stack.find_service(self.settings, name))
                if pid is None:
                    raise Refused(f"{name} is not running")
                os.kill(pid, signal.SIGKILL)
                stack.find_service(self.settings, name).pid_file.unlink(missing_ok=True)
                self.log.line(entry, f"killed {name} (kill -9 of pid {pid})")

        return f"{verb} {name}", run

    def _worker(self, p: dict[str, Any]) -> tuple[str, Callable[[Entry], None]]:
        name, verb = str(p.get("name", "")), str(p.get("verb", ""))
        workers = [n for n in self.apps.apps if n != "producer"]
        if name not in workers:
            raise Refused(
                f"unknown worker {name!r}; this dashboard runs: {', '.join(workers) or 'none'}"
                " (start it with --run to control workers)",
                404,
            )
        if verb not in ("stop", "start"):
            raise Refused(f"a worker can be started or stopped (not {verb!r})")

        def run(entry: Entry) -> None:
            app = self.apps.apps[name]
            with self.apps.lock:
                if verb == "start":
                    if self.apps.running(name):
                        self.log.line(entry, f"{name} is already running")
                        return
                    app.start()
                else:
                    app.stop()
            self.log.line(entry, f"{name}: {app.state} (log {app.log_file})")

        return f"{verb} worker {name}", run

    def _producer(self, p: dict[str, Any]) -> tuple[str, Callable[[Entry], None]]:
        if "producer" not in self.apps.apps:
            raise Refused("this dashboard runs no producer (start it with --run)", 404)
        try:
            rate = float(p.get("rate", ""))
        except (TypeError, ValueError):
            raise Refused(
                f"rate must be a number of events per second, not {p.get('rate')!r}"
            ) from None
        if not 0 <= rate <= MAX_RATE:
            raise Refused(f"rate must be between 0 (stopped) and {MAX_RATE:g} events/s")

        def run(entry: Entry) -> None:
            app = self.apps.apps["producer"]
            with self.apps.lock:
                app.stop()
                self.apps.rate = rate
                app.argv = producer_argv(rate)
                if rate > 0:
                    app.start()
            self.log.line(entry, f"producer: {rate:g} events/s, {app.state}")

        return f"producer rate {rate:g}/s", run

    def _replay(self, p: dict[str, Any]) -> tuple[str, Callable[[Entry], None]]:
        group = str(p.get("group", ""))
        groups = (self.settings.es_group, self.settings.hdfs_group)
        if group not in groups:
            raise Refused(f"unknown group {group!r}; known: {', '.join(groups)}", 404)
        shift = p.get("shift")
        try:
            target = parse_target(
                p.get("to") or None, int(shift) if shift not in (None, "") else None
            )
        except (ClickfanError, ValueError) as exc:
            raise Refused(str(exc)) from None
        offsets = self.offsets()
        try:
            offsets.refuse_if_active(group)  # before the log entry: a refusal is the answer
        except ClickfanError as exc:
            raise Refused(str(exc), 409) from None

        def run(entry: Entry) -> None:
            plan = offsets.reset(group, target, topic=self.settings.topic)
            for row in plan_json(group, target, plan, dry_run=False)["partitions"]:
                self.log.line(
                    entry,
                    f"{row['topic']}[{row['partition']}]: {row['current']} -> {row['new']} "
                    f"(log {row['log_start']}..{row['log_end']})",
                )
            total = sum(r.log_end - r.new for r in plan)
            self.log.line(entry, f"{group} now has {total:,} records to read again")

        return f"replay {group} to {target.describe()}", run

    def _experiment(self, p: dict[str, Any]) -> tuple[str, Callable[[Entry], None]]:
        name = str(p.get("name", ""))
        quick = self.quick_experiments
        if name not in quick:
            raise Refused(f"unknown quick experiment {name!r}; known: {', '.join(quick)}", 404)
        if not self.experiment_running.acquire(blocking=False):
            raise Refused("an experiment is already running; wait for it to finish", 409)

        def run(entry: Entry) -> None:
            try:
                argv = [CLICKFAN, "experiment", name, "--out", self.settings.experiment_out]
                env = child_env({**os.environ, "NO_COLOR": "1", "COLUMNS": "120"})
                with subprocess.Popen(
                    argv,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    env=env,
                ) as proc:
                    assert proc.stdout is not None
                    for line in proc.stdout:
                        self.log.line(entry, line)
                if proc.returncode != 0:
                    self.log.close(entry, False, f"exited with {proc.returncode}")
            finally:
                self.experiment_running.release()

        return f"experiment {name}", run
