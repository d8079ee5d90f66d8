"""A new consumer group reads from the start (earliest) or only what comes next (latest)."""

from __future__ import annotations

import json

from clickfan.experiments import plots
from clickfan.experiments.elastic import ElasticIndex
from clickfan.experiments.framework import Context, Experiment
from clickfan.experiments.kafka_io import consume_group, produce_clicks
from clickfan.experiments.offsets import GroupOffsets, Target


class Replay(Experiment):
    name = "replay"
    title = "a new group reads from earliest or latest; an index is rebuilt from the log"
    claim_ko = """
- 컨슈머는 큐 데이터를 순차적으로 소비한다.
- 이때 소비한 데이터를 사라지지 않는다.
- 새로운 컨슈머가 붙었을때, 파티션의 데이터를 처음부터 읽게 된다.
- ( 조건, 새로운 컨슈머는 다른 그룹이고, auto.offset.reset = earliest 이어야 함)
- 동일 데이터를 다른 컨슈머가 소비하는 특징이 아주 중요
"""
    claim = (
        "Consumed data does not disappear: a new consumer group with "
        "auto.offset.reset=earliest reads every record from the start, one with latest reads "
        "only what is produced after it joined, and a store can be rebuilt from the log."
    )
    method = """
1. N click events are produced to a fresh topic (6 partitions, `clickfan produce`).
2. Group A (auto.offset.reset=earliest) reads the topic: every event id is counted.
3. Group B (also earliest, after A has consumed everything) reads again: consumption by A
   removed nothing.
4. A second Elasticsearch index is rebuilt from the log by group C (earliest), with the
   event id as document id, then rebuilt once more from the start: it must hold exactly N
   documents both times (a replay overwrites, never duplicates).
5. Group L (auto.offset.reset=latest) joins; once its start offsets are fixed, M = N/5 more
   events are produced. L reads exactly those M.
"""
    default_events = 2000
    needs = ("kafka", "elasticsearch")

    def run(self, ctx: Context) -> None:
        s = ctx.settings
        topic = ctx.create_topic()
        n = ctx.events
        groups = {
            role: ctx.names.group(role)
            for role in ("earliest-a", "earliest-b", "rebuild", "latest")
        }
        ctx.forget_groups(*groups.values())
        with ctx.step(f"producing {n} events"):
            first = produce_clicks(s, topic, n)
        ids = {d.event_id for d in first.deliveries or []}
        ctx.check("events acknowledged", n, first.acknowledged, first.acknowledged == n)

        def read_all(group: str, reset: str) -> set[str]:
            records = consume_group(
                s.bootstrap_servers,
                topic,
                group,
                reset,
                stop=lambda rs: len(rs) >= n,
                timeout_s=90,
            )
            return {json.loads(r.value)["event_id"] for r in records}

        with ctx.step("group A (earliest) reads the topic"):
            seen_a = read_all(groups["earliest-a"], "earliest")
        ctx.check("group A (earliest): distinct events read", n, len(seen_a), seen_a == ids)
        with ctx.step("group B (earliest) reads the same records again"):
            seen_b = read_all(groups["earliest-b"], "earliest")
        ctx.check(
            "group B (earliest, after A): distinct events read", n, len(seen_b), seen_b == ids
        )

        index = ElasticIndex(s, f"{ctx.names.index_prefix}-rebuilt")
        ctx.on_cleanup(f"delete index {index.name}", index.delete)
        counts = []
        for attempt in (1, 2):
            with ctx.step(f"rebuilding index {index.name} from the log (pass {attempt})"):
                records = consume_group(
                    s.bootstrap_servers,
                    topic,
                    groups["rebuild"],
                    "earliest",
                    stop=lambda rs: len(rs) >= n,
                    timeout_s=90,
                )
                index.put([json.loads(r.value) for r in records])
                counts.append(index.count())
            # the second pass re-reads everything, as `clickfan replay --to earliest` would
            GroupOffsets(s.bootstrap_servers).reset(
                groups["rebuild"], Target("earliest"), topic=topic
            )
        ctx.check("rebuilt index: documents after one pass", n, counts[0], counts[0] == n)
        ctx.check(
            "rebuilt index: documents after replaying it all again", n, counts[1], counts[1] == n
        )

        m = max(n // 5, 1)
        later: list = []

        def produce_more() -> None:
            summary = produce_clicks(s, topic, m, seed=8)
            later.extend(d.event_id for d in summary.deliveries or [])

        with ctx.step(f"group L (latest) joins; then {m} more events"):
            records = consume_group(
                s.bootstrap_servers,
                topic,
                groups["latest"],
                "latest",
                stop=lambda rs: len(rs) >= m,
                timeout_s=90,
                on_assign=produce_more,
            )
            # whatever else arrives would be a record from before L joined
            extra = consume_group(
                s.bootstrap_servers,
                topic,
                groups["latest"],
                "latest",
                stop=lambda rs: False,
                timeout_s=3,
            )
        seen_l = {json.loads(r.value)["event_id"] for r in records + extra}
        ctx.check(
            "group L (latest): events read",
            f"{m} (only the later ones)",
            len(seen_l),
            seen_l == set(later) and len(records) + len(extra) == m,
        )
        ctx.details.update(n=n, m=m, index_documents=counts)
        plots.bars(
            ctx.plot_path("readers.png", "what each reader got"),
            f"{n} events on the topic, then {m} more",
            [
                "group A\nearliest",
                "group B\nearliest",
                "index pass 1",
                "index pass 2",
                "group L\nlatest",
            ],
            {"events / documents": [len(seen_a), len(seen_b), counts[0], counts[1], len(seen_l)]},
            xlabel="reader",
            ylabel="distinct events",
        )
