"""What the tests share, in one place: a test's names, running `clickfan`, waiting,
reading Kafka back, and worker processes.

Tests assert behaviour, not timings: each wait here is bounded and fails with
what it was waiting for and what it saw (plus, where given, the worker logs).
tests/integration/pipeline_support.py re-exports the Kafka and worker helpers
for the pipeline tests, beside its own Elasticsearch and HDFS checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from rich.console import Console

from clickfan import kafka_client
from clickfan.compose.native import stack as native_stack
from clickfan.settings import Settings

# the installed entry point beside this interpreter: tests run clickfan as a user would
CLICKFAN = str(Path(sys.executable).with_name("clickfan"))
T = TypeVar("T")


@dataclass(frozen=True)
class Names:
    """Names owned by one test, so tests never see each other's data."""

    prefix: str
    topic: str
    dlq_topic: str
    es_group: str
    hdfs_group: str
    index_prefix: str
    hdfs_root: str

    @classmethod
    def defaults(cls, settings: Settings) -> Names:
        """The names the settings give (what the compose app containers use)."""
        return cls(
            prefix="",
            topic=settings.topic,
            dlq_topic=settings.dlq_topic,
            es_group=settings.es_group,
            hdfs_group=settings.hdfs_group,
            index_prefix=settings.index_prefix,
            hdfs_root=settings.hdfs_root,
        )

    @classmethod
    def new(cls) -> Names:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        return cls(
            prefix=prefix,
            topic=f"{prefix}.click-logs",
            dlq_topic=f"{prefix}.click-logs.dlq",
            es_group=f"{prefix}.es-indexer",
            hdfs_group=f"{prefix}.hdfs-archiver",
            index_prefix=f"{prefix}-clicks",
            hdfs_root=f"/tests/{prefix}",
        )


def names_env(names: Names) -> dict[str, str]:
    """The CLICKFAN_* variables that confine `clickfan` (workers, demo) to one test's names."""
    return {
        "CLICKFAN_TOPIC": names.topic,
        "CLICKFAN_DLQ_TOPIC": names.dlq_topic,
        "CLICKFAN_ES_GROUP": names.es_group,
        "CLICKFAN_HDFS_GROUP": names.hdfs_group,
        "CLICKFAN_INDEX_PREFIX": names.index_prefix,
        "CLICKFAN_HDFS_ROOT": names.hdfs_root,
    }


def clickfan(
    *args: str,
    env: dict[str, str] | None = None,
    replace_env: bool = False,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `clickfan` command as a user would, capturing its output."""
    full_env = dict(env or {}) if replace_env else {**os.environ, **(env or {})}
    return subprocess.run(
        [CLICKFAN, *args],
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_experiment(name: str, events: int, out: Path, timeout: float) -> dict:
    """`clickfan experiment NAME --events N --out OUT --json`; its report, which must say ok
    (else the failed checks and the tail of stderr)."""
    done = clickfan(
        "experiment", name, "--events", str(events), "--out", str(out), "--json", timeout=timeout
    )
    report = json.loads(done.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert done.returncode == 0 and report["ok"], f"{failed}\n{done.stderr[-3000:]}"
    return report


# -- waiting ---------------------------------------------------------------------


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    describe: Callable[[], str] = lambda: "",
    interval: float = 1.0,
) -> T:
    """Poll ``check`` until it returns something truthy, and return that.

    Fails after ``timeout`` naming ``what``, the last value seen and ``describe()``
    (for example the tail of the worker logs). ``check`` runs at least once, and
    once more after the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            details = describe()
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what} (last: {result!r})"
                + (f"\n{details}" if details else "")
            )
        time.sleep(interval)


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 60, pause: float = 0.5
) -> T:
    """wait_until with the description first, as the stack and monitor tests call it."""
    return wait_until(probe, timeout, what, interval=pause)


# -- Kafka -----------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def _consumer(bootstrap_servers: str, group: str | None = None, **config: object) -> Consumer:
    return Consumer(
        {
            **kafka_client.confluent(bootstrap_servers),  # SASL/TLS on a secure stack
            "group.id": group or f"tests-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # as every reader of the DLQ (written in transactions: streams.deadletter)
            "isolation.level": "read_committed",
            **config,
        }
    )


