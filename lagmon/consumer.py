"""Offset commits as they happen, read from ``__consumer_offsets``.

Burrow's kafka consumer module does the same: every commit a group makes is a
record in ``__consumer_offsets`` with the broker's commit timestamp. Polling
committed offsets instead would lose both the commit time and commits that
repeat an offset, and those are what tell STOP (no commits) from STALL
(commits that do not move).

Record layouts are Kafka's ``OffsetCommitKey`` (key versions 0 and 1) and
``OffsetCommitValue`` (value versions 0 to 4; 4 is the first flexible one).
Other record types in the topic (group metadata, KIP-848 records) are skipped.
"""

from __future__ import annotations

import logging
import struct
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from clickfan import kafka_client

OFFSETS_TOPIC = "__consumer_offsets"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True)
class CommitValue:
    offset: int
    commit_timestamp: int  # ms, set by the group coordinator


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        size = self.unpack(">h")
        return self._text(max(size, 0))

    def compact_string(self) -> str:
        size = self.uvarint() - 1  # 0 encodes null
        return self._text(max(size, 0))

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.unpack(">B")
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def _text(self, size: int) -> str:
        if self.pos + size > len(self.data):
            raise ValueError("string runs past the end of the record")
        text = self.data[self.pos : self.pos + size].decode("utf-8")
        self.pos += size
        return text


def decode_key(data: bytes) -> CommitKey | None:
    """The commit a key is about, or None for records that are not offset commits."""
    r = _Reader(data)
    if r.unpack(">h") not in (0, 1):
        return None
    return CommitKey(r.string(), r.string(), r.unpack(">i"))


def decode_value(data: bytes) -> CommitValue:
    r = _Reader(data)
    version = r.unpack(">h")
    if not 0 <= version <= 4:
        raise ValueError(f"unknown OffsetCommitValue version {version}")
    offset = r.unpack(">q")
    if version >= 3:
        r.unpack(">i")  # leader epoch
    if version >= 4:
        r.compact_string()  # metadata
    else:
        r.string()
    return CommitValue(offset, r.unpack(">q"))


OnCommit = Callable[[CommitKey, CommitValue], None]
OnDelete = Callable[[CommitKey], None]


class OffsetsTopicReader:
    """Reads every commit of one cluster, from the start of ``__consumer_offsets``."""

    def __init__(self, bootstrap_servers: str, on_commit: OnCommit, on_delete: OnDelete) -> None:
        self.on_commit, self.on_delete = on_commit, on_delete
        self._consumer = Consumer(
            {
                **kafka_client.confluent(bootstrap_servers),
                # Needed by the client, but never joined nor committed: partitions are
                # assigned by hand, so this reader is not itself a consumer group.
                "group.id": f"clickfan-lagmon-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "client.id": "clickfan-lagmon",
                "log_level": 0,  # failures are reported by the monitor, once
            }
        )

    def run(self, stop: threading.Event, retry_s: float) -> None:
        try:
            while not stop.is_set() and not self._assign():
                stop.wait(retry_s)
            while not stop.is_set():
                msg = self._consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("reading %s: %s", OFFSETS_TOPIC, msg.error())
                    continue
                self._handle(msg.key(), msg.value())
        finally:
            self._consumer.close()

    def _assign(self) -> bool:
        """Assign every partition of the offsets topic; False while it does not exist."""
        try:
            topic = self._consumer.list_topics(OFFSETS_TOPIC, timeout=10).topics[OFFSETS_TOPIC]
        except KafkaException as exc:
            log.warning("cannot read %s yet: %s", OFFSETS_TOPIC, exc)
            return False
        # Kafka creates the topic with the first group that looks up its coordinator.
        if topic.error is not None or not topic.partitions:
            return False
        self._consumer.assign(
            [TopicPartition(OFFSETS_TOPIC, p, OFFSET_BEGINNING) for p in topic.partitions]
        )
        return True

    def _handle(self, key: bytes | None, value: bytes | None) -> None:
        try:
            commit = decode_key(key) if key else None
            if commit is None:
                return
            if value is None:
                self.on_delete(commit)
            else:
                self.on_commit(commit, decode_value(value))
        except (struct.error, ValueError) as exc:
            log.warning("skipping a record of %s that does not decode: %s", OFFSETS_TOPIC, exc)
