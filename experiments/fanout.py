"""Two consumer groups read the same records; one's sink failing does not slow the other.

The second half stops Elasticsearch of the stack the environment points at and
starts it again: run it on a stack of your own, never on one others are using.
"""

from __future__ import annotations

import threading
import time

from rich.console import Console

from clickfan.experiments import plots
from clickfan.experiments.elastic import ElasticIndex
from clickfan.experiments.framework import Context, Experiment
from clickfan.experiments.kafka_io import produce_clicks
from clickfan.experiments.offsets import GroupOffsets
from clickfan.experiments.workers import (
    Worker,
    create_dlq,
    es_cleanup,
    hdfs_archive,
    hdfs_cleanup,
    lag,
    wait_until,
)

PARTITIONS = 6
OUTAGE_RATE = 100.0  # events/s while Elasticsearch is down


def offsets_covered(files: list) -> dict[int, list[tuple[int, int]]]:  # noqa: ANN001
    """Per partition, the sorted [first, last] ranges of the archive's files."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for f in files:
        ranges.setdefault(f.partition, []).append((f.first, f.last))
    return {p: sorted(r) for p, r in ranges.items()}


def gaps_and_overlaps(ranges: list[tuple[int, int]], end: int) -> tuple[int, int]:
    """Offsets in [0, end) missing from the ranges, and offsets covered twice."""
    missing = overlap = 0
    expected = 0
    for first, last in ranges:
        if first > expected:
            missing += first - expected
        elif first < expected:
            overlap += min(expected, last + 1) - first
        expected = max(expected, last + 1)
    missing += max(0, end - expected)
    return missing, overlap


class Fanout(Experiment):
    name = "fanout"
    title = "fan-out to two groups, and a down Elasticsearch does not hold up HDFS"
    claim_ko = """
카프카는 Producer-Consumer 사이에서 결합도를 약하게 만들어주는 중계자 역할을 해준다.
- 동일 데이터를 다른 컨슈머가 소비하는 특징이 아주 중요
- eg) topic: 클릭로그
- 1. 클릭로그 분석&시각화 - 엘라스틱 서치(컨슈머 1)
- 2. 클릭로그 백업 - 하둡 저장 ( 컨슈머 2)
"""
    claim = (
        "Kafka decouples producers from consumers: two consumer groups (Elasticsearch for "
        "analysis, HDFS for backup) each read every record, and one of them failing does not "
        "hold up the other."
    )
    method = f"""
1. `clickfan worker es` and `clickfan worker hdfs` run with the run's topic ({PARTITIONS}
   partitions), groups, index prefix and HDFS root. N events are produced. Measured:
   the Elasticsearch count and distinct ids, the HDFS archive's event ids, and the offset
   ranges in its file names (every offset of every partition exactly once).
2. Elasticsearch is stopped (`clickfan stop elasticsearch`); N/2 more events arrive at
   {OUTAGE_RATE:.0f}/s. Each group's lag (log end - committed offset) is sampled every
   second: the archiver's stays near 0, the indexer's grows. Then Elasticsearch is started
   again and the indexer drains its lag; the index ends with every event exactly once.
