"""Partitions can be added, never removed; adding them moves keys to other partitions."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewPartitions

from clickfan.experiments import plots
from clickfan.experiments.framework import Context, Experiment
from clickfan.experiments.kafka_io import producer, read_topic
from clickfan.experiments.kafka_tools import run_kafka_tool
from clickfan.experiments.offsets import GroupOffsets
from clickfan.generators.partitioners import partition_for_key

BEFORE, AFTER = 6, 12
KEYS = 500


def _produce_era(ctx: Context, era: int, count: int, seq: Counter[str]) -> int:
    """Keyed records round the keys; each value carries the key's sequence number."""
    p = producer(
        ctx.settings.bootstrap_servers,
        acks="all",
        **{"enable.idempotence": True, "partitioner": "murmur2_random", "linger.ms": 5},
    )
    failed = []
    for i in range(count):
        key = f"user-{i % KEYS:04d}"
        seq[key] += 1
        value = json.dumps({"key": key, "seq": seq[key], "era": era}).encode()
        while True:
            try:
                p.produce(
                    ctx.names.topic,
                    key=key.encode(),
                    value=value,
                    on_delivery=lambda err, msg: failed.append(err) if err else None,
                )
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(60)
    return len(failed)


class Partitions(Experiment):
    name = "partitions"
    title = "adding partitions moves keys; removing partitions is impossible"
    claim_ko = """
파티션 확장
  - 목적 : 파티션을 늘려서 다수의 컨슈머에게 데이터 처리를 분산할 수 있다.
  - 주의 : 파티션을 늘리는건 가능하지만, 줄이는건 불가능 하다.
hash(메시지키) => 파티션 번호 (동일키는 동일파티션에 들어감을 보장)
키 단위로, 데이터의 순서를 보장한다.(파티션=큐 이므로)
"""
    claim = (
        "Partitions can be added to spread the work over more consumers, but never removed. "
        "A key always goes to the same partition (hash of the key), so order is kept per key "
        "- as long as the partition count does not change."
    )
    method = f"""
1. A topic with {BEFORE} partitions; N/2 records with {KEYS} user keys (round robin), each
   value carrying the key's sequence number; librdkafka's `murmur2_random` partitioner,
   which places keyed records as Java's default partitioner does.
2. The topic grows to {AFTER} partitions (`CreatePartitions`); N/2 more records, same keys.
3. Everything is read back. Per key: its partition before and after (measured), against
   `murmur2(key) % partitions` (predicted); per key and era, the sequence numbers in
   offset order.
4. Kafka is asked to shrink the topic back to {BEFORE} partitions with its own tool
   (`kafka-topics --alter --partitions {BEFORE}`); its error is quoted below.
"""
    default_events = 6000

    def run(self, ctx: Context) -> None:
        s = ctx.settings
        topic = ctx.create_topic(partitions=BEFORE)
        seq: Counter[str] = Counter()
        half = ctx.events // 2
        with ctx.step(f"producing {half} keyed records to {BEFORE} partitions"):
            failed = _produce_era(ctx, 1, half, seq)
        with ctx.step(f"adding partitions: {BEFORE} -> {AFTER}"):
            ctx.admin.create_partitions([NewPartitions(topic, AFTER)])[topic].result()
            ctx.wait_for_topic(topic, AFTER)
        with ctx.step(f"producing {ctx.events - half} more records to {AFTER} partitions"):
            failed += _produce_era(ctx, 2, ctx.events - half, seq)
        ctx.check("records failed to produce", 0, failed, failed == 0)

        offsets = GroupOffsets(s.bootstrap_servers)
        ends = offsets.log_end([(topic, p) for p in range(AFTER)])
        with ctx.step("reading everything back"):
            records = read_topic(
                s.bootstrap_servers, topic, AFTER, {p: ends[(topic, p)] for p in range(AFTER)}
            )
        ctx.check("records read back", ctx.events, len(records), len(records) == ctx.events)

        placed: dict[tuple[str, int], set[int]] = defaultdict(set)
        sequences: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        per_partition = {1: Counter(), 2: Counter()}
        wrong_placement = 0
        for r in records:
            v = json.loads(r.value)
            era, key = v["era"], v["key"]
            placed[(key, era)].add(r.partition)
            sequences[(key, era)].append((r.offset, v["seq"]))
            per_partition[era][r.partition] += 1
            count = BEFORE if era == 1 else AFTER
            if partition_for_key(key.encode(), count) != r.partition:
                wrong_placement += 1
        keys = sorted({k for k, _ in placed})
        one_partition = all(len(placed[(k, e)]) == 1 for k in keys for e in (1, 2))
        ctx.check(
            "each key on exactly one partition within an era", True, one_partition, one_partition
        )
        ctx.check(
            "records where partition != murmur2(key) % partitions",
            0,
            wrong_placement,
            wrong_placement == 0,
        )
        moved = [k for k in keys if placed[(k, 1)] != placed[(k, 2)]]
        predicted = [
            k
            for k in keys
            if partition_for_key(k.encode(), BEFORE) != partition_for_key(k.encode(), AFTER)
        ]
        measured_share = len(moved) / len(keys)
        predicted_share = len(predicted) / len(keys)
        ctx.check(
            f"share of keys that moved partition ({BEFORE} -> {AFTER})",
            f"{predicted_share:.1%} (murmur2 prediction; ~50% in theory)",
            f"{measured_share:.1%} ({len(moved)} of {len(keys)} keys)",
            set(moved) == set(predicted),
            "the moved keys are exactly the predicted ones"
            if set(moved) == set(predicted)
            else f"moved but not predicted: {sorted(set(moved) - set(predicted))[:5]}",
        )
        out_of_order = sum(
            1
            for seqs in sequences.values()
            for (_, a), (_, b) in zip(sorted(seqs), sorted(seqs)[1:], strict=False)
            if b <= a
        )
        ctx.check(
            "per-key sequence out of order within an era (in offset order)",
            0,
            out_of_order,
            out_of_order == 0,
        )
        ctx.details.update(
            keys=len(keys),
            moved_keys=len(moved),
            predicted_moved_keys=len(predicted),
            records_per_partition_before={str(p): n for p, n in sorted(per_partition[1].items())},
            records_per_partition_after={str(p): n for p, n in sorted(per_partition[2].items())},
        )
        ctx.note(
            "Across the resize a moved key's records sit in two partitions, so a consumer group "
            "can read its newer records before its older ones: per-key order holds within an "
            "era, not across the change."
        )

        with ctx.step(f"asking Kafka to shrink {topic} to {BEFORE} partitions"):
            tool = run_kafka_tool(
                s,
                "kafka-topics",
                [
                    "--bootstrap-server",
                    s.bootstrap_servers,
                    "--alter",
                    "--topic",
                    topic,
                    "--partitions",
                    str(BEFORE),
                ],
            )
            try:
                ctx.admin.create_partitions([NewPartitions(topic, BEFORE)])[topic].result()
                admin_error = "none: the request was accepted"
            except KafkaException as exc:
                admin_error = f"{exc.args[0].name()}: {exc.args[0].str()}"
        error_lines = [
            line for line in (tool.stdout + tool.stderr).splitlines() if "rror" in line
        ] or (tool.stdout + tool.stderr).strip().splitlines()[-3:]
        still = len(ctx.admin.list_topics(topic, timeout=10).topics[topic].partitions)
        ctx.check(
            "kafka-topics --alter to fewer partitions",
            "refused with Kafka's error",
            f"exit code {tool.returncode}: {error_lines[0] if error_lines else '(no output)'}",
            tool.returncode != 0 and "INVALID_PARTITIONS" in admin_error,
        )
        ctx.check("partitions after the shrink attempt", AFTER, still, still == AFTER)
        ctx.section(
            "Kafka's answer to a shrink",
            f"```\n$ {tool.command}\n" + "\n".join(error_lines) + "\n```\n\n"
            f"The admin API (CreatePartitions to {BEFORE}) answers: `{admin_error}`",
        )
        ctx.details["shrink_error"] = admin_error

        labels = [str(p) for p in range(AFTER)]
        plots.bars(
            ctx.plot_path("records-per-partition.png", "records per partition, before and after"),
            f"records per partition: {BEFORE} partitions, then {AFTER}",
            labels,
            {
                f"era 1 ({BEFORE} partitions)": [per_partition[1][p] for p in range(AFTER)],
                f"era 2 ({AFTER} partitions)": [per_partition[2][p] for p in range(AFTER)],
            },
        )
        flows = Counter((next(iter(placed[(k, 1)])), next(iter(placed[(k, 2)]))) for k in keys)
        stayed = [flows[(p, p)] for p in range(BEFORE)]
        went = [sum(n for (a, b), n in flows.items() if a == p and b != p) for p in range(BEFORE)]
        plots.bars(
            ctx.plot_path("keys-moved.png", "keys of each old partition: stayed or moved"),
            "where the keys of each old partition went",
            [str(p) for p in range(BEFORE)],
            {"stayed": stayed, f"moved to p+{BEFORE}": went},
            ylabel="keys",
        )
