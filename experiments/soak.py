"""`clickfan soak --minutes N`: steady traffic, hostile records and faults; then count everything.

This kills and stops services of the stack the environment points at (a
broker, Elasticsearch, the DataNode) and starts them again: run it on a stack
of your own, or tell the people sharing it first.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from rich.console import Console
from rich.table import Table

from clickfan import kafka_client
from clickfan import settings as settings_module
from clickfan.errors import ClickfanError
from clickfan.experiments import plots
from clickfan.experiments.chaos import FAULT_KINDS, Chaos, FaultLog, WorkerPool
from clickfan.experiments.framework import Context, Experiment, ExperimentFailed, run_experiment
from clickfan.experiments.soak_accounting import (
    HOSTILE_TAG,
    Accounting,
    DeadLetter,
    LogRecord,
    account,
)
from clickfan.experiments.workers import create_dlq, es_cleanup, hdfs_cleanup, hdfs_client
from clickfan.generators.hostile import HostileMutator, HostileSender
from clickfan.generators.producer import ClickProducer, ProduceSummary, Progress, StopSignal

# the workers' settings for the run (unless the environment sets them): a killed or
# stopped member's partitions move within seconds, a down sink is retried every 2 s
_WORKER_ENV = {
    "CLICKFAN_WORKER_SESSION_TIMEOUT_S": "10",
    "CLICKFAN_SINK_RETRY_MAX_S": "2",
    "CLICKFAN_SINK_LOG_INTERVAL_S": "10",
    "CLICKFAN_WORKER_STATS_INTERVAL_S": "10",
}
T = TypeVar("T")
_quiet_log = logging.getLogger(f"{__name__}.librdkafka")
_quiet_log.addHandler(logging.NullHandler())
_quiet_log.propagate = False
_SAMPLE_EVERY_S = 2.0
_PROGRESS_EVERY_S = 10.0


@dataclasses.dataclass(frozen=True)
class SoakOptions:
    minutes: float
    rate: float
    seed: int
    hostile_fraction: float
    workers_per_group: int
    drain_timeout_s: float
    exclude: tuple[str, ...]
    faults: str  # all | workers | none


class Soak(Experiment):
    name = "soak"
    title = "traffic, hostile records and faults at random moments: every event once"
    claim_ko = """
- 고가용성, 낮은 지연 등의 특징을 가진다.
- 장애 지점부터 재처리가 가능
- ack = all : ( 속도가 현저히 느리지만, 데이터의 유실은 없다. )
"""
    claim = (
        "Whatever fails and whatever arrives, the fan-out loses nothing and duplicates "
        "nothing: every valid event ends exactly once in Elasticsearch (by id) and in HDFS "
        "(by offset), every invalid record once per group in the dead-letter topic, and both "
        "groups drain to lag 0 once the faults are repaired."
    )
    method = """
The run's own topic (6 partitions, RF 3, min.insync.replicas 2), DLQ, groups, index and
HDFS folder; two worker processes per group (`clickfan worker es|hdfs`). The project's
producer sends events at the given rate (acks=all); a second producer mixes in hostile
records (clickfan.generators.hostile: the corpus and random mutations, each with its
outcome decided by construction) at the given fraction of that rate.

At seeded random moments, two fault loops (one fault at a time each): worker faults
(kill -9 and restart; SIGSTOP, then SIGCONT after 1-5 s or 12-20 s, beyond the 10 s
session timeout) and service faults (kill -9 of a broker, Elasticsearch stopped, the
DataNode stopped; each started again after 3-12 s). A worker that exits on its own is
restarted, as a supervisor would, and counted.

