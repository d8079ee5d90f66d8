"""Retention deletes old records from Kafka; the HDFS archive keeps every event."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from clickfan.errors import ClickfanError
from clickfan.experiments import plots
from clickfan.experiments.framework import Context, Experiment
from clickfan.experiments.kafka_io import produce_clicks, read_topic
from clickfan.experiments.kafka_tools import get_offsets, run_kafka_tool
from clickfan.experiments.offsets import GroupOffsets
from clickfan.experiments.workers import (
    Worker,
    create_dlq,
    hdfs_archive,
    hdfs_cleanup,
    lag,
    wait_until,
)

PARTITIONS = 2
BURSTS = 5
SEGMENT_MS = 2000  # a record arriving later than this after a segment began rolls it
RETENTION_MS = 15000
TRICKLE = 10  # events to the retention.ms topic every 5 s while waiting


@dataclass
class Case:
    label: str  # retention.ms | retention.bytes
    topic: str
    group: str
    root: str
    event_ids: set[str]
    worker: Worker | None = None


def log_sizes(ctx: Context, topic: str) -> dict[int, int]:
    """Bytes per partition (largest replica), from Kafka's kafka-log-dirs."""
    s = ctx.settings
    tool = run_kafka_tool(
        s,
        "kafka-log-dirs",
        ["--bootstrap-server", s.bootstrap_servers, "--describe", "--topic-list", topic],
    )
    sizes: dict[int, int] = {}
    for line in tool.stdout.splitlines():
        if line.startswith("{"):
            for broker in json.loads(line)["brokers"]:
                for log_dir in broker["logDirs"]:
                    for p in log_dir["partitions"]:
                        number = int(p["partition"].rsplit("-", 1)[1])
                        sizes[number] = max(sizes.get(number, 0), p["size"])
    return sizes


