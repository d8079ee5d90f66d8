"""Resetting the indexer's offsets re-indexes documents without duplicating them."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime

from clickfan.errors import ClickfanError
from clickfan.experiments import plots
from clickfan.experiments.elastic import ElasticIndex
from clickfan.experiments.framework import Context, Experiment
from clickfan.experiments.kafka_io import produce_clicks
from clickfan.experiments.kafka_tools import reset_offsets_dry_run
from clickfan.experiments.offsets import GroupOffsets, Target
from clickfan.experiments.workers import (
    Worker,
    clickfan_executable,
    create_dlq,
    es_cleanup,
    lag,
    wait_group_empty,
    wait_until,
)

PARTITIONS = 6
SHIFT = -50


def replay_cli(group: str, topic: str, target: Target) -> list[dict]:
    """`clickfan replay GROUP --topic T --to X|--shift N --json`, as a user runs it."""
    if target.kind == "shift":
        how = ["--shift", str(target.value)]
    elif target.kind == "datetime":
        when = datetime.fromtimestamp(target.value / 1000, UTC)
        how = ["--to", when.isoformat(timespec="milliseconds")]
    else:
        how = ["--to", target.kind if target.kind != "offset" else str(target.value)]
    done = subprocess.run(
        [*clickfan_executable(), "replay", group, "--topic", topic, *how, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise ClickfanError(f"clickfan replay failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)["partitions"]


class Reset(Experiment):
    name = "reset"
    title = "resetting a group's offsets replays records without duplicating documents"
    claim_ko = """
이벤트 브로커 특징
  - 특정 시간동안 레코드를 보관
    - 2.장애 지점부터 재처리가 가능
- 이때 소비한 데이터를 사라지지 않는다.
"""
    claim = (
        "Because records stay in the log after they are consumed, a group can be moved back "
        "(to the start, to a point in time, by a number of records) and process them again. "
        "With the event id as document id, the re-processing overwrites documents: their "
        "`_version` rises, their number does not."
    )
    method = f"""
1. N events in two halves a second apart (the moment between them is T), to a
   {PARTITIONS}-partition topic; `clickfan worker es` indexes them (its own group and index
   prefix) until its lag is 0; then it is stopped.
2. Three resets of the indexer's group, each with `clickfan replay` while the worker is
   stopped: `--to earliest`, `--to T`, `--shift {SHIFT}`. Before each, the same request is
   given to `kafka-consumer-groups --reset-offsets --dry-run`: the targets must be equal.
3. After each reset the worker runs until its lag is 0 again. Measured: documents whose
   `_version` rose (must equal the records replayed: log end - new offset, summed) and the
   index's document count (must stay N).
"""
    default_events = 2000
    needs = ("kafka", "elasticsearch", "workers")

    def run(self, ctx: Context) -> None:
        s = ctx.settings
        topic = ctx.create_topic(partitions=PARTITIONS)
        dlq = create_dlq(ctx)
        ctx.forget_groups(ctx.names.es_group)
        es_cleanup(ctx)
        index = ElasticIndex(s, f"{ctx.names.index_prefix}-*")
        offsets = GroupOffsets(s.bootstrap_servers)
        n = ctx.events
        with ctx.step(f"producing {n} events in two halves"):
            first = produce_clicks(s, topic, n // 2, seed=1, record_deliveries=False)
            time.sleep(1.0)
            middle = datetime.now(UTC)
            time.sleep(1.0)
            second = produce_clicks(s, topic, n - n // 2, seed=2, record_deliveries=False)
        acked = first.acknowledged + second.acknowledged
        ctx.check("events acknowledged", n, acked, acked == n)

        worker = Worker(ctx, "es", dlq)
        ctx.on_cleanup("stop the es worker", worker.stop)

        def index_all(label: str) -> None:
            with ctx.step(f"{label}: clickfan worker es runs until its lag is 0"):
                worker.start()
                wait_until(
                    "the indexer to catch up",
                    lambda: lag(offsets, ctx.names.es_group, topic, PARTITIONS) == 0,
                    timeout_s=180,
                    workers=(worker,),
                )
                worker.stop()
                wait_group_empty(offsets, ctx.names.es_group)

        index_all("first indexing")
        count0 = index.count()
        ctx.check("documents after the first indexing", n, count0, count0 == n)
        versions = index.versions()

        results = []
        for label, target in (
            ("earliest", Target("earliest")),
            ("datetime T", Target("datetime", round(middle.timestamp() * 1000))),
            (f"shift {SHIFT}", Target("shift", SHIFT)),
        ):
            _, theirs = reset_offsets_dry_run(s, ctx.names.es_group, topic, target.kafka_args())
            plan = replay_cli(ctx.names.es_group, topic, target)
            mine = {(r["topic"], r["partition"]): r["new"] for r in plan}
            ctx.check(
                f"{label}: targets equal kafka-consumer-groups --dry-run",
                sorted(theirs.values()) if theirs else "(tool output)",
                sorted(mine.values()),
                mine == theirs,
            )
            replayed = sum(r["log_end"] - r["new"] for r in plan)
            index_all(f"after reset to {label}")
            after = index.versions()
            rose = sum(1 for doc, v in after.items() if v > versions.get(doc, 0))
            count = len(after)
            ctx.check(
                f"{label}: documents re-indexed (_version rose)",
                f"{replayed} (records replayed)",
                rose,
                rose == replayed,
            )
            ctx.check(f"{label}: documents in the index", n, count, count == n)
            results.append((label, replayed, rose, count))
            versions = after

        ctx.details["resets"] = [
            {"reset": label, "replayed": r, "version_rose": v, "documents": c}
            for label, r, v, c in results
        ]
        ctx.details["worker_starts"] = worker.starts
        plots.bars(
            ctx.plot_path("resets.png", "records replayed, documents re-indexed, index size"),
            f"three resets of the indexer's group ({n} events)",
            [label for label, *_ in results],
            {
                "records replayed": [r for _, r, _, _ in results],
                "documents whose _version rose": [v for _, _, v, _ in results],
                "documents in the index": [c for *_, c in results],
            },
            xlabel="reset",
            ylabel="records / documents",
        )