Then traffic stops, every service is restored, and both groups must reach lag 0 (bounded
wait). The source topic is read back as the ground truth and every record is looked up:
Elasticsearch by id, HDFS by offset (from the archive's lines), the DLQ per group by
source partition and offset.
"""
    default_events = 0
    quick = False
    needs = ("kafka", "elasticsearch", "hdfs", "workers", "kills")

    def __init__(self, options: SoakOptions) -> None:
        self.options = options

    def run(self, ctx: Context) -> None:
        o = self.options
        for key, value in _WORKER_ENV.items():
            os.environ.setdefault(key, value)
        topic = ctx.create_topic()
        dlq = create_dlq(ctx)
        names = ctx.names
        ctx.forget_groups(names.es_group, names.hdfs_group)
        es_cleanup(ctx)
        hdfs_cleanup(ctx)
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        pool = WorkerPool(ctx, dlq, o.workers_per_group)
        ctx.note(
            f"seed {o.seed}: `clickfan soak --minutes {o.minutes:g} --rate {o.rate:g} "
            f"--seed {o.seed}` repeats the same traffic and fault schedule (timing aside)"
        )
        pool.start()
        try:
            self._soak(ctx, pool, topic, dlq)
        finally:
            pool.stop()  # also with --keep: the data stays, the processes do not

    def _soak(self, ctx: Context, pool: WorkerPool, topic: str, dlq: str) -> None:
        o = self.options
        s = ctx.settings
        names = ctx.names
        log = FaultLog()
        timeline: dict[str, tuple[list[float], list[float]]] = {
            "es-indexer": ([], []),
            "hdfs-archiver": ([], []),
        }
        sampler = _LagSampler(s.bootstrap_servers, names, topic, s.partitions, log, timeline)
        sampler.start()
        traffic = _Traffic(ctx, topic, o, log)
        chaos = Chaos(
            ctx,
            pool,
            log,
            o.seed,
            ctx.progress,
            services=o.faults == "all",
            workers=o.faults != "none",
        )
        marks: list[tuple[float, str]] = []
        try:
            traffic.start()
            chaos.start()
            while traffic.wait(_PROGRESS_EVERY_S):
                ctx.progress(_progress_line(log, traffic, sampler, pool))
            marks.append((log.now(), "traffic stopped"))
        finally:
            traffic.stop()
            stopped_at = time.monotonic()  # every record sent is acknowledged (or failed)
            chaos.join()
            problems = chaos.restore()
            for p in problems:
                ctx.note(f"restoring: {p}")
        if problems:
            raise ClickfanError(f"could not restore the stack: {'; '.join(problems)}")
        ctx.progress(f"traffic stopped at t={log.now():.0f}s; every service is up; draining")

        repair_s = time.monotonic() - stopped_at
        drained = self._drain(ctx, pool, log, sampler, o.drain_timeout_s, stopped_at)
        # from the end of traffic: the repairs still under way count, as in an outage
        drain_s = time.monotonic() - stopped_at
        ctx.details["repair_wait_s"] = round(repair_s, 1)
        marks.append((log.now(), "drained" if drained else "drain timed out"))
        sampler.stop()
        marks = [(f.started_s, f"{f.kind} {f.target}") for f in log.faults] + marks

        with ctx.step("reading back the topic, Elasticsearch, HDFS and the DLQ"):
            result = _count(ctx, topic, dlq, traffic)
        self._record(ctx, result, traffic, log, pool, chaos, drained, drain_s)
        plots.lines(
            ctx.plot_path("lag.png", "lag of each group over time, faults marked"),
            f"soak: {o.rate:g} events/s for {o.minutes:g} min with faults (dashed lines)",
            {k: _with_gaps(*v) for k, v in timeline.items()},
            xlabel="seconds",
            ylabel="lag (records)",
            marks=marks,
        )
        ctx.details["lag_timeline"] = {k: list(zip(*v, strict=True)) for k, v in timeline.items()}
        ctx.details["lag_samples_lost"] = dict(sampler.problems)
        ctx.console.print(_figures_table(result, traffic, log, drain_s, drained))

    def _drain(
        self,
        ctx: Context,
        pool: WorkerPool,
        log: FaultLog,
        sampler: _LagSampler,
        timeout_s: float,
        since: float,
    ) -> bool:
        """Until both lags are 0 in a sample taken after ``since`` (the end of traffic)."""
        deadline = time.monotonic() + timeout_s
        last = 0.0
        while time.monotonic() < deadline:
            pool.supervise(log, set())
            at, lags = sampler.latest()
            if lags and all(v == 0 for v in lags.values()) and at > since:
                return True
            if time.monotonic() - last >= _PROGRESS_EVERY_S:
                last = time.monotonic()
                ctx.progress(f"draining: lag {sampler.describe()}")
            time.sleep(1.0)
        return False

    def _record(
        self,
        ctx: Context,
        a: Accounting,
        traffic: _Traffic,
        log: FaultLog,
        pool: WorkerPool,
        chaos: Chaos,
        drained: bool,
        drain_s: float,
    ) -> None:
        summary = traffic.summary
        ctx.check(
            "both groups at lag 0 after the faults", "yes", "yes" if drained else "no", drained
        )
        ctx.check(
            "valid events lost (ES + HDFS + acknowledged not in Kafka)", 0, a.lost, a.lost == 0
        )
        ctx.check("valid events duplicated (ES + HDFS)", 0, a.duplicated, a.duplicated == 0)
        ctx.check(
            "hostile records misplaced (DLQ missing/twice/no reason, valid dead-lettered)",
            0,
            a.hostile_misplaced,
            a.hostile_misplaced == 0,
        )
        unexpected = a.es_unexpected + a.hdfs_unexpected + a.dlq_unreadable
        ctx.check(
            "records in a sink that are not valid records of the log",
            0,
            unexpected,
            unexpected == 0,
        )
        alive = pool.alive()
        ctx.check("worker processes running at the end", "all", alive, all(alive.values()))
        counts = log.counts()
        ctx.check(
            "faults injected (each kind)",
            "reported",
            counts,
            True,
            "a short run may not reach every kind; the seed decides the order",
        )
        ctx.details.update(
            accounting=a.to_dict(),
            faults=[dataclasses.asdict(f) for f in log.faults],
            fault_counts=counts,
            worker_exits=log.worker_exits,
            fault_loop_errors=chaos.errors,
            producer=summary.to_dict() if summary else None,
            hostile_sent=len(traffic.sender.placed) if traffic.sender else 0,
            hostile_failed=[(r.name, why) for r, why in traffic.sender.failed]
            if traffic.sender
            else [],
            drain_s=round(drain_s, 1),
            options=dataclasses.asdict(self.options),
        )
        for error in chaos.errors:
            ctx.note(f"fault loop: {error}")
        if log.worker_exits:
            ctx.note(
                f"{len(log.worker_exits)} worker exits on their own (restarted by the soak): "
                f"{log.worker_exits[:10]}"
            )
        for what, items in a.examples.items():
            ctx.note(f"{what}: {', '.join(items)}")
        ctx.section("Figures", _figures_markdown(a, traffic, log, drain_s, drained))


# -------------------------------------------------------------------- traffic
class _Traffic:
    """The project's producer at the rate, and hostile records mixed in, in two threads."""

    def __init__(self, ctx: Context, topic: str, o: SoakOptions, log: FaultLog) -> None:
        self.ctx = ctx
        self.topic = topic
        self.o = o
        self.log = log
        self.summary: ProduceSummary | None = None
        self.progress: Progress | None = None
        self.sender: HostileSender | None = None
        self.error: str | None = None
        self._stop = StopSignal()
        self._hostile_stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target in (self._produce, self._hostile):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the producer to finish; True while it still runs."""
        self._threads[0].join(timeout_s)
        return self._threads[0].is_alive()

    def stop(self) -> None:
        self._stop.request()
        self._hostile_stop.set()
        for thread in self._threads:
            thread.join(300)

    def _produce(self) -> None:
        s = dataclasses.replace(
            self.ctx.settings,
            topic=self.topic,
            produce_rate=self.o.rate,
            produce_seed=self.o.seed,
            bad_fraction=0.0,
        )
        try:
            self.summary = ClickProducer(s).run(
                duration_s=self.o.minutes * 60,
                record_deliveries=True,
                progress=self._on_progress,
                stop=self._stop,
            )
        except Exception as exc:
            self.error = f"producer: {type(exc).__name__}: {exc}"
            self.ctx.progress(f"[red]{self.error}[/]")
        finally:
            self._hostile_stop.set()

    def _on_progress(self, p: Progress) -> None:
        self.progress = p

    def _hostile(self) -> None:
        rate = self.o.rate * self.o.hostile_fraction
        if rate <= 0:
            return
        s = self.ctx.settings
        mutator = HostileMutator(
            self.o.seed, max_event_bytes=s.max_event_bytes, exclude=self.o.exclude
        )
        self.sender = sender = HostileSender(s.bootstrap_servers, self.topic)
        rng = random.Random(f"hostile-timing-{self.o.seed}")
        tag = HOSTILE_TAG.encode()
        while not self._hostile_stop.wait(rng.expovariate(rate)):
            record = next(mutator)
            record = dataclasses.replace(
                record, headers=(*record.headers, (tag, record.name.encode()))
            )
            sender.produce(record)
            sender.poll(0)
        sender.flush(180)


# -------------------------------------------------------------------- lag
class _LagSampler:
    """Both groups' lag every couple of seconds, for the plot and the drain."""

    def __init__(
        self, bootstrap: str, names: Any, topic: str, partitions: int, log: FaultLog, timeline: dict
    ) -> None:
        self.problems: Counter[str] = Counter()  # samples lost, by why
        self._groups = {"es-indexer": names.es_group, "hdfs-archiver": names.hdfs_group}
        # plain consumers that never join: offset fetches and watermarks, no admin requests
        # (librdkafka's admin path aborted the process once while a broker was being killed)
        self._bootstrap = bootstrap
        self._readers = {label: _reader(bootstrap, group) for label, group in self._groups.items()}
        self._topic = topic
        self._partitions = partitions
        self._log = log
        self._timeline = timeline
        self._sample: tuple[float, dict[str, int]] = (0.0, {})  # (monotonic time, lags): one
        # attribute, so that readers in other threads never pair a time with another sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def latest(self) -> tuple[float, dict[str, int]]:
        """The latest complete sample: (time.monotonic() when taken, lag per group)."""
        return self._sample

    def fresh(self) -> bool:
        return time.monotonic() - self._sample[0] < 3 * _SAMPLE_EVERY_S

    def _run(self) -> None:
        while not self._stop.is_set():
            t = self._log.now()
            sample = {}
            for label, reader in list(self._readers.items()):
                try:  # a sample is lost while a broker is away; the next one comes
                    value = _lag(reader, self._topic, self._partitions)
                except Exception as exc:
                    self.problems[_problem_name(exc)] += 1
                    # A fresh client. In a soak every sample after the first broker kill
                    # was lost (178 KafkaExceptions, the broker long back); not reproduced
                    # with one broker, so the error's name is kept now to tell the cause.
                    reader.close()
                    self._readers[label] = _reader(self._bootstrap, self._groups[label])
                    continue
                if value is None:
                    self.problems["a partition without a leader"] += 1
                    continue
                sample[label] = value
                self._timeline[label][0].append(t)
                self._timeline[label][1].append(sample[label])
            if len(sample) == len(self._groups):
                self._sample = (time.monotonic(), sample)
            self._stop.wait(_SAMPLE_EVERY_S)
        for reader in self._readers.values():
            reader.close()

    def describe(self) -> str:
        at, lags = self._sample
        if self.fresh():
            return str(lags)
        return f"unknown for {time.monotonic() - at:.0f}s (last {lags})"


def _problem_name(exc: Exception) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return f"KafkaException {exc.args[0].name()}"
    return type(exc).__name__


def _reader(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            **kafka_client.confluent(bootstrap),
            "group.id": group,  # only to fetch its committed offsets; it never subscribes
            "enable.auto.commit": False,
            "logger": _quiet_log,
        }
    )


