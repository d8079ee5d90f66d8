"""Every stage against its own ceiling, in one run: `make bench`.

    python -m benchmarks.suite [--events 30000] [--rounds 3] [--rates 1000,2000] [--out reports]

Each stage alternates ours and its reference --rounds times (reference first
in odd rounds, ours first in even ones) and reports the median of each and
their ratio, measured in the same run on the same stack:

- producer:  ClickProducer (what `clickfan produce` runs) vs kafka-producer-perf-test,
             same record count and size, acks=all, idempotence, compression none,
             the same linger.ms and batch.size;
- consume:   each worker with a sink that discards (benchmarks.discard_worker:
             decoded, validated, turned into the bulk body / the JSON Lines) vs
             kafka-consumer-perf-test, all reading the same topic of --events events;
- es:        `clickfan worker es` vs the elasticsearch client's bulk helper loading
             the same documents into the same node (same chunk size, same template);
- hdfs:      `clickfan worker hdfs` vs raw WebHDFS writes of the same bytes, in as
             many files of the same sizes as the archiver wrote;
- end to end: benchmarks.pipeline's steady phase at each of --rates (lag bounded?
             p50/p99 produce-to-searchable and produce-to-archived), then higher
             rates in steps of 1 000 while both lags stay bounded (up to --max-rate);
             the producer runs with --linger-ms (50: see docs/benchmarks.md);
- cost:      CPU seconds per 1 000 events of every process (psutil), in each
             stage and in the end-to-end runs;
- profiles:  py-spy flame graphs of both workers draining the topic (an extra,
             unscored drain, so the sampler's cost is not in the numbers).

A worker's rate counts from its first commit to its last (Faust's start-up and
the first rebalance are left out, as kafka-consumer-perf-test leaves out its
rebalance with fetch.nMsg.sec). The machine is shared: the load average is
recorded beside each measurement; only ratios from the same run mean much.
Writes reports/bench-<stamp>.json, .md (the table) and .png (the plots).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import NewTopic  # noqa: E402
from elasticsearch import helpers  # noqa: E402

from benchmarks import pipeline  # noqa: E402
from clickfan.compose.native.stack import admin_client  # noqa: E402
from clickfan.events import decode_event, encode_event  # noqa: E402
from clickfan.generators.events import EventGenerator  # noqa: E402
from clickfan.generators.producer import ClickProducer  # noqa: E402
from clickfan.lagmon.cluster import KafkaCluster  # noqa: E402
from clickfan.lagmon.config import ClusterConfig  # noqa: E402
from clickfan.settings import Settings, load  # noqa: E402
from clickfan.sinks import (
    clients,  # noqa: E402
    es_index,  # noqa: E402
)

BIN = Path(sys.executable).parent
CLICKFAN = str(BIN / "clickfan")
PY_SPY = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
TARGETS = {"producer": 0.5, "consume": 0.5, "es": 0.8, "hdfs": 0.8}


def now_load() -> float:
    return round(os.getloadavg()[0], 2)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- CPU accounting -----------------------------------------------------------


def stack_pids() -> dict[str, int]:
    """The shared stack's services (clickfan status --json): name -> pid."""
    out = subprocess.run(
        [CLICKFAN, "status", "--json"], capture_output=True, text=True, check=False
    ).stdout
    try:
        services = json.loads(out)["services"]
    except (ValueError, KeyError):
        return {}
    return {s["name"]: s["pid"] for s in services if s.get("pid") and s["name"] != "kafka-extra"}


def cpu_s(pid: int) -> float | None:
    """CPU seconds of a process and its children (Elasticsearch's launcher JVM starts
    the server as a child)."""
    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in (root, *root.children(recursive=True)):
            t = proc.cpu_times()
            total += t.user + t.system
    except psutil.Error:
        return None
    return total