class Retention(Experiment):
    name = "retention"
    title = "retention moves the log start; the HDFS archive keeps everything"
    claim_ko = """
파티션의 데이터 삭제는 옵션에 따라 다르다.
- log.retention.ms : 최대 record 보존 시간
- log.retention.byte : 최대 record 보존 크기 byte
이벤트 브로커 특징
  - 특정 시간동안 레코드를 보관
"""
    claim = (
        "Kafka keeps records for a time (retention.ms) or up to a size (retention.bytes), "
        "then deletes whole old segments: the log start offset moves forward and a new group "
        "reading from earliest only sees what is left. A sink that archived the records "
        "(HDFS here) still has all of them."
    )
    method = f"""
Two topics ({PARTITIONS} partitions each) with small segments (`segment.ms` {SEGMENT_MS}):
one with `retention.ms` {RETENTION_MS}, one with `retention.bytes` set to half of what it holds.

1. N events per topic in {BURSTS} bursts {SEGMENT_MS / 1000 * 1.25:g} s apart, so each burst
   is its own segment; `clickfan worker hdfs` archives each topic (own group and HDFS root).
2. After the archivers' lag is 0 the broker's retention check is awaited (it runs every
   `log.retention.check.interval.ms`: 10 s on clickfan's stacks, 5 minutes by Kafka's default).
   Meanwhile {TRICKLE} events every 5 s keep arriving on the retention.ms topic, as on a
   live topic, so its newest segments are young enough to stay.
3. Retention is then switched off on both topics, so the logs stay as it left them.
4. Measured per topic: the log start offset (admin API, and Kafka's
   `kafka-get-offsets --time earliest`), what a new group from earliest reads, and the
   event ids in the HDFS archive against those produced.
"""
    default_events = 2000
    needs = ("kafka", "hdfs", "workers")

    def run(self, ctx: Context) -> None:
        s = ctx.settings
        n = ctx.events
        dlq = create_dlq(ctx, partitions=1)
        hdfs_cleanup(ctx)
        config = {"segment.ms": str(SEGMENT_MS), "file.delete.delay.ms": "1000"}
        cases = [
            Case(
                "retention.ms",
                ctx.create_topic(
                    f"{ctx.names.prefix}.by-time",
                    PARTITIONS,
                    config={**config, "retention.ms": str(RETENTION_MS)},
                ),
                ctx.names.group("archiver-by-time"),
                f"{ctx.names.hdfs_root}/by-time",
                set(),
            ),
            Case(
                "retention.bytes",
                ctx.create_topic(f"{ctx.names.prefix}.by-size", PARTITIONS, config=config),
                ctx.names.group("archiver-by-size"),
                f"{ctx.names.hdfs_root}/by-size",
                set(),
            ),
        ]
        ctx.forget_groups(*[c.group for c in cases], *[c.group + ".reader" for c in cases])
        offsets = GroupOffsets(s.bootstrap_servers)
        for case in cases:
            case.worker = Worker(
                ctx, "hdfs", dlq, topic=case.topic, group=case.group, hdfs_root=case.root
            )
            ctx.on_cleanup(f"stop the archiver of {case.topic}", case.worker.stop)
            case.worker.start()

        per_burst = max(n // BURSTS, 1)
        with ctx.step(f"producing {BURSTS} bursts of {per_burst} events to each topic"):
            for burst in range(BURSTS):
                for case in cases:
                    summary = produce_clicks(
                        s, case.topic, per_burst, seed=100 + burst, produce_compression="none"
                    )
                    case.event_ids |= {d.event_id for d in summary.deliveries or []}
                if burst < BURSTS - 1:
                    time.sleep(SEGMENT_MS / 1000 * 1.25)
        produced = per_burst * BURSTS
        for case in cases:
            ctx.check(
                f"{case.label}: events acknowledged",
                produced,
                len(case.event_ids),
                len(case.event_ids) == produced,
            )

        with ctx.step("waiting for both archivers to catch up"):
            for case in cases:
                wait_until(
                    f"the archiver of {case.topic}",
                    lambda case=case: lag(offsets, case.group, case.topic, PARTITIONS) == 0,
                    timeout_s=180,
                    workers=tuple(c.worker for c in cases if c.worker),
                )
        by_size = cases[1]
        sizes = log_sizes(ctx, by_size.topic)
        limit = max(1, min(sizes.values(), default=2) // 2)
        resource = ConfigResource(
            ResourceType.TOPIC,
            by_size.topic,
            incremental_configs=[
                ConfigEntry(
                    "retention.bytes", str(limit), incremental_operation=AlterConfigOpType.SET
                )
            ],
        )
        for future in ctx.admin.incremental_alter_configs([resource]).values():
            future.result()
        ctx.details["retention_bytes"] = limit
        ctx.details["bytes_per_partition_before"] = {str(p): b for p, b in sizes.items()}

        tps = {c.label: [(c.topic, p) for p in range(PARTITIONS)] for c in cases}
        timeline: dict[str, tuple[list[float], list[float]]] = {c.label: ([], []) for c in cases}
        probes: list[float] = []
        began = time.monotonic()

        by_time = cases[0]

        def moved() -> bool:
            # a live topic: new records keep arriving, so the newest segments stay
            probes.append(time.monotonic())
            trickle = produce_clicks(
                s, by_time.topic, TRICKLE, seed=1000 + len(probes), record_deliveries=True
            )
            by_time.event_ids |= {d.event_id for d in trickle.deliveries or []}
            done = True
            for case in cases:
                starts = offsets.log_start(tps[case.label])
                xs, ys = timeline[case.label]
                xs.append(time.monotonic() - began)
                ys.append(sum(starts.values()))
                done = done and all(v > 0 for v in starts.values())
            return done

        wait_s = s.experiment_retention_wait_s
        with ctx.step(f"waiting for the broker's retention check (up to {wait_s:.0f} s)"):
            try:
                wait_until("the log start offsets to move", moved, timeout_s=wait_s, pause_s=5.0)
            except ClickfanError as exc:  # a timeout: the checks below show the numbers
                ctx.note(str(exc))
        ctx.details["seconds_until_retention"] = round(time.monotonic() - began, 1)
        # Freeze the logs as retention left them: the brokers check every few seconds,
        # and a later pass deleting more while the reader below reads would blur the count.
        freeze = [
            ConfigResource(
                ResourceType.TOPIC,
                case.topic,
                incremental_configs=[
                    ConfigEntry(key, "-1", incremental_operation=AlterConfigOpType.SET)
                    for key in ("retention.ms", "retention.bytes")
                ],
            )
            for case in cases
        ]
        for future in ctx.admin.incremental_alter_configs(freeze).values():
            future.result()
        for case in cases:
            wait_until(
                f"the archiver of {case.topic}",
                lambda case=case: lag(offsets, case.group, case.topic, PARTITIONS) == 0,
                timeout_s=120,
                workers=tuple(c.worker for c in cases if c.worker),
            )

        summary_rows = []
        for case in cases:
            starts = offsets.log_start(tps[case.label])
            ends = offsets.log_end(tps[case.label])
            tool, theirs = get_offsets(s, case.topic, "earliest")
            ctx.check(
                f"{case.label}: log start offsets, kafka-get-offsets --time earliest",
                "> 0 on every partition",
                {f"p{p}": theirs.get((t, p)) for t, p in tps[case.label]},
                all(v > 0 for v in starts.values()) and theirs == starts,
                "equal to the admin API's" if theirs == starts else f"admin API: {starts}",
            )
            produced = len(case.event_ids)
            left = sum(ends[tp] - starts[tp] for tp in tps[case.label])
            records = read_topic(
                s.bootstrap_servers,
                case.topic,
                PARTITIONS,
                {p: ends[(case.topic, p)] for p in range(PARTITIONS)},
            )
            first_read = {
                p: min((r.offset for r in records if r.partition == p), default=None)
                for p in range(PARTITIONS)
            }
            # an emptied partition has nothing to read; the others start at the log start
            ok_first = all(
                first_read[p]
                == (
                    None
                    if ends[(case.topic, p)] == starts[(case.topic, p)]
                    else starts[(case.topic, p)]
                )
                for p in range(PARTITIONS)
            )
            ctx.check(
                f"{case.label}: a new reader from earliest reads",
                f"{left} of {produced} (what is left, from the log start)",
                len(records),
                len(records) == left and left < produced and ok_first,
            )
            archive = hdfs_archive(ctx, case.root)
            archived = set(archive["event_ids"])
            ctx.check(
                f"{case.label}: events in the HDFS archive",
                f"{produced} (all produced)",
                f"{len(archived & case.event_ids)} ({len(archive['files'])} files)",
                case.event_ids <= archived,
            )
            summary_rows.append(
                (
                    case.label,
                    produced,
                    produced - left,
                    len(records),
                    len(archived & case.event_ids),
                )
            )
        after = log_sizes(ctx, by_size.topic)
        ctx.details["bytes_per_partition_after"] = {str(p): b for p, b in after.items()}
        ctx.details["cases"] = [
            {
                "retention": label,
                "produced": p,
                "deleted": d,
                "read_from_earliest": r,
                "archived": a,
            }
            for label, p, d, r, a in summary_rows
        ]
        plots.bars(
            ctx.plot_path("retention.png", "produced, deleted by retention, readable, archived"),
            f"{per_burst * BURSTS} events per topic in {BURSTS} bursts (+ a trickle)",
            [label for label, *_ in summary_rows],
            {
                "produced": [row[1] for row in summary_rows],
                "deleted by retention": [row[2] for row in summary_rows],
                "read by a new earliest group": [row[3] for row in summary_rows],
                "in the HDFS archive": [row[4] for row in summary_rows],
            },
            xlabel="topic",
            ylabel="events",
        )
        plots.lines(
            ctx.plot_path("log-start.png", "log start offset while waiting for retention"),
            "log start offset (sum over partitions) while waiting for the retention check",
            timeline,
            xlabel="seconds after the archivers caught up",
            ylabel="log start offset",
            step=True,
        )
