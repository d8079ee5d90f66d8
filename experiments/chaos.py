"""Faults at seeded random moments, for the soak: workers and services, and their repair.

Two loops run side by side, each one fault at a time:

- worker faults: kill -9 of a worker process (restarted a moment later), and
  SIGSTOP of one (SIGCONT after a pause that is sometimes longer than the
  session timeout, so its group moves its partitions to the other process
  and it wakes up a zombie);
- service faults: kill -9 of a Kafka broker, Elasticsearch stopped, the
  DataNode stopped; each started again after a while with `clickfan start`'s
  own function, which waits until the service is healthy.

A :class:`WorkerPool` also plays supervisor: a worker process that exits on
its own (as a worker must when something unexpected escapes) is started
again, and the exit is counted. :meth:`Chaos.restore` starts again whatever
a fault of this run left down: it is called in a ``finally``, so a broken run
never leaves a service of the stack down.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console

from clickfan.experiments.acks import kill_broker, start_broker
from clickfan.experiments.framework import Context
from clickfan.experiments.workers import Worker, clickfan_executable

WORKER_FAULTS = ("kill9-worker", "sigstop-worker")
SERVICE_FAULTS = ("kill9-broker", "stop-elasticsearch", "stop-datanode")
FAULT_KINDS = WORKER_FAULTS + SERVICE_FAULTS


@dataclass
class Fault:
    kind: str
    target: str
    started_s: float  # seconds since the run began
    ended_s: float | None = None
    note: str = ""


@dataclass
class FaultLog:
    """Every fault, as it happened; shared by the threads (appends are atomic)."""

    began: float = field(default_factory=time.monotonic)
    faults: list[Fault] = field(default_factory=list)
    worker_exits: list[tuple[float, str, int]] = field(default_factory=list)  # (t, worker, code)

    def now(self) -> float:
        return time.monotonic() - self.began

    def counts(self) -> dict[str, int]:
        found = Counter(f.kind for f in self.faults)
        return {kind: found.get(kind, 0) for kind in FAULT_KINDS}


class WorkerPool:
    """The run's worker processes: ``per_group`` of each kind, supervised."""

    def __init__(self, ctx: Context, dlq_topic: str, per_group: int) -> None:
        self.workers: list[Worker] = []
        for kind in ("es", "hdfs"):
            for i in range(1, per_group + 1):
                w = Worker(ctx, kind, dlq_topic)
                w.log = ctx.out_dir / f"worker-{kind}-{i}.log"
                self.workers.append(w)
        self._stopped: set[int] = set()  # indexes of SIGSTOPped workers
        self._lock = threading.Lock()
        self.restarts = 0

    @property
    def paused(self) -> set[int]:
        return set(self._stopped)

    def label(self, w: Worker) -> str:
        return w.log.stem

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def kill9(self, w: Worker) -> None:
        with self._lock:
            if w.proc is not None and w.proc.poll() is None:
                os.killpg(w.proc.pid, signal.SIGKILL)
                w.proc.wait(30)

    def pause(self, w: Worker) -> bool:
        with self._lock:
            if w.proc is None or w.proc.poll() is not None:
                return False
            os.killpg(w.proc.pid, signal.SIGSTOP)
            self._stopped.add(id(w))
            return True

    def resume(self, w: Worker) -> None:
        with self._lock:
            if id(w) in self._stopped and w.proc is not None and w.proc.poll() is None:
                os.killpg(w.proc.pid, signal.SIGCONT)
            self._stopped.discard(id(w))

    def restart(self, w: Worker) -> None:
        with self._lock:
            w.start()  # no-op when it runs
            self.restarts += 1

    def supervise(self, log: FaultLog, expected_down: set[int]) -> None:
        """Start again any worker that exited while no fault was holding it down."""
        for w in self.workers:
            with self._lock:
                exited = w.proc is not None and w.proc.poll() is not None
                if not exited or id(w) in expected_down:
                    continue
                log.worker_exits.append((log.now(), self.label(w), w.proc.returncode))
                w.start()

    def resume_all(self) -> None:
        for w in self.workers:
            self.resume(w)

    def stop(self) -> None:
        self.resume_all()
        for w in self.workers:
            w.stop()

    def alive(self) -> dict[str, bool]:
        return {self.label(w): w.running() for w in self.workers}