def read_topic(stack: Settings | str, topic: str, timeout: float = 120) -> list[Record]:
    """Every record of ``topic``, from the log start to the end offsets read at the start.

    ``stack`` is the stack's Settings or a bootstrap-servers string. No group is
    joined and nothing is committed.
    """
    servers = stack if isinstance(stack, str) else stack.bootstrap_servers
    consumer = _consumer(servers, **{"enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Record] = []
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + timeout
        while len(done) < len(partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topic} did not reach its end offsets {ends}")
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= ends[msg.partition()]:
                        done.add(msg.partition())
                    continue
                raise AssertionError(f"reading {topic}: {msg.error()}")
            if msg.offset() < ends[msg.partition()]:
                records.append(
                    Record(
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.value(),
                        dict(msg.headers() or []),
                    )
                )
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        return records
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str, partitions: int) -> dict[int, int]:
    consumer = _consumer(settings.bootstrap_servers)
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


# A group's coordinator can move or still be loading: ask again rather than fail.
_COORDINATOR_BUSY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
}


def committed(settings: Settings, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets (-1001 when none), read without joining the group."""
    deadline = time.monotonic() + 30
    while True:
        consumer = _consumer(settings.bootstrap_servers, group)
        try:
            tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
            return {tp.partition: tp.offset for tp in tps}
        except KafkaException as exc:
            if exc.args[0].code() not in _COORDINATOR_BUSY or time.monotonic() > deadline:
                raise
        finally:
            consumer.close()
        time.sleep(0.5)


def lag(settings: Settings, group: str, topic: str) -> int:
    """Total lag of ``group`` on ``topic`` (records not yet committed)."""
    ends = end_offsets(settings, topic, settings.partitions)
    done = committed(settings, group, topic, settings.partitions)
    return sum(end - max(done[p], 0) for p, end in ends.items())


def argv_of_every_process() -> dict[int, str]:
    """pid -> command line of every process on this machine (to look for secrets in)."""
    argv = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv[int(proc.name)] = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue  # it ended meanwhile
    return argv


def process_gone(pid: int) -> bool:
    """Exited (an orphan that exited but is not reaped yet by its adopter counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# -- worker processes --------------------------------------------------------------


def worker_env(settings: Settings, names: Names, **extra: object) -> dict[str, str]:
    """Environment for `clickfan worker` processes confined to one test's names.

    ``extra`` adds settings: ``hdfs_roll_s=5`` becomes CLICKFAN_HDFS_ROLL_S=5.
    """
    env = {
        **os.environ,
        **names_env(names),
        # small rolls, so that tests see many of them (and kills land inside them)
        "CLICKFAN_HDFS_ROLL_S": "2",
        "CLICKFAN_HDFS_ROLL_RECORDS": "1000",
        "CLICKFAN_WORKER_STATS_INTERVAL_S": "5",
        "CLICKFAN_SINK_RETRY_MAX_S": "2",
        "CLICKFAN_SINK_LOG_INTERVAL_S": "5",
        # a killed member's partitions move on sooner
        "CLICKFAN_WORKER_SESSION_TIMEOUT_S": "10",
    }
    env.update({f"CLICKFAN_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    """One `clickfan worker es|hdfs` process; restartable, its logs kept in one file.

    Configured through the environment (worker_env), so that the tests exercise
    the CLICKFAN_* path; experiments' Worker passes the same names as flags.
    """

    def __init__(
        self, kind: str, env: dict[str, str], log_dir: Path, name: str, args: tuple[str, ...] = ()
    ) -> None:
        self.kind = kind
        self.args = args  # flags after `clickfan worker KIND`
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start #{self.starts} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [CLICKFAN, "worker", self.kind, *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM and wait; the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            return None

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def logs(workers: Iterable[WorkerProcess]) -> str:
    return "\n".join(f"--- {w.log_path.name} ---\n{w.tail()}" for w in workers)


class Workers(list[WorkerProcess]):
    """Worker processes run together by `running`; once stopped, ``codes`` holds each
    one's exit code (None: it had to be killed), in order."""

    def __init__(self, workers: Iterable[WorkerProcess]) -> None:
        super().__init__(workers)
        self.codes: list[int | None] = []

    def of_kind(self, kind: str) -> list[WorkerProcess]:
        return [w for w in self if w.kind == kind]


@contextlib.contextmanager
def running(workers: Iterable[WorkerProcess]) -> Iterator[Workers]:
    """Start each worker (again, for one that ran before) and SIGTERM each on leaving,
    whatever happened inside; the exit codes are then in ``.codes``."""
    started = Workers(workers)
    try:
        for w in started:
            w.start()
        yield started
    finally:
        started.codes = [w.stop() for w in started]


def running_workers(
    env: dict[str, str],
    log_dir: Path,
    kinds: Sequence[str] = ("es", "hdfs"),
    args: tuple[str, ...] = (),
) -> contextlib.AbstractContextManager[Workers]:
    """`running` one `clickfan worker KIND [ARGS]` per entry of ``kinds``, all with ``env``
    (usually worker_env); the logs are KIND-1.log, KIND-2.log... in ``log_dir``."""
    seen: Counter[str] = Counter()
    workers = []
    for kind in kinds:
        seen[kind] += 1
        workers.append(WorkerProcess(kind, env, log_dir, f"{kind}-{seen[kind]}", args))
    return running(workers)


def wait_drained(
    stack: Settings,
    names: Names,
    workers: Sequence[WorkerProcess],
    *,
    groups: Sequence[str] | None = None,
    timeout: float,
    what: str | None = None,
    fail_fast: bool = False,
    describe: Callable[[], str] | None = None,
    interval: float = 1.0,
) -> None:
    """Wait until each of ``groups`` (default: both of the test's groups) has committed
    every offset of the test's topic (lag 0), failing with the workers' logs.

    ``fail_fast``: a worker that exits fails the wait at once rather than at the timeout.
    """
    if groups is None:
        groups = (names.es_group, names.hdfs_group)
        what = what or "both groups to commit every offset"
    what = what or f"{', '.join(groups)} to commit every offset"
    report = describe or (lambda: logs(workers))

    def drained() -> bool:
        if fail_fast:
            exited = [w.log_path.name for w in workers if not w.running]
            assert not exited, f"a worker exited ({exited})\n{report()}"
        return all(lag(stack, g, names.topic) == 0 for g in groups)

    wait_until(drained, timeout=timeout, what=what, describe=report, interval=interval)


class ServiceControl:
    """Stop, start and kill -9 one service of whichever stack the run uses.

    Native: the stack's own stop/start (as `clickfan stop|start NAME`) and SIGKILL of its
    pid; Docker: `docker compose stop|start|kill -s KILL NAME`, so the container engine
    sees the fault as it would in production. With --stack=external the test is skipped:
    it does not own those services.
    """

    def __init__(self, settings: Settings, mode: str, compose_dir: Path) -> None:
        self._settings = settings
        self._mode = mode
        self._compose_dir = compose_dir
        self._console = Console(stderr=True, quiet=True)

    def _compose(self, *args: str) -> None:
        subprocess.run(
            ["docker", "compose", *args], cwd=self._compose_dir, check=True, capture_output=True
        )

    def _require_native(self) -> None:
        if self._mode != "native":
            pytest.skip(f"--stack={self._mode}: the test would stop services it does not own")

    def stop(self, name: str) -> None:
        if self._mode == "docker":
            self._compose("stop", name)
            return
        self._require_native()
        native_stack.stop_one(self._settings, name, self._console)

    def start(self, name: str) -> None:
        """Start it again and wait until it answers."""
        if self._mode == "docker":
            self._compose("up", "-d", "--no-build", "--wait", name)
            return
        self._require_native()
        native_stack.start_one(self._settings, name, self._console)

    def kill(self, name: str) -> None:
        """kill -9: no shutdown, no flush."""
        if self._mode == "docker":
            self._compose("kill", "-s", "KILL", name)
            return
        self._require_native()
        pid = native_stack.running_pid(native_stack.find_service(self._settings, name))
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
