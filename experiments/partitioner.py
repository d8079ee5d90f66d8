"""Where records land: key hash, sticky batches for null keys, and a VIP partitioner."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from functools import partial

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from clickfan.events import encode_event
from clickfan.experiments import plots
from clickfan.experiments.framework import Context, Experiment
from clickfan.experiments.kafka_io import consumer, produce_clicks, producer, read_topic
from clickfan.experiments.offsets import GroupOffsets
from clickfan.generators.events import EventGenerator
from clickfan.generators.partitioners import partition_for_key

VIP_PARTITIONS, ALL_PARTITIONS = 8, 10  # the seed notes' example
COST_S = 0.005  # each consumer's work per record: 200 records/s per partition


def runs(partitions_in_send_order: list[int]) -> list[tuple[int, int]]:
    """(partition, length) of each run of consecutive records sent to one partition."""
    out: list[tuple[int, int]] = []
    for p in partitions_in_send_order:
        if out and out[-1][0] == p:
            out[-1] = (p, out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Partitioner(Experiment):
    name = "partitioner"
    title = "key hash, sticky null-key batches and a VIP partitioner"
    claim_ko = """
메시지 키가 있는 경우
  - hash(메시지키) => 파티션 번호 (동일키는 동일파티션에 들어감을 보장)
메시지 키가 없는 경우
  - 프로듀서에서 배치로 모을 수 있는 최대한의 레코드를 모아서 파티션으로 전달
  - 이때, 라운드 로빈 방식으로 파티션에 돌아가면서 데이터를 넣는다.
커스텀 파티셔너를 만들 수 있음
  - eg) VIP고객을 위해, 빠른 테이터 처리를 할 수 있다.
  - 10개 파티션중 8개에 VIP 데이터를 넣어, 우선순위큐 효과를 누릴 수 있음.
"""
    claim = (
        "With a key, the partition is hash(key) and a key always lands on the same partition. "
        "Without a key, the producer fills a batch for one partition, then moves on "
        "(sticky partitioning). A custom partitioner can reserve partitions for VIP customers "
        "(8 of 10), so their events are processed first when the consumers are busy."
    )
    method = f"""
1. **Hash**: N/3 click events keyed by user id on a 6-partition topic (`clickfan produce
   --keys user`); every record read back is compared with `murmur2(key) % 6`.
2. **Null keys**: N/3 events without a key at a steady rate (librdkafka's sticky
   partitioner, `linger.ms` 5, sticky window 10 ms); in send order, each run of records
   that went to the same partition is one sticky batch.
3. **VIP**: N/3 events at a steady rate to a {ALL_PARTITIONS}-partition topic with the VIP
   partitioner ({VIP_PARTITIONS} partitions reserved for VIP users, `--keys vip`). One
   consumer per partition, each spending {COST_S * 1000:.0f} ms per record (200 records/s):
   the two regular partitions get more than that and fall behind, the eight VIP
   partitions do not. End-to-end latency = time consumed - record timestamp.
