"""Reading and writing the experiments' topics with confluent_kafka directly."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from clickfan import kafka_client
from clickfan.errors import ClickfanError

_quiet = logging.getLogger(__name__)
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    received_s: float  # time.time() when the consumer got it


def producer(bootstrap: str, **config: object) -> Producer:
    return Producer({**kafka_client.confluent(bootstrap), "logger": _quiet, **config})


def consumer(bootstrap: str, group: str, **config: object) -> Consumer:
    return Consumer(
        {
            **kafka_client.confluent(bootstrap),
            "group.id": group,
            "enable.auto.commit": False,
            "logger": _quiet,
            **config,
        }
    )


def _record(msg) -> Record:  # noqa: ANN001 - confluent_kafka.Message
    return Record(
        msg.partition(), msg.offset(), msg.key(), msg.value(), msg.timestamp()[1], time.time()
    )


def read_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    until: dict[int, int],
    timeout_s: float = 60,
    start: dict[int, int] | None = None,
) -> list[Record]:
    """Every record of the topic from ``start`` (default: the log start) up to ``until``.

    No consumer group is joined or committed: a plain reader, assigned to all
    partitions. ``until`` is the log end offset per partition.
    """
    c = consumer(bootstrap, "clickfan-experiment-reader", **{"auto.offset.reset": "earliest"})
    try:
        c.assign(
            [
                TopicPartition(topic, p, (start or {}).get(p, OFFSET_BEGINNING))
                for p in range(partitions)
            ]
        )
        records: list[Record] = []
        pending = {p for p in range(partitions) if until.get(p, 0) > (start or {}).get(p, 0)}
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for msg in c.consume(1000, 0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise ClickfanError(f"reading {topic}: {msg.error().str()}")
                records.append(_record(msg))
                if msg.offset() + 1 >= until.get(msg.partition(), 0):
                    pending.discard(msg.partition())
        return records
    finally:
        c.close()


def consume_group(
    bootstrap: str,
    topic: str,
    group: str,
    reset: str,
    stop: Callable[[list[Record]], bool],
    timeout_s: float = 60,
    on_assign: Callable[[], None] | None = None,
) -> list[Record]:
    """Join ``group`` (auto.offset.reset=``reset``) and read until ``stop(records)``, committing."""
    assigned = []

    def assign_cb(c: Consumer, partitions: list[TopicPartition]) -> None:
        assigned.extend(partitions)

    fetch_states: dict[int, tuple[str, int]] = {}

    def stats_cb(text: str) -> None:
        # librdkafka's statistics say when a partition's start offset is resolved
        for p, st in (
            json.loads(text).get("topics", {}).get(topic, {}).get("partitions", {}).items()
        ):
            if p != "-1":
                fetch_states[int(p)] = (st.get("fetch_state", ""), st.get("next_offset", -1))

    c = consumer(
        bootstrap,
        group,
        **{"auto.offset.reset": reset, "statistics.interval.ms": 100, "stats_cb": stats_cb},
    )
    records: list[Record] = []
    try:
        c.subscribe([topic], on_assign=assign_cb)
        deadline = time.monotonic() + timeout_s
        called = False
        while time.monotonic() < deadline:
            for msg in c.consume(500, 0.3):
                if msg.error():
                    continue
                records.append(_record(msg))
            if assigned and not called and _started(fetch_states, assigned):
                # the start offsets are fixed now: what is produced next is after them
                called = True
                if on_assign is not None:
                    on_assign()
            if called and stop(records):
                break
        if records:
            c.commit(asynchronous=False)
        return records
    finally:
        c.close()


def _started(states: dict[int, tuple[str, int]], partitions: list[TopicPartition]) -> bool:
    """Every assigned partition is fetching from a resolved offset."""
    return all(
        states.get(tp.partition, ("", -1))[0] == "active" and states[tp.partition][1] >= 0
        for tp in partitions
    )


def produce_clicks(
    settings: Any,
    topic: str,
    count: int,
    *,
    keys: str = "user",
    rate: float = 0.0,
    seed: int = 7,
    record_deliveries: bool = True,
    extra_config: dict[str, Any] | None = None,
    **overrides: Any,
) -> Any:
    """Generated click events with clickfan's own producer; returns its ProduceSummary."""
    from clickfan.generators.producer import ClickProducer

    s = dataclasses.replace(
        settings,
        topic=topic,
        produce_keys=keys,
        produce_rate=rate,
        produce_seed=seed,
        **overrides,
    )
    return ClickProducer(s, extra_config=extra_config).run(
        count=count, record_deliveries=record_deliveries
    )
