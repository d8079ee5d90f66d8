"""How fast can Python read the topic at all? The floor under the consume-path target.

    python -m benchmarks.client_ceiling [--events 30000] [--rounds 3]

Issue 12 asks each worker's consume path for >= 0.5x kafka-consumer-perf-test. This
reads one topic of generated click events, median of alternating rounds, with:

- kafka-consumer-perf-test (the reference: a Java consumer that only counts);
- aiokafka, the client under the workers (through Faust): getmany in a loop, records
  counted and nothing else: what a Python worker on this client cannot beat;
- the same, plus decoding and validating each value (clickfan.events.decode_event),
  the least any worker must do with a record;
- confluent-kafka (librdkafka): consume(1000) in a loop, counted: another client's
  ceiling in Python.

Each is printed as records/s and as a ratio to the perf test of the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.suite import consumer_perf_test
from clickfan.events import InvalidEvent, decode_event
from clickfan.generators.producer import ClickProducer
from clickfan.settings import Settings, load

READERS = ("kafka-consumer-perf-test", "aiokafka", "aiokafka + decode_event", "confluent-kafka")


def fill_topic(settings: Settings, topic: str, events: int) -> None:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    new = NewTopic(topic, settings.partitions, settings.replication_factor)
    admin.create_topics([new])[topic].result()
    summary = ClickProducer(replace(settings, topic=topic, produce_rate=0.0)).run(count=events)
    if summary.acknowledged != events:
        raise SystemExit(f"could not fill {topic}: {summary.to_dict()}")


async def _aiokafka(settings: Settings, topic: str, events: int, decode: bool) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        enable_auto_commit=False,
        max_partition_fetch_bytes=1 << 20,  # Faust's default for the workers
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        while seen < events:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in fetched.values():
                seen += len(records)
                if decode:
                    for record in records:
                        try:
                            decode_event(record.value, settings.max_event_bytes)
                        except InvalidEvent:
                            pass
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _confluent(settings: Settings, topic: str, events: int) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"ceiling-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([ConfluentPartition(topic, p, 0) for p in range(settings.partitions)])
    seen = 0
    started = time.perf_counter()
    while seen < events:
        seen += sum(1 for m in consumer.consume(1000, 1.0) if not m.error())
    rate = seen / (time.perf_counter() - started)
    consumer.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()
    settings = load()
    topic = f"bench-ceiling-{uuid.uuid4().hex[:8]}.click-logs"
    fill_topic(settings, topic, args.events)
    run: dict[str, Callable[[int], float]] = {
        READERS[0]: lambda r: consumer_perf_test(settings, topic, args.events, f"{topic}.perf-{r}"),
        READERS[1]: lambda r: asyncio.run(_aiokafka(settings, topic, args.events, False)),
        READERS[2]: lambda r: asyncio.run(_aiokafka(settings, topic, args.events, True)),
        READERS[3]: lambda r: _confluent(settings, topic, args.events),
    }
    rates: dict[str, list[float]] = {name: [] for name in READERS}
    ratios: dict[str, list[float]] = {name: [] for name in READERS[1:]}
    for r in range(args.rounds):
        order = READERS if r % 2 == 0 else READERS[::-1]
        got = {name: run[name](r) for name in order}
        for name, rate in got.items():
            rates[name].append(rate)
            if name != READERS[0]:
                ratios[name].append(rate / got[READERS[0]])
        print(f"round {r + 1}: " + ", ".join(f"{n} {got[n]:,.0f}/s" for n in READERS))
    AdminClient({"bootstrap.servers": settings.bootstrap_servers}).delete_topics([topic])
    print(f"\n{args.events} events, median of {args.rounds} rounds:")
    print(f"{'reader':<28}{'records/s':>12}{'x perf-test':>14}")
    report = {"events": args.events, "rounds": args.rounds, "readers": {}}
    for name in READERS:
        rate = statistics.median(rates[name])
        ratio = statistics.median(ratios[name]) if name in ratios else 1.0
        report["readers"][name] = {"rates": rates[name], "median": rate, "ratio": ratio}
        print(f"{name:<28}{rate:>12,.0f}{ratio:>14.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"client-ceiling-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