class Chaos:
    """The two fault loops and the supervisor, until ``stop`` is set."""

    def __init__(
        self,
        ctx: Context,
        pool: WorkerPool,
        log: FaultLog,
        seed: int,
        say: Callable[[str], None],
        services: bool = True,
        workers: bool = True,
    ) -> None:
        """``services`` / ``workers``: whether that loop injects faults at all."""
        self.ctx = ctx
        self._loops = [self._supervisor_loop]
        if workers:
            self._loops.append(self._worker_loop)
        if services:
            self._loops.append(self._service_loop)
        self.pool = pool
        self.log = log
        self.say = say
        self.stop = threading.Event()
        self._worker_rng = random.Random(f"chaos-workers-{seed}")
        self._service_rng = random.Random(f"chaos-services-{seed}")
        self._held: set[int] = set()  # workers killed on purpose, not yet restarted
        self._down: set[str] = set()  # services a fault stopped, not yet started again
        self._threads: list[threading.Thread] = []
        self._quiet = Console(stderr=True, quiet=True)
        self.errors: list[str] = []

    def start(self) -> None:
        for target in self._loops:
            thread = threading.Thread(target=self._guard(target), daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout_s: float = 300) -> None:
        """Wait for the loops to finish the fault in hand (each restores what it broke)."""
        self.stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except Exception as exc:  # the report says which loop broke; restore() repairs
                self.errors.append(f"{loop.__name__}: {type(exc).__name__}: {exc}")
                self.say(f"[red]fault loop {loop.__name__} failed:[/] {exc}")

        return run

    def _begin(self, kind: str, target: str) -> Fault:
        fault = Fault(kind, target, self.log.now())
        self.log.faults.append(fault)
        self.say(f"[yellow]fault[/] t={fault.started_s:5.0f}s {kind} {target}")
        return fault

    def _end(self, fault: Fault, note: str = "") -> None:
        fault.ended_s = self.log.now()
        fault.note = note
        self.say(
            f"[green]repaired[/] t={fault.ended_s:5.0f}s {fault.kind} {fault.target}"
            + (f" ({note})" if note else "")
        )

    # ------------------------------------------------------------------ loops
    def _worker_loop(self) -> None:
        rng = self._worker_rng
        n = 0
        while not self.stop.wait(rng.uniform(4.0, 12.0)):
            kind = WORKER_FAULTS[n % len(WORKER_FAULTS)]  # alternate: each kind happens
            n += 1
            victim = rng.choice(self.pool.workers)
            label = self.pool.label(victim)
            if kind == "kill9-worker":
                fault = self._begin(kind, label)
                self._held.add(id(victim))
                self.pool.kill9(victim)
                time.sleep(rng.uniform(0.5, 4.0))
                self.pool.restart(victim)
                self._held.discard(id(victim))
                self._end(fault)
            else:
                if not self.pool.pause(victim):
                    continue
                fault = self._begin(kind, label)
                # sometimes past the session timeout: the group moves on without it
                pause = rng.choice((rng.uniform(1.0, 5.0), rng.uniform(12.0, 20.0)))
                time.sleep(pause)
                self.pool.resume(victim)
                self._end(fault, f"stopped {pause:.0f}s")

    def _service_loop(self) -> None:
        rng = self._service_rng
        order = list(SERVICE_FAULTS)
        rng.shuffle(order)
        i = 0
        while not self.stop.wait(rng.uniform(5.0, 15.0)):
            kind = order[i % len(order)]
            i += 1
            down_s = rng.uniform(3.0, 12.0)
            if kind == "kill9-broker":
                name = f"kafka-{rng.randint(1, 3)}"
                fault = self._begin(kind, name)
                self._down.add(name)
                kill_broker(self.ctx, int(name[-1]))
            else:
                name = "elasticsearch" if kind == "stop-elasticsearch" else "datanode"
                fault = self._begin(kind, name)
                self._down.add(name)
                self._stop_service(name)
            # The restart runs in a process of its own, so the service comes back even if
            # this one dies meanwhile (a native crash in a Kafka client, Ctrl-C twice).
            repair = self._repairer(name, down_s)
            try:
                code = repair.wait(down_s + self.ctx.settings.start_timeout_s + 60)
            except subprocess.TimeoutExpired:
                repair.kill()
                code = None
            if code != 0:
                self.errors.append(f"`clickfan start {name}` ended with {code}; started here")
                self._start_service(name)
            self._down.discard(name)
            self._end(fault, f"down {down_s:.0f}s before the restart")

    def _supervisor_loop(self) -> None:
        while not self.stop.wait(1.0):
            self.pool.supervise(self.log, self._held | self.pool.paused)

    def _stop_service(self, name: str) -> None:
        from clickfan.compose.native.stack import stop_one

        stop_one(self.ctx.settings, name, self._quiet)

    def _repairer(self, name: str, after_s: float) -> subprocess.Popen[bytes]:
        """`clickfan start NAME` after ``after_s``, detached from this process."""
        log = self.ctx.out_dir / "repairs.log"
        with log.open("ab") as out:
            return subprocess.Popen(
                ["/bin/sh", "-c", 'sleep "$0"; exec "$@"', f"{after_s:.1f}"]
                + [*clickfan_executable(), "start", name],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _start_service(self, name: str) -> None:
        if name.startswith("kafka-"):
            start_broker(self.ctx, int(name[-1]))  # waits for a JVM killed a moment ago
            return
        from clickfan.compose.native.stack import start_one

        start_one(self.ctx.settings, name, self._quiet)

    # ---------------------------------------------------------------- repair
    def restore(self) -> list[str]:
        """Start what a fault left down, resume and restart the workers; what failed.

        Only services this run took down: on a shared stack, someone else's
        stopped service is theirs to start.
        """
        problems = []
        for name in sorted(self._down):
            try:
                self._start_service(name)
                self._down.discard(name)
            except Exception as exc:
                problems.append(f"{name}: {exc}")
        self.pool.resume_all()
        self._held.clear()
        self.pool.supervise(self.log, set())
        return problems
