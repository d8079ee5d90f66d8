"""`clickfan produce` against Kafka's own kafka-producer-perf-test, in the same run.

    python -m benchmarks.produce [--records 200000] [--acks all] [--compression none]

Both write the same number of records of the same size (the mean size of a
generated click event) to the same fresh topic (6 partitions, RF 3,
min.insync.replicas 2) with the same acks, compression, linger and batch size,
as fast as they can. Prints records/s of each and the ratio (target >= 0.5).
The perf tool's payload is random letters, clickfan's is JSON: with
compression the two compress differently, so the default compares without.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from confluent_kafka.admin import NewTopic

from clickfan.compose.native.stack import admin_client
from clickfan.events import encode_event
from clickfan.generators.events import EventGenerator
from clickfan.generators.producer import ClickProducer
from clickfan.settings import load

CLICKFAN = str(Path(sys.executable).with_name("clickfan"))


def mean_event_size(samples: int = 5000) -> int:
    generator = EventGenerator(1, rate=2000)
    return round(sum(len(encode_event(generator.next_event())) for _ in range(samples)) / samples)


def perf_test(settings, topic: str, records: int, size: int, acks: str, compression: str) -> float:
    props = [
        f"bootstrap.servers={settings.bootstrap_servers}",
        f"acks={acks}",
        f"compression.type={compression}",
        f"linger.ms={settings.produce_linger_ms}",
        f"batch.size={settings.produce_batch_size}",
        f"enable.idempotence={'true' if acks == 'all' else 'false'}",
    ]
    result = subprocess.run(
        [
            CLICKFAN,
            "kafka",
            "kafka-producer-perf-test",
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--record-size",
            str(size),
            "--throughput",
            "-1",
            "--producer-props",
            *props,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    final = [ln for ln in result.stdout.splitlines() if "records sent" in ln]
    if result.returncode != 0 or not final:
        sys.exit(f"kafka-producer-perf-test failed:\n{result.stdout}\n{result.stderr}")
    print(f"  perf-test: {final[-1]}")
    return float(re.search(r"([\d.]+) records/sec", final[-1]).group(1))


def clickfan_produce(settings, topic: str, records: int, acks: str, compression: str) -> float:
    bench = replace(
        settings,
        topic=topic,
        produce_rate=0.0,
        produce_acks=acks,
        produce_compression=compression,
        produce_idempotence=acks == "all",
    )
    summary = ClickProducer(bench).run(count=records)
    if summary.acknowledged != records:
        sys.exit(f"clickfan produce lost records: {json.dumps(summary.to_dict())}")
    print(f"  clickfan:  {summary.acknowledged} acknowledged in {summary.elapsed_s:.1f} s")
    return summary.rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--acks", choices=("0", "1", "all"), default="all")
    parser.add_argument("--compression", default="none")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the two this often")
    args = parser.parse_args()

    settings = load()
    size = mean_event_size()
    topic = f"bench-produce-{int(time.time())}"
    admin = admin_client(settings.bootstrap_servers)
    new = NewTopic(
        topic,
        settings.partitions,
        settings.replication_factor,
        config={"min.insync.replicas": str(settings.min_insync_replicas)},
    )
    admin.create_topics([new])[topic].result()
    print(
        f"{args.records} records of {size} bytes to {topic}, acks={args.acks}, "
        f"compression={args.compression}"
    )
    try:
        reference, ours = [], []
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}/{args.rounds}")
            reference.append(
                perf_test(settings, topic, args.records, size, args.acks, args.compression)
            )
            ours.append(
                clickfan_produce(settings, topic, args.records, args.acks, args.compression)
            )
    finally:
        admin.delete_topics([topic])
    best_ref, best_ours = max(reference), max(ours)
    print(f"kafka-producer-perf-test: {best_ref:,.0f} records/s (best of {args.rounds})")
    print(f"clickfan produce:         {best_ours:,.0f} records/s (best of {args.rounds})")
    print(f"ratio: {best_ours / best_ref:.2f} (target >= 0.5)")
    print(
        json.dumps(
            {
                "record_size": size,
                "acks": args.acks,
                "compression": args.compression,
                "perf_test_rps": reference,
                "clickfan_rps": ours,
                "ratio": best_ours / best_ref,
            }
        )
    )


if __name__ == "__main__":
    main()
