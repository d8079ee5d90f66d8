"""What the two sinks are for: live answers from Elasticsearch, complete ones from the archive.

Stops Elasticsearch of the stack the environment points at and starts it again:
run it on a stack of your own, never on one others are using at the time.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from rich.console import Console

from clickfan.analysis.commands import Run, answer_one
from clickfan.analysis.compare import AGREE, BEHIND
from clickfan.analysis.es_engine import ElasticsearchEngine
from clickfan.analysis.questions import (
    QUESTIONS,
    EngineDown,
    TimeRange,
    reference,
)
from clickfan.analysis.rebuild import rebuild_index
from clickfan.analysis.spark_engine import SparkEngine
from clickfan.errors import ClickfanError
from clickfan.experiments import plots
from clickfan.experiments.framework import Context, Experiment, ExperimentSkipped
from clickfan.experiments.kafka_io import read_topic
from clickfan.experiments.offsets import GroupOffsets
from clickfan.experiments.workers import (
    Worker,
    create_dlq,
    es_cleanup,
    hdfs_cleanup,
    lag,
    wait_until,
)

PARTITIONS = 3
BATCHES = 6  # one minute of event time apart; the first half before the outage
SEGMENT_MS = 2000  # the outage's records start a new segment, so retention can drop the older
RETENTION_MS = 10000
LIMIT = 10
PER_MINUTE = QUESTIONS["events-per-minute"]
WHOLE = TimeRange()


def _minute_totals(result: dict[str, Any], engine: str) -> dict[str, int]:
    """minute -> events (all types) from one engine's events-per-minute answer."""
    totals: dict[str, int] = {}
    for row in result["engines"][engine].get("rows", []):
        totals[row["minute"]] = totals.get(row["minute"], 0) + row["events"]
    return totals