"""
    default_events = 2000
    needs = ("kafka", "elasticsearch", "hdfs", "workers", "kills")

    def run(self, ctx: Context) -> None:
        s = ctx.settings
        topic = ctx.create_topic(partitions=PARTITIONS)
        dlq = create_dlq(ctx)
        names = ctx.names
        ctx.forget_groups(names.es_group, names.hdfs_group)
        es_cleanup(ctx)
        hdfs_cleanup(ctx)
        index = ElasticIndex(s, f"{names.index_prefix}-*")
        offsets = GroupOffsets(s.bootstrap_servers)
        es_worker, hdfs_worker = Worker(ctx, "es", dlq), Worker(ctx, "hdfs", dlq)
        for w in (es_worker, hdfs_worker):
            ctx.on_cleanup(f"stop the {w.kind} worker", w.stop)
            w.start()

        began = time.monotonic()
        timeline: dict[str, tuple[list[float], list[float]]] = {
            "es-indexer": ([], []),
            "hdfs-archiver": ([], []),
        }
        stop_sampling = threading.Event()

        def sample() -> None:
            sampler = GroupOffsets(s.bootstrap_servers)
            while not stop_sampling.is_set():
                t = time.monotonic() - began
                for label, group in (
                    ("es-indexer", names.es_group),
                    ("hdfs-archiver", names.hdfs_group),
                ):
                    try:
                        value = lag(sampler, group, topic, PARTITIONS)
                    except Exception:  # a sample lost while a broker is busy
                        continue
                    timeline[label][0].append(t)
                    timeline[label][1].append(value)
                stop_sampling.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        marks: list[tuple[float, str]] = []
        try:
            self._both_groups(ctx, topic, index, offsets, (es_worker, hdfs_worker), marks, began)
            self._es_down(
                ctx, topic, index, offsets, (es_worker, hdfs_worker), marks, began, timeline
            )
        finally:
            stop_sampling.set()
            sampler.join(5)
            plots.lines(
                ctx.plot_path("lag.png", "lag per consumer group over time"),
                "consumer lag per group (records), Elasticsearch stopped and started",
                timeline,
                xlabel="seconds",
                ylabel="lag (records)",
                marks=marks,
            )
        ctx.details["lag_timeline"] = {k: list(zip(*v, strict=True)) for k, v in timeline.items()}

    def _both_groups(self, ctx, topic, index, offsets, workers, marks, began) -> None:  # noqa: ANN001
        s, n = ctx.settings, ctx.events
        with ctx.step(f"producing {n} events; both workers consume them"):
            summary = produce_clicks(s, topic, n)
            self.ids = {d.event_id for d in summary.deliveries or []}
            marks.append((time.monotonic() - began, f"{n} produced"))
            for group in (ctx.names.es_group, ctx.names.hdfs_group):
                wait_until(
                    f"group {group} to catch up",
                    lambda g=group: lag(offsets, g, topic, PARTITIONS) == 0,
                    timeout_s=180,
                    workers=workers,
                )
        ctx.check("events acknowledged", n, summary.acknowledged, summary.acknowledged == n)
        count = index.count()
        ctx.check("Elasticsearch: documents", n, count, count == n)
        archive = hdfs_archive(ctx)
        archived = archive["event_ids"]
        ctx.check(
            "HDFS: events archived (distinct, duplicates)",
            f"{n}, 0 duplicates",
            f"{len(set(archived))}, {len(archived) - len(set(archived))} duplicates",
            set(archived) == self.ids and len(archived) == n,
        )
        ends = offsets.log_end([(topic, p) for p in range(PARTITIONS)])
        ranges = offsets_covered(archive["files"])
        missing = overlap = 0
        for p in range(PARTITIONS):
            m, o = gaps_and_overlaps(ranges.get(p, []), ends[(topic, p)])
            missing += m
            overlap += o
        ctx.check(
            "HDFS: offsets missing / archived twice (from file names)",
            "0 / 0",
            f"{missing} / {overlap}",
            missing == 0 and overlap == 0,
        )

    def _es_down(self, ctx, topic, index, offsets, workers, marks, began, timeline) -> None:  # noqa: ANN001
        from clickfan.compose.native.stack import start_one, stop_one

        s, n = ctx.settings, ctx.events
        m = max(n // 2, 1)
        quiet = Console(stderr=True, quiet=True)
        with ctx.step("stopping Elasticsearch"):
            stop_one(s, "elasticsearch", quiet)
        ctx.on_cleanup("start Elasticsearch again", lambda: start_one(s, "elasticsearch", quiet))
        marks.append((time.monotonic() - began, "Elasticsearch stopped"))
        with ctx.step(f"producing {m} events at {OUTAGE_RATE:.0f}/s while it is down"):
            summary = produce_clicks(s, topic, m, rate=OUTAGE_RATE, seed=9)
            self.ids |= {d.event_id for d in summary.deliveries or []}
        with ctx.step("the archiver catches up while Elasticsearch is still down"):
            wait_until(
                "the archiver to catch up",
                lambda: lag(offsets, ctx.names.hdfs_group, topic, PARTITIONS) == 0,
                timeout_s=120,
                workers=workers,
            )
            es_lag_down = lag(offsets, ctx.names.es_group, topic, PARTITIONS)
            hdfs_lag_down = lag(offsets, ctx.names.hdfs_group, topic, PARTITIONS)
        ctx.check(
            "while Elasticsearch is down: archiver lag / indexer lag",
            f"0 / {m}",
            f"{hdfs_lag_down} / {es_lag_down}",
            hdfs_lag_down == 0 and es_lag_down == m,
        )
        restart_at = time.monotonic() - began
        outage = [
            (t, v)
            for t, v in zip(*timeline["hdfs-archiver"], strict=True)
            if marks[-1][0] <= t <= restart_at
        ]
        max_archiver = max((v for _, v in outage), default=0)
        ctx.details["archiver_max_lag_during_outage"] = max_archiver
        with ctx.step("starting Elasticsearch again; the indexer drains its lag"):
            start_one(s, "elasticsearch", quiet)
            marks.append((time.monotonic() - began, "Elasticsearch started"))
            wait_until(
                "the indexer to catch up",
                lambda: lag(offsets, ctx.names.es_group, topic, PARTITIONS) == 0,
                timeout_s=240,
                workers=workers,
            )
        count = index.count()
        ctx.check("Elasticsearch after the outage: documents", n + m, count, count == n + m)
        archived = hdfs_archive(ctx)["event_ids"]
        ctx.check(
            "HDFS after the outage: events archived",
            n + m,
            len(set(archived)),
            set(archived) == self.ids and len(archived) == n + m,
        )
        ctx.note(
            f"The archiver's largest sampled lag during the outage was {max_archiver} "
            f"records (its files roll every 2 s); the indexer's reached {es_lag_down}."
        )
