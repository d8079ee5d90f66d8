"""What the broker holds, asked directly: where a group's reading of each partition
starts, and which offset really comes next in a partition.

The pipeline checks every record it hands to the sink against these (see
SinkPipeline._in_order), so that a record can never be skipped. It asks Kafka with
the group's id, as `kafka-consumer-groups --describe` does, without joining the group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from clickfan import kafka_client

T = TypeVar("T")
PATIENCE_S = 60.0  # a broker restarting, a leader moving: ask again for this long


def ask_kafka(what: str, question: Callable[[], T]) -> T:
    """Ask again while the cluster answers with an error (a broker away, a leader moving);
    after PATIENCE_S say what failed (the worker then exits loudly and is restarted)."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        try:
            return question()
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: {exc.args[0].str()}") from None
            time.sleep(0.5)


class BrokerPositions:
    def __init__(self, bootstrap_servers: str, group: str, topic: str) -> None:
        self._topic = topic
        # never subscribes: it asks for the group's committed offsets and the watermarks,
        # and reads single records where it is told, as the workers' consumer reads
        # (faust_compat.read_committed): aborted records and markers hold no record
        self._consumer = Consumer(
            {
                **kafka_client.confluent(bootstrap_servers),
                "group.id": group,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # below the log start (retention), the first record that is left
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            }
        )

    async def starting(self, partitions: set[int]) -> dict[int, int]:
        """Partition -> the group's committed offset, or the log start without one."""
        return await asyncio.to_thread(self._starting, partitions)

    async def first_offset(self, partition: int, offset: int) -> int | None:
        """The offset of the first record at or after ``offset``; None when there is none."""
        return await asyncio.to_thread(self._first_offset, partition, offset)

    def _first_offset(self, partition: int, offset: int) -> int | None:
        self._consumer.assign([TopicPartition(self._topic, partition, offset)])
        try:
            for _ in range(30):  # bounded: each poll waits at most 1 s
                message = self._consumer.poll(1.0)
                if message is None:
                    continue
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        return None
                    if message.error().fatal():
                        raise RuntimeError(f"reading {self._topic}[{partition}]: {message.error()}")
                    continue  # a broker away for a moment: librdkafka goes on by itself
                return message.offset()
            raise RuntimeError(f"no answer reading {self._topic}[{partition}] at {offset}")
        finally:
            self._consumer.unassign()

    def _starting(self, partitions: set[int]) -> dict[int, int]:
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        committed = {
            tp.partition: tp.offset
            for tp in ask_kafka(
                f"cannot read the committed offsets of {self._topic}",
                lambda: self._consumer.committed(tps, 30),
            )
        }
        positions = {}
        for p in sorted(partitions):
            if committed.get(p, -1) >= 0:
                positions[p] = committed[p]
            else:  # nothing committed yet: the group reads from the log start (earliest)
                low, _ = ask_kafka(
                    f"cannot read where {self._topic}[{p}] starts",
                    lambda p=p: self._consumer.get_watermark_offsets(
                        TopicPartition(self._topic, p), timeout=30
                    ),
                )
                positions[p] = low
        return positions