"""
    default_events = 6000

    def run(self, ctx: Context) -> None:
        third = max(ctx.events // 3, 10)
        self._hash(ctx, third)
        self._null_keys(ctx, third)
        self._vip(ctx, third)

    # ------------------------------------------------------------------ hash
    def _hash(self, ctx: Context, count: int) -> None:
        s = ctx.settings
        topic = ctx.create_topic(f"{ctx.names.prefix}.hash", partitions=6)
        with ctx.step(f"hash: producing {count} events keyed by user"):
            summary = produce_clicks(s, topic, count, keys="user", record_deliveries=False)
        ctx.check(
            "hash: records acknowledged", count, summary.acknowledged, summary.acknowledged == count
        )
        ends = GroupOffsets(s.bootstrap_servers).log_end([(topic, p) for p in range(6)])
        records = read_topic(s.bootstrap_servers, topic, 6, {p: ends[(topic, p)] for p in range(6)})
        wrong = sum(1 for r in records if partition_for_key(r.key, 6) != r.partition)
        per_key: dict[bytes, set[int]] = {}
        for r in records:
            per_key.setdefault(r.key, set()).add(r.partition)
        ctx.check(
            "hash: records not on murmur2(key) % 6", 0, wrong, wrong == 0 and len(records) == count
        )
        ctx.check(
            "hash: keys seen on more than one partition",
            0,
            sum(1 for ps in per_key.values() if len(ps) > 1),
            all(len(ps) == 1 for ps in per_key.values()),
        )
        counts = Counter(r.partition for r in records)
        ctx.details["hash_records_per_partition"] = {str(p): counts[p] for p in range(6)}
        ctx.details["hash_keys"] = len(per_key)
        plots.bars(
            ctx.plot_path("hash-per-partition.png", "keyed records per partition (murmur2)"),
            f"{count} events keyed by user id ({len(per_key)} users): records per partition",
            [str(p) for p in range(6)],
            {"records": [counts[p] for p in range(6)]},
        )

    # ------------------------------------------------------------- null keys
    def _null_keys(self, ctx: Context, count: int) -> None:
        s = ctx.settings
        topic = ctx.create_topic(f"{ctx.names.prefix}.nokey", partitions=6)
        rate = 2000.0
        p = producer(
            s.bootstrap_servers,
            acks="all",
            **{"linger.ms": s.produce_linger_ms, "partitioner": "murmur2_random"},
        )
        generator = EventGenerator(11, rate=rate)
        placed: dict[int, int] = {}

        def delivered(seq: int, err, msg) -> None:  # noqa: ANN001
            if err is None:
                placed[seq] = msg.partition()

        with ctx.step(f"null keys: producing {count} events at {rate:.0f}/s without a key"):
            began = time.monotonic()
            for seq in range(count):
                due = began + seq / rate
                while (now := time.monotonic()) < due:
                    p.poll(min(due - now, 0.01))
                p.produce(
                    topic,
                    value=encode_event(generator.next_event()),
                    on_delivery=partial(delivered, seq),
                )
                p.poll(0)
            p.flush(30)
        ctx.check("null keys: records acknowledged", count, len(placed), len(placed) == count)
        order = [placed[i] for i in sorted(placed)]
        batches = runs(order)
        lengths = [n for _, n in batches]
        per_partition_batches = Counter(part for part, _ in batches)
        mean = statistics.mean(lengths) if lengths else 0.0
        ctx.check(
            "null keys: records per sticky batch (mean)",
            "> 1 (a batch per partition, not record-by-record round robin)",
            round(mean, 1),
            mean > 1.5,
        )
        ctx.check(
            "null keys: partitions that got batches",
            6,
            len(per_partition_batches),
            len(per_partition_batches) == 6,
        )
        ctx.details.update(
            null_key_batches=len(batches),
            null_key_records_per_batch_mean=round(mean, 2),
            null_key_records_per_batch_max=max(lengths, default=0),
            null_key_batches_per_partition={str(q): per_partition_batches[q] for q in range(6)},
            null_key_records_per_partition={
                str(q): sum(n for part, n in batches if part == q) for q in range(6)
            },
        )
        ctx.note(
            "librdkafka's sticky partitioner picks the next partition at random, not strictly "
            "round robin; over many batches every partition gets a share."
        )
        plots.bars(
            ctx.plot_path("null-key-batches.png", "null keys: sticky batches per partition"),
            f"{count} events without a key: sticky batches (mean {mean:.1f} records each)",
            [str(q) for q in range(6)],
            {
                "batches": [per_partition_batches[q] for q in range(6)],
                "records / 10": [sum(n for part, n in batches if part == q) / 10 for q in range(6)],
            },
            ylabel="count",
        )

    # -------------------------------------------------------------------- VIP
    def _vip(self, ctx: Context, count: int) -> None:
        s = ctx.settings
        topic = ctx.create_topic(f"{ctx.names.prefix}.vip", partitions=ALL_PARTITIONS)
        latencies: dict[bool, list[float]] = {True: [], False: []}
        by_partition: dict[bool, Counter[int]] = {True: Counter(), False: Counter()}
        lock = threading.Lock()
        done = threading.Event()
        total = [0]

        def consume(partition: int) -> None:
            c = consumer(s.bootstrap_servers, f"{ctx.names.prefix}.vip-reader")
            c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
            try:
                while not done.is_set():
                    msg = c.poll(0.2)
                    if msg is None or msg.error():
                        continue
                    time.sleep(COST_S)  # the work a saturated consumer does per record
                    latency = time.time() - msg.timestamp()[1] / 1000
                    vip = json.loads(msg.value())["is_vip"]
                    with lock:
                        latencies[vip].append(latency)
                        by_partition[vip][partition] += 1
                        total[0] += 1
                        if total[0] >= count:
                            done.set()
            finally:
                c.close()

        threads = [
            threading.Thread(target=consume, args=(p,), daemon=True) for p in range(ALL_PARTITIONS)
        ]
        for t in threads:
            t.start()
        rate = 600.0
        with ctx.step(f"VIP: producing {count} events at {rate:.0f}/s, consumers at 200/s each"):
            summary = produce_clicks(
                s,
                topic,
                count,
                keys="vip",
                rate=rate,
                record_deliveries=False,
                vip_partitions=VIP_PARTITIONS,
            )
            done.wait(timeout=max(60.0, count / 100))
            done.set()
            for t in threads:
                t.join(timeout=10)
        ctx.check(
            "VIP: records acknowledged", count, summary.acknowledged, summary.acknowledged == count
        )
        ctx.check("VIP: records consumed", count, total[0], total[0] == count)
        vip_total = sum(by_partition[True].values())
        on_reserved = sum(n for p, n in by_partition[True].items() if p < VIP_PARTITIONS)
        regular_on_reserved = sum(n for p, n in by_partition[False].items() if p < VIP_PARTITIONS)
        ctx.check(
            f"VIP: share of VIP events on the {VIP_PARTITIONS} reserved partitions",
            "100%",
            f"{on_reserved / vip_total:.1%} of {vip_total}" if vip_total else "no VIP events",
            vip_total > 0 and on_reserved == vip_total,
        )
        ctx.check(
            "VIP: regular events on reserved partitions",
            0,
            regular_on_reserved,
            regular_on_reserved == 0,
        )
        p50 = {vip: percentile(latencies[vip], 0.5) for vip in (True, False)}
        p95 = {vip: percentile(latencies[vip], 0.95) for vip in (True, False)}
        ctx.check(
            "VIP: median end-to-end latency, VIP vs regular (s)",
            "VIP lower",
            f"VIP {p50[True]:.3f} s, regular {p50[False]:.3f} s",
            p50[True] < p50[False],
        )
        ctx.details.update(
            vip_events=vip_total,
            regular_events=sum(by_partition[False].values()),
            vip_latency_p50_s=round(p50[True], 4),
            vip_latency_p95_s=round(p95[True], 4),
            regular_latency_p50_s=round(p50[False], 4),
            regular_latency_p95_s=round(p95[False], 4),
            vip_records_per_partition={
                str(p): by_partition[True][p] + by_partition[False][p]
                for p in range(ALL_PARTITIONS)
            },
        )
        plots.bars(
            ctx.plot_path("vip-per-partition.png", "VIP partitioner: records per partition"),
            f"VIP partitioner: partitions 0-{VIP_PARTITIONS - 1} reserved for VIP users",
            [str(p) for p in range(ALL_PARTITIONS)],
            {
                "VIP": [by_partition[True][p] for p in range(ALL_PARTITIONS)],
                "regular": [by_partition[False][p] for p in range(ALL_PARTITIONS)],
            },
        )
        plots.histogram(
            ctx.plot_path("vip-latency.png", "end-to-end latency, VIP vs regular"),
            "end-to-end latency while the regular lanes are saturated",
            {"VIP": latencies[True], "regular": latencies[False]},
            xlabel="seconds from produce to processed",
        )