class Analysis(Experiment):
    name = "analysis"
    title = "live answers from Elasticsearch, complete ones from the HDFS archive; they agree"
    claim_ko = """
- 동일 데이터를 다른 컨슈머가 소비하는 특징이 아주 중요
- 1. 클릭로그 분석&시각화 - 엘라스틱 서치(컨슈머 1)
- 2. 클릭로그 백업 - 하둡 저장 ( 컨슈머 2)
"""
    claim = (
        "The two sinks of one topic serve two purposes: Elasticsearch answers questions about "
        "the click stream live, the HDFS archive is the complete, replayable history a batch "
        "engine (Spark) reads. While the indexer is behind, the live answers lag and the batch "
        "answers are complete; once both groups caught up they agree exactly; and after Kafka's "
        "retention removed the oldest records, the archive still answers for the whole period "
        "and Elasticsearch can be rebuilt from it."
    )
    method = f"""
The run's topic ({PARTITIONS} partitions, `segment.ms` {SEGMENT_MS}), both workers, and one
Spark session (local mode) over the run's HDFS folder. N events in {BATCHES} batches whose
event times are one minute apart; each question of `clickfan analyze` is asked of both
engines (`--engine both`) and of plain Python over the events read back from Kafka.

1. The first {BATCHES // 2} batches; both groups catch up; every question: both agree.
2. Elasticsearch is stopped (`clickfan stop elasticsearch`); the other batches arrive. The
   archiver catches up; Spark answers alone, with every event.
3. The indexer is stopped too (it could not commit anything), Elasticsearch is started again:
   its answers miss the outage's minutes while Spark's are complete, and `both` reports the
   indexer's lag instead of a disagreement. The indexer is started; once it caught up,
   every question: both agree.
4. `retention.ms` {RETENTION_MS} on the topic until the broker's retention check deleted the
   older segments (then retention is switched off again): a reader from earliest sees fewer
   than N records, Spark still answers for all N, and an index rebuilt from the archive
   (`clickfan.analysis.rebuild`: archive -> bulk index into a fresh prefix) answers every
   question as Spark does.
"""
    default_events = 3000
    quick = False
    needs = ("kafka", "elasticsearch", "hdfs", "workers", "kills")

    def run(self, ctx: Context) -> None:
        s, names = ctx.settings, ctx.names
        topic = ctx.create_topic(
            partitions=PARTITIONS,
            config={"segment.ms": str(SEGMENT_MS), "file.delete.delay.ms": "1000"},
        )
        dlq = create_dlq(ctx, partitions=1)
        ctx.forget_groups(names.es_group, names.hdfs_group)
        es_cleanup(ctx)
        hdfs_cleanup(ctx)
        self.settings = s.with_overrides(
            topic=topic,
            index_prefix=names.index_prefix,
            hdfs_root=names.hdfs_root,
            es_group=names.es_group,
            hdfs_group=names.hdfs_group,
        )
        self.offsets = GroupOffsets(s.bootstrap_servers)
        self.topic = topic
        self.es_worker, hdfs_worker = Worker(ctx, "es", dlq), Worker(ctx, "hdfs", dlq)
        self.workers = (self.es_worker, hdfs_worker)
        for w in self.workers:
            ctx.on_cleanup(f"stop the {w.kind} worker", w.stop)
            w.start()
        self.spark = SparkEngine(self.settings, log_file=ctx.out_dir / "spark.log")
        ctx.on_cleanup("stop Spark", self.spark.stop)
        try:
            self.spark.start(say=ctx.progress)
        except EngineDown as exc:
            raise ExperimentSkipped(str(exc)) from None
        ctx.details["spark_startup_s"] = round(self.spark.startup_s or 0, 2)

        base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=BATCHES + 5)
        per_batch = max(ctx.events // BATCHES, 1)
        self.produced = 0
        series: dict[str, dict[str, int]] = {}

        # 1. both groups caught up: both engines agree
        self._produce(ctx, base, range(BATCHES // 2), per_batch)
        self._caught_up(ctx, names.es_group, names.hdfs_group)
        before = self._ask_all(ctx, "before the outage")
        ctx.check(
            "before the outage: verdict of every question",
            "agree",
            sorted({r["verdict"] for r in before}),
            all(r["verdict"] == AGREE for r in before),
        )
        first_half = self.produced

        # 2. Elasticsearch down: the archive keeps going, Spark answers alone
        from clickfan.compose.native.stack import start_one, stop_one

        quiet = Console(stderr=True, quiet=True)
        with ctx.step("stopping Elasticsearch"):
            stop_one(s, "elasticsearch", quiet)
        ctx.on_cleanup("start Elasticsearch again", lambda: start_one(s, "elasticsearch", quiet))
        self._produce(ctx, base, range(BATCHES // 2, BATCHES), per_batch)
        self._caught_up(ctx, names.hdfs_group)
        down = self._ask(PER_MINUTE)
        spark_down = sum(_minute_totals(down, "spark").values())
        ctx.check(
            "Elasticsearch stopped: who answers, events Spark counts",
            f"only spark, {self.produced}",
            f"{down['verdict']}, {spark_down}",
            down["verdict"] == "only spark" and spark_down == self.produced,
            down["engines"]["es"].get("error", ""),
        )

        # 3. Elasticsearch back, the indexer still behind: the live answer lags
        with ctx.step("stopping the indexer, starting Elasticsearch again"):
            self.es_worker.stop()
            start_one(s, "elasticsearch", quiet)
        behind = self._ask(PER_MINUTE)
        es_behind = sum(_minute_totals(behind, "es").values())
        spark_behind = sum(_minute_totals(behind, "spark").values())
        es_lag = behind.get("lag", {}).get("groups", {}).get(names.es_group)
        ctx.check(
            "indexer behind: verdict; events live / batch; indexer lag",
            f"behind; {first_half} / {self.produced}; {self.produced - first_half}",
            f"{behind['verdict']}; {es_behind} / {spark_behind}; {es_lag}",
            behind["verdict"] == BEHIND
            and (es_behind, spark_behind) == (first_half, self.produced)
            and es_lag == self.produced - first_half,
        )
        series["Elasticsearch, indexer behind"] = _minute_totals(behind, "es")
        with ctx.step("starting the indexer; it catches up"):
            self.es_worker.start()
            self._caught_up(ctx, names.es_group, names.hdfs_group)
        after = self._ask_all(ctx, "after the catch-up")
        ctx.check(
            "after the catch-up: verdict of every question",
            "agree",
            sorted({r["verdict"] for r in after}),
            all(r["verdict"] == AGREE for r in after),
        )
        series["Elasticsearch, caught up"] = _minute_totals(after[0], "es")

        events = [
            json.loads(r.value or b"")
            for r in read_topic(
                s.bootstrap_servers,
                topic,
                PARTITIONS,
                self.offsets_end(),
            )
        ]
        truth = reference(PER_MINUTE, events, WHOLE, LIMIT)
        ctx.check(
            "events per minute, batch answer vs the events read back from Kafka",
            "equal",
            "equal" if after[0]["engines"]["spark"]["rows"] == _as_json(truth) else "different",
            after[0]["engines"]["spark"]["rows"] == _as_json(truth),
        )

        # 4. retention removes the oldest records; the archive answers for the whole period
        removed = self._retention(ctx)
        readable = sum(self.offsets_end().values()) - removed
        ctx.check(
            "retention: records removed from Kafka / still readable",
            f"> 0 / < {self.produced}",
            f"{removed} / {readable}",
            removed > 0 and readable < self.produced,
        )
        late = self._ask(PER_MINUTE, engine="spark")
        late_rows = late["engines"]["spark"].get("rows")
        ctx.check(
            "after retention: Spark's events per minute vs the events produced",
            f"equal ({self.produced} events)",
            f"{sum(_minute_totals(late, 'spark').values())} events, "
            + ("equal" if late_rows == _as_json(truth) else "different"),
            late_rows == _as_json(truth),
        )
        series["Spark over the HDFS archive"] = _minute_totals(late, "spark")

        rebuilt_prefix = f"{names.prefix}-rebuilt"
        ctx.on_cleanup(
            f"delete the rebuilt indices {rebuilt_prefix}-*", self._delete(rebuilt_prefix)
        )
        with ctx.step(f"rebuilding Elasticsearch from the archive into {rebuilt_prefix}-*"):
            began = time.monotonic()
            rebuilt = rebuild_index(self.settings, names.hdfs_root, rebuilt_prefix)
            ctx.details["rebuild_s"] = round(time.monotonic() - began, 2)
        ctx.details["rebuild"] = {"events": rebuilt.events, "indices": rebuilt.indices}
        ctx.check(
            "rebuilt index: documents from the archive",
            self.produced,
            rebuilt.events,
            rebuilt.events == self.produced,
        )
        rebuilt_engine = ElasticsearchEngine(self.settings, index_prefix=rebuilt_prefix)
        verdicts = []
        for q in QUESTIONS.values():
            result = answer_one(
                Run(self.settings, "both", es=rebuilt_engine, spark=self.spark), q, WHOLE, LIMIT
            )
            verdicts.append(result["verdict"])
            if q is PER_MINUTE:
                series["Elasticsearch rebuilt from the archive"] = _minute_totals(result, "es")
        ctx.check(
            "rebuilt index vs Spark: verdict of every question",
            "agree",
            sorted(set(verdicts)),
            all(v == AGREE for v in verdicts),
        )
        self._plot(ctx, series)

    # ---------------------------------------------------------------- steps
    def _produce(self, ctx: Context, base: datetime, batches: range, per_batch: int) -> None:
        from clickfan.generators.producer import ClickProducer

        for b in batches:
            # uneven batches, so that the minutes differ; event time runs at 1000 events/s
            # (unthrottled) from the batch's own minute on
            count = per_batch + (b % 3 - 1) * (per_batch // 3)
            with ctx.step(f"producing batch {b + 1} of {BATCHES}: {count} events"):
                settings = dataclasses.replace(
                    self.settings, produce_rate=0.0, produce_seed=1600 + b, produce_keys="user"
                )
                summary = ClickProducer(settings).run(
                    count=count, start_time=base + timedelta(minutes=b), record_deliveries=False
                )
            if summary.acknowledged != count:
                raise ClickfanError(f"batch {b}: {summary.acknowledged} of {count} acknowledged")
            self.produced += count

    def _caught_up(self, ctx: Context, *groups: str) -> None:
        for group in groups:
            wait_until(
                f"group {group} to catch up",
                lambda g=group: lag(self.offsets, g, self.topic, PARTITIONS) == 0,
                timeout_s=240,
                workers=tuple(w for w in self.workers if w.running()),
            )

    def _ask(self, q: Any, engine: str = "both") -> dict[str, Any]:
        run = Run(self.settings, engine, spark=self.spark)
        return answer_one(run, q, WHOLE, LIMIT)

    def _ask_all(self, ctx: Context, when: str) -> list[dict[str, Any]]:
        results = [self._ask(q) for q in QUESTIONS.values()]
        timings = {
            r["question"]: {e: a.get("seconds") for e, a in r["engines"].items()} for r in results
        }
        ctx.details[f"seconds per question, {when}"] = timings
        return results

    def offsets_end(self) -> dict[int, int]:
        ends = self.offsets.log_end([(self.topic, p) for p in range(PARTITIONS)])
        return {p: ends[(self.topic, p)] for p in range(PARTITIONS)}

    def _retention(self, ctx: Context) -> int:
        """Retention on until the log start moved; returns the records it removed."""
        tps = [(self.topic, p) for p in range(PARTITIONS)]

        def alter(value: str) -> None:
            resource = ConfigResource(
                ResourceType.TOPIC,
                self.topic,
                incremental_configs=[
                    ConfigEntry("retention.ms", value, incremental_operation=AlterConfigOpType.SET)
                ],
            )
            for future in ctx.admin.incremental_alter_configs([resource]).values():
                future.result()

        alter(str(RETENTION_MS))
        wait_s = ctx.settings.experiment_retention_wait_s
        try:
            with ctx.step(f"waiting for the broker's retention check (up to {wait_s:.0f} s)"):
                wait_until(
                    "the log start offsets to move",
                    lambda: sum(self.offsets.log_start(tps).values()) > 0,
                    timeout_s=wait_s,
                    pause_s=2.0,
                )
        except ClickfanError as exc:  # the check below shows the numbers
            ctx.note(str(exc))
        finally:
            alter("-1")  # freeze the log as retention left it
        starts = self.offsets.log_start(tps)
        ctx.details["log_start_after_retention"] = {str(p): starts[(t, p)] for t, p in starts}
        return sum(starts.values())

    def _delete(self, prefix: str) -> Any:
        def delete() -> None:
            from clickfan.experiments.elastic import client

            es = client(self.settings)
            es.indices.delete(index=f"{prefix}-*", ignore_unavailable=True, allow_no_indices=True)
            es.options(ignore_status=404).indices.delete_index_template(name=prefix)

        return delete

    def _plot(self, ctx: Context, series: dict[str, dict[str, int]]) -> None:
        # every minute of the run, so that a minute one engine has not seen shows as 0
        minutes = sorted({m for values in series.values() for m in values})
        plots.bars(
            ctx.plot_path("events-per-minute.png", "events per minute from each engine"),
            "events per minute of event time, as each engine answered",
            [m[11:16] for m in minutes],
            {label: [values.get(m, 0) for m in minutes] for label, values in series.items()},
            xlabel="minute of event time (UTC)",
            ylabel="events",
        )
        ctx.details["events_per_minute"] = series


def _as_json(answer: Any) -> list[dict[str, Any]]:
    return answer.to_json()["rows"]
