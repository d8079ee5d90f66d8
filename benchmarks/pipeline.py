"""Throughput and latency through the two workers, on the live stack.

    python -m benchmarks.pipeline [--drain-events 40000] [--rate 2000] [--seconds 60]

1. Drain: --drain-events are produced first, then both workers start; each
   group's events/s is the count divided by the time until its lag is zero
   (the archiver's last partial file rolls after --roll-s).
2. Steady: the producer runs at --rate for --seconds. Four times a second
   the newest record of a random partition becomes a probe (its event id, and
   its Kafka timestamp: when the producer sent it), and is followed until
   - a search in Elasticsearch finds it (produce-to-searchable; the index
     refreshes every second, Elasticsearch's default), and
   - the archiver has committed past it (produce-to-archived; it commits right
     after renaming the file into place, so the record is readable in HDFS).
   Each group's lag is sampled every second, to show it stays bounded.
   Prints p50/p99 (target: p99 produce-to-searchable <= 2 s at 2 000
   events/s) and writes a plot: latency distributions and lag over time.
Each run uses its own topic, groups, index prefix and HDFS folder, and removes
them afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import requests  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import NewTopic  # noqa: E402

from clickfan.compose.native.stack import admin_client  # noqa: E402
from clickfan.generators.producer import ClickProducer  # noqa: E402
from clickfan.lagmon.cluster import KafkaCluster  # noqa: E402
from clickfan.lagmon.config import ClusterConfig  # noqa: E402
from clickfan.lagmon.reader import topic_lag  # noqa: E402
from clickfan.settings import Settings, load  # noqa: E402

CLICKFAN = str(Path(sys.executable).with_name("clickfan"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, settings: Settings, roll_s: float) -> None:
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        self.settings = replace(
            settings,
            topic=f"{prefix}.click-logs",
            dlq_topic=f"{prefix}.click-logs.dlq",
            es_group=f"{prefix}.es-indexer",
            hdfs_group=f"{prefix}.hdfs-archiver",
            index_prefix=f"{prefix}-clicks",
            hdfs_root=f"/benchmarks/{prefix}",
            hdfs_roll_s=roll_s,
        )
        s = self.settings
        self.env = {
            **os.environ,
            "CLICKFAN_TOPIC": s.topic,
            "CLICKFAN_DLQ_TOPIC": s.dlq_topic,
            "CLICKFAN_ES_GROUP": s.es_group,
            "CLICKFAN_HDFS_GROUP": s.hdfs_group,
            "CLICKFAN_INDEX_PREFIX": s.index_prefix,
            "CLICKFAN_HDFS_ROOT": s.hdfs_root,
            "CLICKFAN_HDFS_ROLL_S": str(roll_s),
        }
        self.admin = admin_client(s.bootstrap_servers)
        self.kafka = KafkaCluster(ClusterConfig("local", tuple(s.bootstrap_servers.split(","))))
        self.workers: list[subprocess.Popen] = []
        self.log_dir = s.home / "logs"

    # -- set-up and tear-down -------------------------------------------------

    def create_topics(self) -> None:
        s = self.settings
        topics = [
            NewTopic(
                t,
                s.partitions,
                s.replication_factor,
                config={"min.insync.replicas": str(s.min_insync_replicas)},
            )
            for t in (s.topic, s.dlq_topic)
        ]
        for future in self.admin.create_topics(topics).values():
            future.result()

    def start_workers(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for kind in ("es", "hdfs"):
            log = open(self.log_dir / f"bench-worker-{kind}.log", "ab")  # noqa: SIM115
            self.workers.append(
                subprocess.Popen(
                    [CLICKFAN, "worker", kind],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def cleanup(self) -> None:
        for proc in self.workers:
            proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        s = self.settings
        self.admin.delete_topics([s.topic, s.dlq_topic])
        requests.delete(f"{s.es_url}/{s.index_prefix}*", timeout=30)
        requests.delete(
            f"{s.webhdfs_url}/webhdfs/v1{s.hdfs_root}",
            timeout=30,
            params={"op": "DELETE", "recursive": "true", "user.name": s.hdfs_user},
        )

    # -- measurements ---------------------------------------------------------

    def lag(self, group: str) -> int:
        return topic_lag(self.kafka, group, self.settings.topic).lag

    def searchable(self, event_ids: list[str]) -> set[str]:
        s = self.settings
        body = {
            "size": len(event_ids),
            "_source": ["event_id"],
            "query": {"terms": {"event_id": event_ids}},
        }
        answer = requests.post(f"{s.es_url}/{s.index_prefix}-*/_search", json=body, timeout=5)
        return {hit["_source"]["event_id"] for hit in answer.json().get("hits", {}).get("hits", [])}

    def archived_up_to(self) -> dict[int, int]:
        """partition -> first offset not yet archived (the archiver commits after the rename)."""
        return {
            p: o
            for (t, p), o in self.kafka.committed(self.settings.hdfs_group).items()
            if t == self.settings.topic
        }


@dataclass
class Probe:
    """One produced record followed until it is searchable and archived."""

    event_id: str
    partition: int
    offset: int
    produced_ms: int  # the record's Kafka timestamp: when the producer sent it
    picked_at_s: float  # since the steady phase began (probes in the warm-up are left out)
    searchable_s: float | None = None
    archived_s: float | None = None


def drain(bench: Bench, events: int) -> dict[str, float]:
    summary = ClickProducer(replace(bench.settings, produce_rate=0.0)).run(count=events)
    print(f"drain: {summary.acknowledged} events on {bench.settings.topic}; starting the workers")
    began = time.monotonic()
    bench.start_workers()
    done: dict[str, float] = {}
    groups = {"es-indexer": bench.settings.es_group, "hdfs-archiver": bench.settings.hdfs_group}
    while len(done) < len(groups):
        time.sleep(0.5)
        for name, group in groups.items():
            if name not in done and bench.lag(group) == 0:
                done[name] = time.monotonic() - began
                print(
                    f"  {name}: lag 0 after {done[name]:.1f} s "
                    f"({events / done[name]:,.0f} events/s, incl. worker start-up)"
                )
        if time.monotonic() - began > 900:
            sys.exit(f"the workers did not drain {events} events in 15 minutes")
    return {name: events / seconds for name, seconds in done.items()}


def steady(bench: Bench, rate: float, seconds: float) -> tuple[list[Probe], dict]:
    """Produce at rate; probe the newest records several times a second."""
    s = bench.settings
    probes: list[Probe] = []
    lags: dict[str, list[tuple[float, float]]] = {"es-indexer": [], "hdfs-archiver": []}
    stop = threading.Event()
    producer = threading.Thread(
        target=lambda: ClickProducer(replace(s, produce_rate=rate)).run(duration_s=seconds)
    )
    reader = Consumer(
        {
            "bootstrap.servers": s.bootstrap_servers,
            "enable.auto.commit": False,
            "group.id": f"bench-reader-{uuid.uuid4().hex}",
        }
    )
    began = time.monotonic()

    def pick() -> None:  # the newest record of a random partition becomes a probe
        while not stop.is_set():
            partition = random.randrange(s.partitions)
            tp = TopicPartition(s.topic, partition)
            _, high = reader.get_watermark_offsets(tp, timeout=5, cached=False)
            if high > 0:
                reader.assign([TopicPartition(s.topic, partition, high - 1)])
                msg = reader.poll(5)
                if msg is not None and not msg.error():
                    event_id = json.loads(msg.value())["event_id"]
                    probes.append(
                        Probe(
                            event_id,
                            partition,
                            msg.offset(),
                            msg.timestamp()[1],
                            time.monotonic() - began,
                        )
                    )
            time.sleep(0.25)

    def check() -> None:  # when each probe became searchable, and archived
        def pending() -> bool:
            return any(p.searchable_s is None or p.archived_s is None for p in probes)

        while not stop.is_set() or pending():
            now_ms = time.time() * 1000
            waiting = [p for p in probes if p.searchable_s is None]
            if waiting:
                found = bench.searchable([p.event_id for p in waiting])
                for p in waiting:
                    if p.event_id in found:
                        p.searchable_s = (now_ms - p.produced_ms) / 1000
            archived = bench.archived_up_to()
            for p in probes:
                if p.archived_s is None and archived.get(p.partition, 0) > p.offset:
                    p.archived_s = (now_ms - p.produced_ms) / 1000
            if time.monotonic() - began > seconds + 120:
                break
            time.sleep(0.1)

    def watch_lag() -> None:
        while not stop.is_set():
            t = time.monotonic() - began
            lags["es-indexer"].append((t, bench.lag(s.es_group)))
            lags["hdfs-archiver"].append((t, bench.lag(s.hdfs_group)))
            time.sleep(1)

    threads = [threading.Thread(target=f) for f in (pick, check, watch_lag)]
    producer.start()
    for thread in threads:
        thread.start()
    producer.join()
    stop.set()
    for thread in threads:
        thread.join()
    reader.close()
    return probes, lags


def plot(probes: list[Probe], lags: dict, out: Path, rate: float) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7))
    for attr, label in (
        ("searchable_s", "produce-to-searchable (Elasticsearch)"),
        ("archived_s", "produce-to-archived (HDFS)"),
    ):
        values = sorted(v for p in probes if (v := getattr(p, attr)) is not None)
        if values:
            top.plot(values, [i / len(values) for i in range(1, len(values) + 1)], label=label)
    top.set_xlabel("seconds from produce")
    top.set_ylabel("share of probed events")
    top.set_title(f"latency at {rate:,.0f} events/s (cumulative)")
    top.legend()
    for group, series in lags.items():
        if series:
            xs, ys = zip(*series, strict=True)
            bottom.plot(xs, ys, label=f"{group} lag")
    bottom.set_xlabel("seconds since the producer started")
    bottom.set_ylabel("records")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drain-events", type=int, default=40_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--roll-s", type=float, default=5.0, help="HDFS roll age")
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()

    bench = Bench(load(), args.roll_s)
    bench.create_topics()
    try:
        throughput = drain(bench, args.drain_events)
        print(f"steady: {args.rate:,.0f} events/s for {args.seconds:.0f} s")
        probes, lags = steady(bench, args.rate, args.seconds)
    finally:
        bench.cleanup()

    result: dict[str, object] = {
        "drain_events_per_s": throughput,
        "rate": args.rate,
        "hdfs_roll_s": args.roll_s,
        "probes": len(probes),
    }
    probes = [p for p in probes if p.picked_at_s >= args.warmup_s]
    for key in ("searchable_s", "archived_s"):
        values = [v for p in probes if (v := getattr(p, key)) is not None]
        missing = len(probes) - len(values)
        if values:
            result[key] = {
                "p50": percentile(values, 0.5),
                "p99": percentile(values, 0.99),
                "max": max(values),
                "probes": len(values),
                "never_seen": missing,
            }
            print(
                f"produce-to-{key[:-2]}: p50 {result[key]['p50']:.2f} s  "
                f"p99 {result[key]['p99']:.2f} s  max {result[key]['max']:.2f} s  "
                f"({len(values)} probes, {missing} never seen)"
            )
    for group, series in lags.items():
        values = [v for t, v in series if t >= args.warmup_s]
        if values:
            result[f"lag_{group}"] = {"p50": percentile(values, 0.5), "max": max(values)}
            print(
                f"{group} lag after warm-up: p50 {percentile(values, 0.5):,.0f}, "
                f"max {max(values):,.0f} records"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    png = args.out / f"bench-pipeline-{stamp}.png"
    plot(probes, lags, png, args.rate)
    print(f"plot: {png}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
