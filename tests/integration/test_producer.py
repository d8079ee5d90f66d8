"""`clickfan produce` on the real brokers: key placement, order, and a broker lost mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections import defaultdict
from dataclasses import replace

from confluent_kafka import Consumer, TopicPartition

from clickfan.compose.native import stack as native_stack
from clickfan.generators.partitioners import partition_for_key
from clickfan.generators.producer import ClickProducer, Progress
from clickfan.settings import Settings
from tests.support import CLICKFAN, clickfan, read_topic, wait_for


def _producer_settings(stack: Settings, names, **overrides) -> Settings:
    return replace(stack, topic=names.topic, produce_seed=7, **overrides)


def test_one_users_events_stay_in_one_partition_in_production_order(stack, names) -> None:
    summary = ClickProducer(_producer_settings(stack, names, produce_keys="user")).run(count=4000)
    assert summary.acknowledged == 4000 and summary.failed == 0

    by_user: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for record in read_topic(stack.bootstrap_servers, names.topic):
        event = json.loads(record.value)
        assert record.key.decode() == event["user_id"]
        by_user[event["user_id"]].append((record.partition, record.offset, event["event_time"]))
    assert sum(len(v) for v in by_user.values()) == 4000

    users_with_several = 0
    for user, events in by_user.items():
        assert len({partition for partition, _, _ in events}) == 1, user
        # events are generated in event-time order: the log must keep that order per key
        times_by_offset = [t for _, _, t in sorted(events, key=lambda e: e[1])]
        assert times_by_offset == sorted(times_by_offset), user
        users_with_several += len(events) > 1
    assert users_with_several > 100  # the check above had something to compare


def test_key_placement_equals_the_java_clients(stack, names) -> None:
    keys = [f"user-{i:05d}" for i in range(150)] + ["", "é", "사용자-42", "a|b", "x" * 300]
    keys = [k for k in keys if "|" not in k]  # the console producer splits on the separator
    lines = "".join(f"{key}|{i}\n" for i, key in enumerate(keys))
    java = clickfan(
        "kafka",
        "kafka-console-producer",
        "--bootstrap-server",
        stack.bootstrap_servers,
        "--topic",
        names.topic,
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=|",
        input=lines,
    )
    assert java.returncode == 0, java.stderr
    # and clickfan's own producer, keyed by user id, on the same topic
    summary = ClickProducer(_producer_settings(stack, names, produce_keys="user")).run(count=500)
    assert summary.acknowledged == 500

    records = read_topic(stack.bootstrap_servers, names.topic)
    assert len(records) == len(keys) + 500
    mismatches = [
        (r.key, r.partition, partition_for_key(r.key, stack.partitions))
        for r in records
        if r.partition != partition_for_key(r.key, stack.partitions)
    ]
    assert not mismatches
    java_keys = {r.key.decode() for r in records if not r.value.startswith(b"{")}
    assert java_keys == set(keys)


def test_one_broker_killed_during_acks_all_production_loses_nothing(stack, names) -> None:
    settings = _producer_settings(stack, names, produce_rate=2000.0, produce_acks="all")
    producer = ClickProducer(settings)
    under_way = threading.Event()
    result = {}

    def produce() -> None:
        def progress(p: Progress) -> None:
            if p.acknowledged >= 2000:
                under_way.set()

        result["summary"] = producer.run(count=12000, record_deliveries=True, progress=progress)

    worker = threading.Thread(target=produce)
    worker.start()
    assert under_way.wait(120), "the producer did not get going"
    victim = next(s for s in native_stack.status(stack)[0] if s.name == "kafka-2")
    os.kill(victim.pid, signal.SIGKILL)
    try:
        worker.join(timeout=300)
        assert not worker.is_alive(), "the producer did not finish"
    finally:
        started = clickfan("start", "kafka-2")
        assert started.returncode == 0, started.stderr

    summary = result["summary"]
    assert summary.failed == 0, summary.to_dict()
    assert summary.acknowledged == 12000
    acknowledged = {d.event_id for d in summary.deliveries}
    records = read_topic(stack.bootstrap_servers, names.topic)
    on_topic = [json.loads(r.value)["event_id"] for r in records]
    assert set(on_topic) == acknowledged
    assert len(on_topic) == len(acknowledged)  # idempotence: no duplicates from retries


def test_sigterm_mid_run_flushes_and_prints_the_summary(stack, names) -> None:
    producer = subprocess.Popen(
        [CLICKFAN, "produce", "--rate", "1000", "--topic", names.topic, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watermarks = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": names.prefix})
    try:
        wait_for(
            "the producer's first records on the topic",
            lambda: (
                producer.poll() is not None
                or sum(
                    watermarks.get_watermark_offsets(TopicPartition(names.topic, p), timeout=10)[1]
                    for p in range(stack.partitions)
                )
                >= 500
            ),
            timeout=120,
        )
        assert producer.poll() is None, producer.communicate()
        producer.send_signal(signal.SIGTERM)
        stdout, stderr = producer.communicate(timeout=120)
    finally:
        watermarks.close()
        if producer.poll() is None:
            producer.kill()
    assert producer.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "stopping (SIGTERM)" in stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] is True and summary["stopped_by"] == "SIGTERM"
    assert summary["ok"] is True and summary["pending"] == 0
    assert summary["sent"] == summary["acknowledged"] >= 500
    assert len(read_topic(stack.bootstrap_servers, names.topic)) == summary["acknowledged"]