def _with_gaps(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """A break in the line where samples are missing (a broker away), not a straight line."""
    out_x: list[float] = []
    out_y: list[float] = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if i and x - xs[i - 1] > 3 * _SAMPLE_EVERY_S:
            out_x.append((x + xs[i - 1]) / 2)
            out_y.append(float("nan"))
        out_x.append(x)
        out_y.append(y)
    return out_x, out_y


def _lag(reader: Consumer, topic: str, partitions: int) -> int | None:
    """Total lag of the reader's group (log end - committed; no commit: the whole log), or
    None for a bad sample (a partition without a leader while a broker is away)."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    committed = {tp.partition: tp.offset for tp in reader.committed(tps, timeout=5)}
    total = 0
    for tp in tps:
        low, high = reader.get_watermark_offsets(tp, timeout=5, cached=False)
        done = committed[tp.partition] if committed[tp.partition] >= 0 else low
        if high < 0 or done < 0 or high < done:
            return None
        total += high - done
    return total


def _progress_line(log: FaultLog, traffic: _Traffic, sampler: _LagSampler, pool: WorkerPool) -> str:
    p = traffic.progress
    produced = f"{p.acknowledged} acknowledged of {p.sent}" if p else "starting"
    hostile = len(traffic.sender.placed) if traffic.sender else 0
    faults = {k: n for k, n in log.counts().items() if n}
    return (
        f"t={log.now():4.0f}s events {produced}, hostile {hostile}, lag {sampler.describe()}, "
        f"faults {faults}, worker self-exits {len(log.worker_exits)}"
    )


# -------------------------------------------------------------------- reading back
def _read_all(
    bootstrap: str, topic: str, partitions: int, timeout_s: float = 300
) -> list[LogRecord]:
    """Every record of ``topic``, tolerant of header names that are not UTF-8."""
    consumer = Consumer(
        {
            **kafka_client.confluent(bootstrap),
            "group.id": "clickfan-soak-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # the DLQ is written in transactions: an aborted attempt is not a dead letter
            "isolation.level": "read_committed",
            "logger": _quiet_log,
        }
    )
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
        for p in range(partitions)
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    pending = {p for p, end in ends.items() if end > 0}
    records: list[LogRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while pending:
            if time.monotonic() > deadline:
                raise ClickfanError(
                    f"could not read {topic} to its end {ends} within {timeout_s:.0f}s"
                )
            for m in consumer.consume(1000, 1.0):
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        raise ClickfanError(f"reading {topic}: {m.error().str()}")
                    if m.offset() >= ends[m.partition()]:  # the end is a commit marker
                        pending.discard(m.partition())
                    continue
                try:
                    headers: dict[str, bytes] | None = dict(m.headers() or [])
                except UnicodeDecodeError:
                    headers = None
                records.append(LogRecord(m.partition(), m.offset(), m.value(), headers))
                if m.offset() + 1 >= ends[m.partition()]:
                    pending.discard(m.partition())
    finally:
        consumer.close()
    return records


def _es_ids(ctx: Context) -> Counter[str]:
    from elasticsearch import helpers

    from clickfan.experiments.elastic import client

    es = client(ctx.settings)
    pattern = f"{ctx.names.index_prefix}-*"
    es.indices.refresh(index=pattern, allow_no_indices=True)
    hits = helpers.scan(es, index=pattern, query={"query": {"match_all": {}}}, _source=False)
    return Counter(hit["_id"] for hit in hits)


def _archived(ctx: Context) -> list[tuple[int, str]]:
    """(partition of the file, event id) for each event of the archive (temp folders aside)."""
    from clickfan.sinks.hdfs_read import iter_events

    return [
        (a.partition, a.event["event_id"])
        for a in iter_events(hdfs_client(ctx), ctx.names.hdfs_root)  # JSON Lines and Parquet
    ]


def _patiently(ctx: Context, what: str, read: Callable[[], T], timeout_s: float = 300) -> T:
    """``read()``, again while it fails (a service may be down for a moment: the stack is
    shared, or still coming back), until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return read()
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            ctx.progress(f"reading {what} failed ({type(exc).__name__}); trying again in 5 s")
            time.sleep(5)


def _count(ctx: Context, topic: str, dlq: str, traffic: _Traffic) -> Accounting:
    s = ctx.settings
    log = _patiently(ctx, topic, lambda: _read_all(s.bootstrap_servers, topic, s.partitions))
    letters = _patiently(ctx, dlq, lambda: _read_all(s.bootstrap_servers, dlq, s.partitions))
    dead = [DeadLetter(r.headers) for r in letters]
    summary = traffic.summary
    acknowledged = [
        (d.partition, d.offset)
        for d in (summary.deliveries or [] if summary else [])
        if d.offset is not None
    ]
    placed = {
        (p.partition, p.offset): p.record for p in (traffic.sender.placed if traffic.sender else [])
    }
    return account(
        log,
        acknowledged,
        placed,
        _patiently(ctx, "Elasticsearch", lambda: _es_ids(ctx)),
        _patiently(ctx, "the HDFS archive", lambda: _archived(ctx)),
        dead,
        (ctx.names.es_group, ctx.names.hdfs_group),
    )


# -------------------------------------------------------------------- figures
def _figures(
    a: Accounting, traffic: _Traffic, log: FaultLog, drain_s: float, drained: bool
) -> list[tuple[str, str]]:
    summary = traffic.summary
    sender = traffic.sender
    rows = [
        (
            "events produced (acknowledged / failed)",
            f"{summary.acknowledged} / {summary.failed}" if summary else "-",
        ),
        ("records in the topic", str(a.records_in_log)),
        (
            "valid records (generated + hostile valid)",
            f"{a.valid} ({a.generated} + {a.hostile_valid})",
        ),
        (
            "hostile records sent (invalid / valid / unreported)",
            f"{len(sender.placed) if sender else 0} "
            f"({a.hostile_invalid} / {a.hostile_valid} / {a.hostile_unreported})",
        ),
        (
            "Elasticsearch: lost / duplicated / unexpected",
            f"{a.es_lost} / {a.es_duplicated} / {a.es_unexpected}",
        ),
        (
            "HDFS: lost / duplicated / unexpected",
            f"{a.hdfs_lost} / {a.hdfs_duplicated} / {a.hdfs_unexpected}",
        ),
        ("acknowledged but not in Kafka", str(a.acknowledged_not_in_log)),
    ]
    for group, g in a.dlq.items():
        rows.append(
            (
                f"DLQ {group.rsplit('.', 1)[-1]}: once / missing / twice / valid",
                f"{g.once}/{g.expected} / {g.missing} / {g.more_than_once} / "
                f"{g.valid_dead_lettered}",
            )
        )
    for kind in FAULT_KINDS:
        rows.append((f"faults: {kind}", str(log.counts()[kind])))
    rows.append(("worker exits on their own (restarted)", str(len(log.worker_exits))))
    rows.append(
        (
            "time to lag 0 after traffic stopped (repairs included)",
            f"{drain_s:.0f} s" + ("" if drained else " (timed out)"),
        )
    )
    rows.append(("lost / duplicated in all", f"{a.lost} / {a.duplicated}"))
    return rows


def _figures_table(
    a: Accounting, traffic: _Traffic, log: FaultLog, drain_s: float, drained: bool
) -> Table:
    table = Table(title="soak: where every record ended")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in _figures(a, traffic, log, drain_s, drained):
        table.add_row(name, value)
    return table


def _figures_markdown(
    a: Accounting, traffic: _Traffic, log: FaultLog, drain_s: float, drained: bool
) -> str:
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {n} | {v} |" for n, v in _figures(a, traffic, log, drain_s, drained)]
    faults = [
        f"- t={f.started_s:.0f}s {f.kind} {f.target}"
        + (f", repaired at t={f.ended_s:.0f}s" if f.ended_s is not None else ", not repaired")
        + (f" ({f.note})" if f.note else "")
        for f in log.faults
    ]
    return "\n".join(lines + ["", "Faults, in order:", "", *faults])


# -------------------------------------------------------------------- command
@click.command("soak")
@click.option(
    "--minutes",
    type=click.FloatRange(min=0.5, max=24 * 60),
    required=True,
    help="How long traffic and faults go on.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1, max=20000),
    default=300.0,
    show_default=True,
    help="Events per second from the producer.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help="Seed of the traffic, the hostile mix and the fault schedule. Default: random (printed).",
)
@click.option(
    "--hostile-fraction",
    type=click.FloatRange(min=0, max=1),
    default=0.01,
    show_default=True,
    help="Hostile records per event produced.",
)
@click.option(
    "--workers-per-group",
    type=click.IntRange(min=1, max=4),
    default=2,
    show_default=True,
    help="Worker processes per consumer group (partitions move between them).",
)
@click.option(
    "--faults",
    type=click.Choice(("all", "workers", "none")),
    default="all",
    show_default=True,
    help="workers: only the run's own worker processes (safe on a shared stack); "
    "none: traffic and hostile records alone.",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=10),
    default=600.0,
    show_default=True,
    help="Seconds to wait for lag 0 once the faults are repaired.",
)
@click.option(
    "--exclude-case",
    "exclude",
    multiple=True,
    help="Leave a hostile corpus case out of the mix (name or prefix, e.g. "
    "headers:non-utf8-name); repeatable.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the report folder. Default: reports (CLICKFAN_EXPERIMENT_OUT).",
)
@click.option("--keep", is_flag=True, help="Leave the run's topic, groups, index and HDFS files.")
def soak(
    minutes: float,
    rate: float,
    seed: int | None,
    hostile_fraction: float,
    workers_per_group: int,
    drain_timeout: float,
    exclude: tuple[str, ...],
    faults: str,
    out: Path | None,
    keep: bool,
) -> None:
    """Traffic with hostile records and faults at random moments, then count every record.

    Kills and stops services of the stack (a broker, Elasticsearch, the DataNode)
    and starts them again: run it on a stack nobody else is using at the time.
    Writes report.md, report.json and lag.png to OUT/soak-TIMESTAMP/ and exits
    non-zero when anything was lost or duplicated.
    """
    settings = settings_module.load()
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    try:
        HostileMutator(seed, exclude=exclude)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--exclude-case") from None
    options = SoakOptions(
        minutes, rate, seed, hostile_fraction, workers_per_group, drain_timeout, exclude, faults
    )
    console = Console(stderr=True)
    outcome = run_experiment(
        Soak(options),
        settings,
        out or Path(settings.experiment_out),
        round(minutes * 60 * rate),  # the events the rate promises, for the report's header
        console,
        keep,
    )
    if not outcome.ok:
        raise ExperimentFailed(f"the soak found a problem: see {outcome.out_dir / 'report.md'}")
