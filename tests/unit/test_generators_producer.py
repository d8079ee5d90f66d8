"""ClickProducer and `clickfan produce` against librdkafka's in-process mock cluster.

No Kafka here: ``test.mock.num.brokers`` makes librdkafka answer metadata,
produce and fetch requests inside this process (topics are created on first
use with 4 partitions). The real brokers are the integration suite's job.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from clickfan.errors import ClickfanError
from clickfan.events import InvalidEvent, decode_event
from clickfan.generators.bad_records import BAD_KIND_HEADER
from clickfan.generators.commands import produce
from clickfan.generators.partitioners import partition_for_key
from clickfan.generators.producer import (
    MAX_RATE,
    ClickProducer,
    Progress,
    StopSignal,
    catch_up,
)
from clickfan.settings import Settings


class MockCluster:
    def __init__(self) -> None:
        # the cluster lives as long as this client does
        self._owner = Producer({"test.mock.num.brokers": 3})
        brokers = self._owner.list_topics(timeout=10).brokers.values()
        self.bootstrap_servers = ",".join(f"{b.host}:{b.port}" for b in brokers)

    def new_topic(self) -> tuple[str, int]:
        name = f"gen-test-{uuid.uuid4().hex[:8]}"
        metadata = self._owner.list_topics(name, timeout=10)  # creates it
        return name, len(metadata.topics[name].partitions)

    def read_all(self, topic: str, partitions: int, expected: int) -> list[Message]:
        consumer = Consumer({"bootstrap.servers": self.bootstrap_servers, "group.id": topic})
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        records: list[Message] = []
        while len(records) < expected:
            # consume() waits for all it asks for: never ask for more than is due
            batch = consumer.consume(min(1000, expected - len(records)), timeout=10)
            if not batch:
                break
            records += [m for m in batch if m.error() is None]
        consumer.close()
        return records


@pytest.fixture(scope="module")
def cluster() -> Iterator[MockCluster]:
    yield MockCluster()


def _settings(topic: str, **overrides: Any) -> Settings:
    return Settings().with_overrides(topic=topic, produce_users=300, **overrides)


def test_every_record_is_acknowledged_once(cluster: MockCluster) -> None:
    topic, partitions = cluster.new_topic()
    producer = ClickProducer(
        _settings(topic, bad_fraction=0.1, produce_seed=5),
        bootstrap_servers=cluster.bootstrap_servers,
    )
    summary = producer.run(count=3000, record_deliveries=True)

    assert (summary.sent, summary.acknowledged, summary.failed, summary.pending) == (
        3000,
        3000,
        0,
        0,
    )
    assert summary.ok and summary.partitions == partitions and summary.seed == 5
    deliveries = summary.deliveries
    assert deliveries is not None and len(deliveries) == 3000
    bad = Counter(d.bad_kind for d in deliveries if d.bad_kind)
    assert bad == Counter(summary.bad_by_kind)
    assert 150 < sum(bad.values()) < 450  # about 10 %
    good_ids = [d.event_id for d in deliveries if d.bad_kind is None]
    assert len(good_ids) == len(set(good_ids)) == 3000 - sum(bad.values())
    # per partition, the offsets are exactly 0..n-1: no gap, no duplicate
    offsets: dict[int, list[int]] = defaultdict(list)
    for d in deliveries:
        offsets[d.partition].append(d.offset)
    for got in offsets.values():
        assert sorted(got) == list(range(len(got)))


def test_what_lands_in_kafka_is_what_was_reported(cluster: MockCluster) -> None:
    topic, partitions = cluster.new_topic()
    summary = ClickProducer(
        _settings(topic, bad_fraction=0.2), bootstrap_servers=cluster.bootstrap_servers
    ).run(count=1500, record_deliveries=True)
    records = cluster.read_all(topic, partitions, 1500)
    assert len(records) == 1500

    reported = {(d.partition, d.offset): d for d in summary.deliveries or []}
    last_time: dict[bytes, str] = {}
    for record in sorted(records, key=lambda r: (r.partition(), r.offset())):
        delivery = reported[(record.partition(), record.offset())]
        key = record.key()
        assert record.partition() == partition_for_key(key, partitions)
        headers = dict(record.headers() or [])
        if delivery.bad_kind is None:
            assert BAD_KIND_HEADER not in headers
            event = decode_event(record.value(), Settings().max_event_bytes)
            assert event["event_id"] == delivery.event_id
            assert key == event["user_id"].encode()
            # one user's events sit in one partition in production (= event time) order
            assert event["event_time"] >= last_time.get(key, "")
            last_time[key] = event["event_time"]
        else:
            assert headers[BAD_KIND_HEADER] == delivery.bad_kind.encode()
            with pytest.raises(InvalidEvent) as caught:
                decode_event(record.value(), Settings().max_event_bytes)
            assert caught.value.reason == delivery.bad_kind


def test_vip_keys_use_the_reserved_partitions(cluster: MockCluster) -> None:
    topic, partitions = cluster.new_topic()
    summary = ClickProducer(
        _settings(topic, produce_keys="vip", vip_partitions=partitions - 1),
        bootstrap_servers=cluster.bootstrap_servers,
    ).run(count=1000)
    assert summary.ok
    seen: dict[bool, set[int]] = defaultdict(set)
    for record in cluster.read_all(topic, partitions, 1000):
        seen[json.loads(record.value())["is_vip"]].add(record.partition())
    assert seen[True] and seen[True] <= set(range(partitions - 1))
    assert seen[False] == {partitions - 1}


def test_null_keys_with_keys_none(cluster: MockCluster) -> None:
    topic, partitions = cluster.new_topic()
    summary = ClickProducer(
        _settings(topic, produce_keys="none"), bootstrap_servers=cluster.bootstrap_servers
    ).run(count=300)
    assert summary.ok
    assert all(r.key() is None for r in cluster.read_all(topic, partitions, 300))


def test_acks_below_all_switch_idempotence_off_with_a_note(cluster: MockCluster) -> None:
    topic, _ = cluster.new_topic()
    producer = ClickProducer(_settings(topic, produce_acks="1"), bootstrap_servers="unused:1")
    assert producer.idempotence is False
    assert any("idempotence switched off" in note for note in producer.notes)
    assert ClickProducer(_settings(topic), bootstrap_servers="unused:1").idempotence is True


def test_acks_zero_gives_no_offsets(cluster: MockCluster) -> None:
    topic, _ = cluster.new_topic()
    summary = ClickProducer(
        _settings(topic, produce_acks="0"), bootstrap_servers=cluster.bootstrap_servers
    ).run(count=200, record_deliveries=True)
    assert summary.sent == summary.acknowledged == 200
    assert not summary.idempotence
    assert {d.offset for d in summary.deliveries or []} == {None}


def test_a_stop_request_ends_the_run_with_everything_flushed(cluster: MockCluster) -> None:
    topic, _ = cluster.new_topic()
    stop = StopSignal()

    def on_progress(p: Progress) -> None:
        if p.sent >= 500:
            stop.request()

    summary = ClickProducer(
        _settings(topic, produce_rate=5000.0), bootstrap_servers=cluster.bootstrap_servers
    ).run(progress=on_progress, stop=stop)  # no count, no duration: until stopped
    assert summary.interrupted
    assert summary.sent >= 500
    assert summary.acknowledged == summary.sent and summary.ok


def test_duration_ends_the_run(cluster: MockCluster) -> None:
    topic, _ = cluster.new_topic()
    summary = ClickProducer(
        _settings(topic, produce_rate=2000.0), bootstrap_servers=cluster.bootstrap_servers
    ).run(duration_s=0.3)
    assert not summary.interrupted
    assert summary.sent > 0 and summary.ok


def test_brokers_lost_mid_run_fail_loudly_and_nothing_goes_unaccounted() -> None:
    lost = MockCluster()  # its own cluster: this test takes it away
    topic, _ = lost.new_topic()
    bootstrap = lost.bootstrap_servers
    state: dict[str, MockCluster | None] = {"cluster": lost}
    del lost

    def take_the_brokers_away(p: Progress) -> None:
        if p.sent >= 200 and state["cluster"] is not None:
            state["cluster"] = None
            gc.collect()  # destroys the owning client and with it the mock brokers

    settings = _settings(topic, produce_rate=2000.0, produce_delivery_timeout_ms=2000)
    summary = ClickProducer(settings, bootstrap_servers=bootstrap).run(
        count=1000, progress=take_the_brokers_away
    )
    assert state["cluster"] is None
    assert summary.sent == 1000
    assert summary.failed > 0 and not summary.ok
    assert summary.acknowledged + summary.failed == summary.sent  # none silently dropped
    assert summary.failed_by_error == {"_MSG_TIMED_OUT": summary.failed}
    assert any("not acknowledged within 2000 ms" in note for note in summary.notes)


def test_unreachable_brokers_give_a_clear_error() -> None:
    settings = _settings("click-logs", produce_metadata_timeout_s=1.0)
    with pytest.raises(ClickfanError) as caught:
        ClickProducer(settings, bootstrap_servers="127.0.0.1:1").run(count=1)
    assert "cannot reach Kafka at 127.0.0.1:1" in str(caught.value)
    assert "clickfan up" in str(caught.value)


def test_a_missing_topic_is_not_created(cluster: MockCluster) -> None:
    producer = ClickProducer(
        _settings("gen-test-never-created"), bootstrap_servers=cluster.bootstrap_servers
    )
    with pytest.raises(ClickfanError, match="does not exist"):
        producer.run(count=1)


def test_vip_needs_a_partition_for_everybody_else(cluster: MockCluster) -> None:
    topic, partitions = cluster.new_topic()
    producer = ClickProducer(
        _settings(topic, produce_keys="vip", vip_partitions=partitions),
        bootstrap_servers=cluster.bootstrap_servers,
    )
    with pytest.raises(ClickfanError, match="at least one must stay"):
        producer.run(count=1)


@pytest.mark.parametrize(
    "overrides",
    [
        {"produce_acks": "2"},
        {"produce_compression": "brotli"},
        {"produce_keys": "session"},
        {"bad_fraction": 1.5},
        {"produce_rate": -1.0},
    ],
)
def test_bad_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ClickfanError):
        ClickProducer(_settings("t", **overrides))


def test_cli_prints_the_summary_as_json(cluster: MockCluster) -> None:
    topic, _ = cluster.new_topic()
    args = ["--count", "250", "--topic", topic, "--bootstrap-servers", cluster.bootstrap_servers]
    result = CliRunner().invoke(produce, [*args, "--json", "--seed", "3", "--bad-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["sent"] == summary["acknowledged"] == 250
    assert summary["ok"] is True and summary["seed"] == 3
    assert sum(summary["bad_by_kind"].values()) > 0


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--acks", "2"), ("--bad-fraction", "1.5"), ("--keys", "session"), ("--count", "0")],
)
def test_cli_refuses_bad_flags(flag: str, value: str) -> None:
    result = CliRunner().invoke(produce, [flag, value])
    assert result.exit_code == 2
    assert flag in result.output


@pytest.mark.parametrize("rate", ["nan", "inf", "-inf", "1e9", "-1", "fast"])
def test_cli_refuses_a_rate_that_is_not_a_bounded_number(rate: str) -> None:
    result = CliRunner().invoke(produce, ["--rate", rate])
    assert result.exit_code == 2
    assert "--rate" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), 1e9])
def test_a_rate_setting_that_is_not_a_bounded_number_is_refused(rate: float) -> None:
    with pytest.raises(ClickfanError) as caught:
        ClickProducer(_settings("t", produce_rate=rate))
    assert caught.value.exit_code == 2
    assert f"{MAX_RATE:,.0f}" in str(caught.value)


@pytest.mark.parametrize(
    ("rate", "stall_s", "batch"),
    [
        (1.0, 0.0, 1),
        (1.0, 60.0, 1),  # a minute behind at 1/s: no burst of 60
        (100.0, 60.0, 11),  # 0.1 s of backlog made up, not 60 s
        (MAX_RATE, 0.0, 1),
        (MAX_RATE, 60.0, 1000),  # 0.1 s at the highest rate is 100,000: one batch is 1,000
    ],
)
def test_catch_up_after_a_stall_is_bounded(rate: float, stall_s: float, batch: int) -> None:
    now = 1000.0
    due, next_at = catch_up(now, now - stall_s, 1.0 / rate)
    assert due == batch
    assert next_at <= now + 1.0 / rate  # never sends ahead of its time by more than one record


def test_the_highest_rate_counts_exactly(cluster: MockCluster) -> None:
    topic, partitions = cluster.new_topic()
    summary = ClickProducer(
        _settings(topic, produce_rate=MAX_RATE), bootstrap_servers=cluster.bootstrap_servers
    ).run(count=2500)
    assert (summary.sent, summary.acknowledged, summary.ok) == (2500, 2500, True)
    assert len(cluster.read_all(topic, partitions, 2500)) == 2500


def test_sigterm_stops_like_ctrl_c_with_the_summary(cluster: MockCluster) -> None:
    topic, partitions = cluster.new_topic()
    default = signal.getsignal(signal.SIGTERM)
    watermarks = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": topic})

    def on_topic() -> int:
        return sum(
            watermarks.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
            for p in range(partitions)
        )

    def terminate_once_producing() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            signal.getsignal(signal.SIGTERM) != default and on_topic() > 0
        ):
            time.sleep(0.05)
        if signal.getsignal(signal.SIGTERM) != default:  # never kill the test run itself
            os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=terminate_once_producing)
    sender.start()
    args = ["--rate", "2000", "--topic", topic, "--bootstrap-servers", cluster.bootstrap_servers]
    result = CliRunner().invoke(produce, [*args, "--json"])  # no count: until stopped
    sender.join()
    watermarks.close()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["interrupted"] is True and summary["stopped_by"] == "SIGTERM"
    assert summary["sent"] == summary["acknowledged"] > 0 and summary["ok"] is True
    assert len(cluster.read_all(topic, partitions, summary["sent"])) == summary["acknowledged"]
    assert signal.getsignal(signal.SIGTERM) == default  # put back