class CpuMeter:
    """CPU seconds of named processes between start() and stop() (psutil)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        now = cpu_s(pid)
        if now is not None:
            self._start[name] = now

    def start(self) -> CpuMeter:
        self._start = {n: c for n, p in self.pids.items() if (c := cpu_s(p)) is not None}
        return self

    def sample(self) -> None:
        """Read now (call before a measured process exits)."""
        for name, pid in self.pids.items():
            now = cpu_s(pid)
            if now is not None and name in self._start:
                self.used[name] = now - self._start[name]

    def per_1000(self, events: int) -> dict[str, float]:
        return {n: round(c / events * 1000, 4) for n, c in self.used.items()}


def self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# -- results ------------------------------------------------------------------


@dataclass
class Trial:
    who: str  # "ours" or "reference" (or a worker's name)
    events_per_s: float
    load: float
    cpu_per_1000: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stage:
    name: str
    ours_label: str
    reference_label: str
    trials: list[Trial] = field(default_factory=list)

    def rates(self, who: str) -> list[float]:
        return [t.events_per_s for t in self.trials if t.who == who]

    def summary(self) -> dict[str, Any]:
        ours, ref = median(self.rates("ours")), median(self.rates("reference"))
        cpu: dict[str, list[float]] = {}
        for t in self.trials:
            for name, c in t.cpu_per_1000.items():
                cpu.setdefault(f"{t.who}:{name}", []).append(c)
        return {
            "name": self.name,
            "ours": self.ours_label,
            "reference": self.reference_label,
            "ours_events_per_s": ours,
            "reference_events_per_s": ref,
            "ratio": ours / ref if ref else float("nan"),
            "target": TARGETS.get(self.name.split(":")[0]),
            "cpu_s_per_1000_median": {k: round(median(v), 4) for k, v in cpu.items()},
            "trials": [t.__dict__ for t in self.trials],
        }


# -- the benchmark --------------------------------------------------------------


def consumer_perf_test(settings: Settings, topic: str, events: int, group: str) -> float:
    """kafka-consumer-perf-test reading ``events`` records of ``topic``: records/s."""
    result = subprocess.run(
        [CLICKFAN, "kafka", "kafka-consumer-perf-test", "--bootstrap-server",
         settings.bootstrap_servers, "--topic", topic, "--messages", str(events),
         "--group", group, "--timeout", "60000"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    if result.returncode != 0 or len(lines) < 2:
        sys.exit(f"kafka-consumer-perf-test failed:\n{result.stdout}\n{result.stderr}")
    header = [h.strip() for h in lines[0].split(",")]
    row = dict(zip(header, (v.strip() for v in lines[-1].split(",")), strict=False))
    return float(row.get("fetch.nMsg.sec") or row["nMsg.sec"])


class Suite:
    def __init__(self, settings: Settings, events: int, rounds: int, out: Path) -> None:
        self.prefix = f"bench{uuid.uuid4().hex[:8]}"
        self.settings = settings
        self.events = events
        self.rounds = rounds
        self.out = out
        self.admin = admin_client(settings.bootstrap_servers)
        self.kafka = KafkaCluster(
            ClusterConfig("local", tuple(settings.bootstrap_servers.split(",")))
        )
        self.topics: list[str] = []
        self.index_prefixes: list[str] = []
        self.hdfs_root = f"/benchmarks/{self.prefix}"
        self.hdfs = clients.webhdfs_client(clients.webhdfs_connection(settings, timeout_s=60))
        self.es = clients.elasticsearch_client(
            clients.elasticsearch_connection(settings, timeout_s=120)
        )
        self.log_dir = settings.home / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.values: list[bytes] = []  # the data topic's records
        self.profiles: dict[str, str] = {}

    # -- topics and clean-up --

    def topic(self, name: str) -> str:
        s = self.settings
        topic = f"{self.prefix}.{name}"
        new = NewTopic(
            topic,
            s.partitions,
            s.replication_factor,
            config={"min.insync.replicas": str(s.min_insync_replicas)},
        )
        self.admin.create_topics([new])[topic].result()
        self.topics.append(topic)
        return topic

    def cleanup(self) -> None:
        if self.topics:
            for future in self.admin.delete_topics(self.topics).values():
                try:
                    future.result()
                except Exception as exc:  # noqa: BLE001 (clean-up goes on)
                    print(f"  (could not delete a topic: {exc})")
        try:
            for prefix in self.index_prefixes:
                requests.delete(f"{self.settings.es_url}/{prefix}-*", timeout=60)
                requests.delete(f"{self.settings.es_url}/_index_template/{prefix}", timeout=60)
            self.hdfs.delete(self.hdfs_root, recursive=True)
        except Exception as exc:  # noqa: BLE001 (a shared service down: the numbers still count)
            print(f"  (clean-up incomplete: {exc})")

    # -- workers --

    def worker_env(self, topic: str, group: str, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "CLICKFAN_TOPIC": topic,
            "CLICKFAN_DLQ_TOPIC": self.dlq,
            "CLICKFAN_ES_GROUP": group,
            "CLICKFAN_HDFS_GROUP": group,
        }
        env.update(extra)
        return env

    def run_worker(
        self, argv: list[str], env: dict[str, str], group: str, topic: str, log_name: str,
        profile: Path | None = None,
    ) -> Trial:  # fmt: skip
        """Start a worker on a full topic; its rate from its first commit to its last."""
        log = open(self.log_dir / f"bench-{log_name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        meter = CpuMeter(stack_pids())
        spy = None
        first: tuple[float, int] | None = None
        load = now_load()
        deadline = time.monotonic() + 600
        try:
            while True:
                if proc.poll() is not None:
                    sys.exit(f"{log_name} exited with {proc.returncode}: see {log.name}")
                done = sum(o for (t, _), o in self.kafka.committed(group).items() if t == topic)
                t = time.monotonic()
                if first is None and done > 0:
                    first = (t, done)
                    meter.start().add("worker", proc.pid)
                    if profile is not None and PY_SPY:
                        spy = subprocess.Popen(
                            [PY_SPY, "record", "--pid", str(proc.pid), "--nonblocking",
                             "--rate", "50", "--format", "flamegraph", "-o", str(profile)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        )  # fmt: skip
                if done >= self.events:
                    meter.sample()
                    break
                if t > deadline:
                    sys.exit(f"{log_name} did not finish {self.events} events in 10 minutes")
                time.sleep(0.2)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes the SVG on Ctrl-C
                try:
                    spy.wait(60)
                except subprocess.TimeoutExpired:
                    spy.kill()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        assert first is not None
        elapsed = t - first[0]
        counted = self.events - first[1]
        return Trial(
            "ours",
            counted / elapsed if elapsed > 0 else float("nan"),
            load,
            meter.per_1000(counted),
            {"seconds": round(elapsed, 2), "events_counted": counted},
        )

    # -- stages --

    def producer_stage(self) -> Stage:
        s = self.settings
        stage = Stage("producer", "ClickProducer (clickfan produce)", "kafka-producer-perf-test")
        topic = self.topic("produce")
        gen = EventGenerator(1, rate=2000)
        size = round(sum(len(encode_event(gen.next_event())) for _ in range(5000)) / 5000)
        records = self.events * 2
        print(f"producer: {records} records of {size} bytes, acks=all, compression none")
        for r in range(self.rounds):
            order = ("reference", "ours") if r % 2 == 0 else ("ours", "reference")
            for who in order:
                meter = CpuMeter(stack_pids()).start()
                load = now_load()
                if who == "reference":
                    before = children_cpu_s()
                    rate = self.perf_test(topic, records, size)
                    own = children_cpu_s() - before
                else:
                    before = self_cpu_s()
                    bench = replace(
                        s, topic=topic, produce_rate=0.0, produce_acks="all",
                        produce_compression="none", produce_idempotence=True,
                    )  # fmt: skip
                    summary = ClickProducer(bench).run(count=records)
                    if summary.acknowledged != records:
                        sys.exit(f"clickfan produce lost records: {summary.to_dict()}")
                    rate = summary.rate
                    own = self_cpu_s() - before
                meter.sample()
                cpu = meter.per_1000(records)
                cpu["producer"] = round(own / records * 1000, 4)
                stage.trials.append(Trial(who, rate, load, cpu))
                print(f"  round {r + 1} {who:9}: {rate:>9,.0f} records/s (load {load})")
        return stage

    def perf_test(self, topic: str, records: int, size: int) -> float:
        s = self.settings
        props = [
            f"bootstrap.servers={s.bootstrap_servers}", "acks=all", "compression.type=none",
            f"linger.ms={s.produce_linger_ms}", f"batch.size={s.produce_batch_size}",
            "enable.idempotence=true",
        ]  # fmt: skip
        result = subprocess.run(
            [CLICKFAN, "kafka", "kafka-producer-perf-test", "--topic", topic,
             "--num-records", str(records), "--record-size", str(size),
             "--throughput", "-1", "--producer-props", *props],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        final = [ln for ln in result.stdout.splitlines() if "records sent" in ln]
        if result.returncode != 0 or not final:
            sys.exit(f"kafka-producer-perf-test failed:\n{result.stdout}\n{result.stderr}")
        return float(re.search(r"([\d.]+) records/sec", final[-1]).group(1))

    def fill_data_topic(self) -> str:
        """The topic every consuming stage reads: --events generated events, lz4 as usual."""
        s = self.settings
        topic = self.topic("click-logs")
        self.dlq = self.topic("click-logs.dlq")
        summary = ClickProducer(replace(s, topic=topic, produce_rate=0.0, produce_seed=7)).run(
            count=self.events
        )
        if summary.acknowledged != self.events:
            sys.exit(f"could not fill the data topic: {summary.to_dict()}")
        consumer = Consumer(
            {"bootstrap.servers": s.bootstrap_servers, "group.id": f"{self.prefix}-reader",
             "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )  # fmt: skip
        consumer.assign([TopicPartition(topic, p, 0) for p in range(s.partitions)])
        while len(self.values) < self.events:
            for msg in consumer.consume(1000, 5):
                if not msg.error():
                    self.values.append(msg.value())
        consumer.close()
        size = sum(map(len, self.values)) / len(self.values)
        print(f"data topic {topic}: {self.events} events, mean {size:.0f} bytes")
        return topic

    def consume_stage(self, topic: str) -> list[Stage]:
        stages = {
            kind: Stage(f"consume:{kind}", f"{kind} worker, discarding sink",
                        "kafka-consumer-perf-test")
            for kind in ("es", "hdfs")
        }  # fmt: skip
        for r in range(self.rounds):
            order = ("reference", "ours") if r % 2 == 0 else ("ours", "reference")
            for who in order:
                if who == "reference":
                    load = now_load()
                    rate = consumer_perf_test(
                        self.settings, topic, self.events, f"{self.prefix}.perf-{r}"
                    )
                    for stage in stages.values():
                        stage.trials.append(Trial("reference", rate, load))
                    print(f"  round {r + 1} consumer-perf-test: {rate:>9,.0f} records/s")
                    continue
                for kind, stage in stages.items():
                    group = f"{self.prefix}.discard-{kind}-{r}"
                    trial = self.run_worker(
                        [str(BIN / "python"), "-m", "benchmarks.discard_worker", kind],
                        self.worker_env(topic, group, CLICKFAN_INDEX_PREFIX=f"{self.prefix}-x"),
                        group, topic, f"discard-{kind}",
                    )  # fmt: skip
                    stage.trials.append(trial)
                    print(
                        f"  round {r + 1} discard {kind:4}: {trial.events_per_s:>9,.0f} "
                        f"records/s (load {trial.load})"
                    )
        return list(stages.values())

    def es_stage(self, topic: str) -> Stage:
        s = self.settings
        stage = Stage("es", "clickfan worker es", "elasticsearch.helpers.bulk")
        events = [decode_event(v, s.max_event_bytes) for v in self.values]
        for r in range(self.rounds):
            order = ("reference", "ours") if r % 2 == 0 else ("ours", "reference")
            for who in order:
                prefix = f"{self.prefix}-{who[:3]}{r}"
                self.index_prefixes.append(prefix)
                if who == "ours":
                    group = f"{self.prefix}.es-{r}"
                    trial = self.run_worker(
                        [CLICKFAN, "worker", "es"],
                        self.worker_env(topic, group, CLICKFAN_INDEX_PREFIX=prefix),
                        group, topic, "es-worker",
                        profile=None,
                    )  # fmt: skip
                else:
                    trial = self.raw_bulk(prefix, events)
                stage.trials.append(trial)
                print(
                    f"  round {r + 1} {who:9}: {trial.events_per_s:>9,.0f} docs/s "
                    f"(load {trial.load})"
                )
        return stage

    def raw_bulk(self, prefix: str, events: list[dict[str, Any]]) -> Trial:
        s = self.settings
        body = es_index.template_body(prefix, s.es_index_shards, s.es_index_replicas)
        self.es.indices.put_index_template(name=es_index.template_name(prefix), **body)
        actions = (
            {"_index": es_index.index_name(prefix, e["event_time"]), "_id": e["event_id"],
             "_source": e}
            for e in events
        )  # fmt: skip
        meter = CpuMeter(stack_pids()).start()
        load = now_load()
        before = self_cpu_s()
        began = time.monotonic()
        ok, errors = helpers.bulk(
            self.es, actions, chunk_size=s.worker_batch_records,
            max_chunk_bytes=s.es_bulk_bytes, stats_only=True, raise_on_error=False,
        )  # fmt: skip
        elapsed = time.monotonic() - began
        meter.sample()
        if errors:
            sys.exit(f"the raw bulk load failed for {errors} documents")
        cpu = meter.per_1000(len(events))
        cpu["bulk-helper"] = round((self_cpu_s() - before) / len(events) * 1000, 4)
        return Trial("reference", len(events) / elapsed, load, cpu, {"seconds": elapsed})

    def hdfs_stage(self, topic: str) -> Stage:
        stage = Stage("hdfs", "clickfan worker hdfs", "raw WebHDFS writes (same files)")
        s = self.settings
        lines = [encode_event(decode_event(v, s.max_event_bytes)) + b"\n" for v in self.values]
        data = b"".join(lines)
        sizes: list[int] = []
        roll = {"CLICKFAN_HDFS_ROLL_RECORDS": "2000", "CLICKFAN_HDFS_ROLL_S": "2"}
        for r in range(self.rounds):
            # ours first in round 1: the raw writes copy the sizes of the files it wrote
            order = ("ours", "reference") if r % 2 == 0 else ("reference", "ours")
            for who in order:
                root = f"{self.hdfs_root}/{who}{r}"
                if who == "ours":
                    group = f"{self.prefix}.hdfs-{r}"
                    trial = self.run_worker(
                        [CLICKFAN, "worker", "hdfs"],
                        self.worker_env(topic, group, CLICKFAN_HDFS_ROOT=root, **roll),
                        group, topic, "hdfs-worker",
                    )  # fmt: skip
                    sizes = self.archived_sizes(root)
                    trial.detail["files"] = len(sizes)
                else:
                    trial = self.raw_webhdfs(root, data, sizes)
                stage.trials.append(trial)
                print(
                    f"  round {r + 1} {who:9}: {trial.events_per_s:>9,.0f} events/s "
                    f"(load {trial.load}, {trial.detail.get('files')} files)"
                )
        return stage

    def archived_sizes(self, root: str) -> list[int]:
        sizes = []
        for _folder, _dirs, files in self.hdfs.walk(root, status=True):
            for name, st in files:
                if name.endswith(".jsonl"):
                    sizes.append(st["length"])
        return sizes

    def raw_webhdfs(self, root: str, data: bytes, sizes: list[int]) -> Trial:
        meter = CpuMeter(stack_pids()).start()
        load = now_load()
        before = self_cpu_s()
        began = time.monotonic()
        at = 0
        for i, size in enumerate(sizes):
            self.hdfs.write(f"{root}/part-{i:05d}.jsonl", data=data[at : at + size])
            at += size
        elapsed = time.monotonic() - began
        meter.sample()
        cpu = meter.per_1000(self.events)
        cpu["webhdfs-client"] = round((self_cpu_s() - before) / self.events * 1000, 4)
        return Trial(
            "reference", self.events / elapsed, load, cpu,
            {"seconds": elapsed, "files": len(sizes), "bytes": at},
        )  # fmt: skip

    def profile_workers(self, topic: str) -> None:
        """One more drain of each worker with py-spy attached (not scored)."""
        if not PY_SPY:
            print("  py-spy not found: no profiles")
            return
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for kind in ("es", "hdfs"):
            group = f"{self.prefix}.profile-{kind}"
            svg = self.out / f"bench-profile-{kind}-{stamp}.svg"
            extra = (
                {"CLICKFAN_INDEX_PREFIX": f"{self.prefix}-profile"}
                if kind == "es"
                else {"CLICKFAN_HDFS_ROOT": f"{self.hdfs_root}/profile",
                      "CLICKFAN_HDFS_ROLL_RECORDS": "2000", "CLICKFAN_HDFS_ROLL_S": "2"}
            )  # fmt: skip
            if kind == "es":
                self.index_prefixes.append(f"{self.prefix}-profile")
            self.run_worker(
                [CLICKFAN, "worker", kind], self.worker_env(topic, group, **extra), group,
                topic, f"profile-{kind}", profile=svg,
            )  # fmt: skip
            if svg.exists():
                self.profiles[kind] = str(svg)
                print(f"  profile of the {kind} worker: {svg}")
            else:
                print(f"  py-spy wrote no profile of the {kind} worker (ptrace not allowed?)")


# -- end to end ---------------------------------------------------------------------


def bounded(series: list[tuple[float, float]], warmup_s: float, rate: float) -> bool:
    """Whether a lag stops growing after warm-up: the lowest lag of the last 10 s is at
    most one second of records above the lowest of the first 10 s. Troughs, not peaks:
    the archiver's lag is a sawtooth (it commits once per roll), and a growing one has
    rising troughs while a bounded one keeps falling back."""
    points = [(t, v) for t, v in series if t >= warmup_s]
    if len(points) < 6 or points[-1][0] - points[0][0] < 20:
        return False
    first = min(v for t, v in points if t < points[0][0] + 10)
    last = min(v for t, v in points if t > points[-1][0] - 10)
    return last <= first + rate


def end_to_end(
    settings: Settings, rates: list[float], seconds: float, warmup_s: float, out: Path,
    max_rate: float, linger_ms: int,
) -> list[dict[str, Any]]:  # fmt: skip
    bench = pipeline.Bench(settings, roll_s=5.0)
    bench.env["CLICKFAN_PRODUCE_LINGER_MS"] = str(linger_ms)
    bench.create_topics()
    results: list[dict[str, Any]] = []
    try:
        bench.start_workers()
        time.sleep(15)  # Faust's start-up and first rebalance
        queue = list(rates)
        while queue:
            rate = queue.pop(0)
            meter = CpuMeter(stack_pids()).start()
            for kind, proc in zip(("es-worker", "hdfs-worker"), bench.workers, strict=True):
                meter.add(kind, proc.pid)
            load = now_load()
            probes, lags, produced = pipeline.steady(bench, rate, seconds, meter)
            probes = [p for p in probes if p.picked_at_s >= warmup_s]
            result: dict[str, Any] = {"rate": rate, "seconds": seconds, "load": load}
            for key in ("searchable_s", "archived_s"):
                values = [v for p in probes if (v := getattr(p, key)) is not None]
                result[key] = {
                    "p50": pipeline.percentile(values, 0.5) if values else None,
                    "p99": pipeline.percentile(values, 0.99) if values else None,
                    "probes": len(values),
                    "never_seen": len(probes) - len(values),
                }
            result["bounded"] = {g: bounded(v, warmup_s, rate) for g, v in lags.items()}
            result["lag_max"] = {g: max((v for _, v in s), default=0) for g, s in lags.items()}
            result["cpu_s_per_1000"] = meter.per_1000(max(produced, 1))
            # where the cores go: CPU seconds per second of the steady phase
            result["cores_used"] = {n: round(c / seconds, 3) for n, c in meter.used.items()}
            result["produced"] = produced
            results.append(result)
            png = out / f"bench-e2e-{int(rate)}-{datetime.now():%Y%m%d-%H%M%S}.png"
            pipeline.plot(probes, lags, png, rate)
            result["plot"] = str(png)
            s_, a_ = result["searchable_s"], result["archived_s"]
            print(
                f"  {rate:>6,.0f}/s: searchable p50 {s_['p50']} p99 {s_['p99']}; archived "
                f"p50 {a_['p50']} p99 {a_['p99']}; bounded {result['bounded']} (load {load})"
            )
            if not queue and all(result["bounded"].values()) and rate + 1000 <= max_rate:
                queue.append(rate + 1000)  # find where it stops keeping up
            # let both groups catch up before the next rate
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and (
                bench.lag(bench.settings.es_group) + bench.lag(bench.settings.hdfs_group) > 0
            ):
                time.sleep(1)
    finally:
        bench.cleanup()
    return results


# -- report -------------------------------------------------------------------


def write_report(report: dict[str, Any], out: Path, stamp: str) -> Path:
    rows = ["| stage | ours | reference | ours /s | reference /s | ratio | target |",
            "|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for st in report["stages"]:
        target = f"≥ {st['target']}" if st["target"] else ""
        rows.append(
            f"| {st['name']} | {st['ours']} | {st['reference']} | "
            f"{st['ours_events_per_s']:,.0f} | {st['reference_events_per_s']:,.0f} | "
            f"{st['ratio']:.2f} | {target} |"
        )
    rows += ["", "| rate /s | searchable p50 | p99 | archived p50 | p99 | lags bounded | load |",
             "|---:|---:|---:|---:|---:|---|---:|"]  # fmt: skip

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f} s"

    for e in report["end_to_end"]:
        b = ", ".join(f"{g} {'yes' if ok else 'NO'}" for g, ok in e["bounded"].items())
        rows.append(
            f"| {e['rate']:,.0f} | {f(e['searchable_s']['p50'])} | {f(e['searchable_s']['p99'])}"
            f" | {f(e['archived_s']['p50'])} | {f(e['archived_s']['p99'])} | {b} | {e['load']} |"
        )
    rows += ["", "CPU seconds per 1 000 events (median of the rounds; end to end at each rate):",
             "", "| where | process | CPU s / 1 000 events |", "|---|---|---:|"]  # fmt: skip
    for st in report["stages"]:
        for name, c in sorted(st["cpu_s_per_1000_median"].items()):
            rows.append(f"| {st['name']} | {name} | {c:.3f} |")
    for e in report["end_to_end"]:
        for name, c in sorted(e["cpu_s_per_1000"].items()):
            cores = e["cores_used"].get(name, 0.0)
            rows.append(f"| end to end {e['rate']:,.0f}/s | {name} | {c:.3f} ({cores:.2f} cores) |")
    md = out / f"bench-{stamp}.md"
    md.write_text("\n".join(rows) + "\n")
    return md


def plot_report(report: dict[str, Any], png: Path) -> None:
    """The ratios (when stages ran) beside where the CPU went end to end (when e2e ran)."""
    stages, e2e = report["stages"], report["end_to_end"]
    panels = int(bool(stages)) + int(bool(e2e))
    if not panels:
        return
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5), squeeze=False)
    free = iter(axes[0])
    if stages:
        left = next(free)
        left.barh([st["name"] for st in stages], [st["ratio"] for st in stages], color="tab:blue")
        for i, st in enumerate(stages):
            if st["target"]:
                left.plot([st["target"]] * 2, [i - 0.4, i + 0.4], color="tab:red")
        left.set_xlabel("ours / reference (median of rounds); red: target")
        left.invert_yaxis()
    if e2e:
        right = next(free)
        cpu = e2e[-1]["cpu_s_per_1000"] if len(e2e) < 2 else e2e[1]["cpu_s_per_1000"]
        rate = e2e[-1]["rate"] if len(e2e) < 2 else e2e[1]["rate"]
        items = sorted(cpu.items(), key=lambda kv: -kv[1])
        right.barh([k for k, _ in items], [v for _, v in items], color="tab:orange")
        right.set_xlabel(f"CPU s per 1 000 events at {rate:,.0f} events/s end to end")
        right.invert_yaxis()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rates", default="1000,2000")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--max-rate", type=float, default=5000.0, help="stop searching here")
    parser.add_argument(
        "--linger-ms",
        type=int,
        default=50,
        help="the producer's linger.ms end to end (50: a quarter of the CPU of 5 at 2 000/s)",
    )
    parser.add_argument("--stages", default="producer,consume,es,hdfs,profile,e2e")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()
    wanted = set(args.stages.split(","))

    settings = load()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    mem = psutil.virtual_memory().total / 2**30
    machine = {
        "nproc": os.cpu_count(), "memory_gib": round(mem, 1),
        "python": platform.python_version(), "load_at_start": os.getloadavg(),
    }  # fmt: skip
    print(f"machine: {machine}")
    suite = Suite(settings, args.events, args.rounds, args.out)
    stages: list[Stage] = []
    e2e: list[dict[str, Any]] = []
    began = time.monotonic()
    try:
        if "producer" in wanted:
            stages.append(suite.producer_stage())
        if wanted & {"consume", "es", "hdfs", "profile"}:
            topic = suite.fill_data_topic()
            if "consume" in wanted:
                print("consume path")
                stages.extend(suite.consume_stage(topic))
            if "es" in wanted:
                print("Elasticsearch indexer")
                stages.append(suite.es_stage(topic))
            if "hdfs" in wanted:
                print("HDFS archiver")
                stages.append(suite.hdfs_stage(topic))
            if "profile" in wanted:
                print("profiles (py-spy, an extra drain of each worker)")
                suite.profile_workers(topic)
    finally:
        suite.cleanup()
    e2e_error = None
    if "e2e" in wanted:
        print("end to end")
        rates = [float(r) for r in args.rates.split(",")]
        try:
            e2e = end_to_end(
                settings,
                rates,
                args.seconds,
                args.warmup_s,
                args.out,
                args.max_rate,
                args.linger_ms,
            )
        except Exception as exc:  # noqa: BLE001 (the stages' numbers are still written)
            e2e_error = f"{type(exc).__name__}: {exc}"
            print(f"end to end failed: {e2e_error}")
    report = {
        "stamp": stamp,
        "command": " ".join(sys.argv),
        "machine": machine,
        "load_at_end": os.getloadavg(),
        "minutes": round((time.monotonic() - began) / 60, 1),
        "events": args.events,
        "e2e_linger_ms": args.linger_ms,
        "rounds": args.rounds,
        "stages": [st.summary() for st in stages],
        "end_to_end": e2e,
        "end_to_end_error": e2e_error,
        "profiles": suite.profiles,
    }
    path = args.out / f"bench-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    md = write_report(report, args.out, stamp)
    png = args.out / f"bench-{stamp}.png"
    plot_report(report, png)
    print(md.read_text())
    print(f"report: {path}, {md}" + (f", {png}" if png.exists() else ""))


if __name__ == "__main__":
    main()
