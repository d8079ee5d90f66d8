"""What the admin API tells about one Kafka cluster.

Log-end offsets of every topic partition (Burrow's cluster module), the
consumer groups with their members (for partition owners), and committed
offsets (for the one-shot ``clickfan lag`` view, which must agree with
``kafka-consumer-groups --describe``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from clickfan import kafka_client
from clickfan.errors import ClickfanError
from clickfan.lagmon.config import ClusterConfig

# what a partition without a leader answers: no leader found, or not available yet
_LEADERLESS = (KafkaError._NOENT, KafkaError.LEADER_NOT_AVAILABLE)
_LEADERLESS_RETRIES = 5

TopicPartitionKey = tuple[str, int]


class KafkaCluster:
    def __init__(self, config: ClusterConfig, timeout_s: float = 10.0) -> None:
        self.config = config
        self.timeout_s = timeout_s
        # a refusal (credentials, TLS, ACLs) is named instead of "unreachable"
        self._refusals = kafka_client.RefusalWatch(kafka_client.active().security_protocol)
        self._admin = AdminClient(
            {
                **kafka_client.confluent(config.bootstrap_servers),
                "client.id": "clickfan-lagmon",
                "error_cb": self._refusals.error_cb,
                # failures surface as exceptions, reported once by the caller; the log
                # is read only for what a refused connection looks like
                "logger": self._refusals.log,
            }
        )

    def unreachable(self, exc: Exception) -> ClickfanError:
        self._admin.poll(0.5)  # serves the error and log callbacks
        reason = self._refusals.reason or self._refusals.hint
        if reason is not None:
            return ClickfanError(
                f"Kafka cluster {self.config.name!r} at {self.config.bootstrap_servers} "
                f"refused the monitor: {reason}"
            )
        return ClickfanError(
            f"cannot read Kafka cluster {self.config.name!r} at {self.config.bootstrap_servers}: "
            f"{exc}. Is it running? (`clickfan status`; `clickfan up` starts the local stack)"
        )

    def topic_offsets(self) -> dict[str, list[int]]:
        """Log-end offset of every partition of every topic, internal topics left out."""
        metadata = self._admin.list_topics(timeout=self.timeout_s)
        partitions = {
            name: sorted(topic.partitions)
            for name, topic in metadata.topics.items()
            if not name.startswith("__") and topic.error is None
        }
        ends = self.log_end_offsets((t, p) for t, ps in partitions.items() for p in ps)
        return {
            t: [ends[(t, p)] for p in ps]
            for t, ps in partitions.items()
            if all((t, p) in ends for p in ps)
        }

    def partitions(self, topic: str) -> list[int]:
        """The partition numbers of one topic."""
        found = self._admin.list_topics(topic, timeout=self.timeout_s).topics.get(topic)
        if found is None or found.error is not None:
            raise ClickfanError(f"topic {topic!r} not found on cluster {self.config.name!r}")
        return sorted(found.partitions)

    def log_end_offsets(
        self, partitions: Iterable[TopicPartitionKey]
    ) -> dict[TopicPartitionKey, int]:
        return self._list_offsets(partitions, OffsetSpec.latest())

    def log_start_offsets(
        self, partitions: Iterable[TopicPartitionKey]
    ) -> dict[TopicPartitionKey, int]:
        """The first offset still in each partition's log (after retention)."""
        return self._list_offsets(partitions, OffsetSpec.earliest())

    def _list_offsets(
        self, partitions: Iterable[TopicPartitionKey], spec: OffsetSpec
    ) -> dict[TopicPartitionKey, int]:
        wanted = list(partitions)
        for attempt in range(_LEADERLESS_RETRIES):
            try:
                return self._list_offsets_once(wanted, spec)
            except KafkaException as exc:
                # a topic being deleted has no leaders for a moment, and librdkafka then
                # fails the whole request: ask again without the topics that are gone
                if exc.args[0].code() not in _LEADERLESS or attempt == _LEADERLESS_RETRIES - 1:
                    raise
                time.sleep(0.5)
                existing = self._admin.list_topics(timeout=self.timeout_s).topics
                wanted = [(t, p) for t, p in wanted if t in existing]
        raise AssertionError("unreachable")

    def _list_offsets_once(
        self, partitions: list[TopicPartitionKey], spec: OffsetSpec
    ) -> dict[TopicPartitionKey, int]:
        request = {TopicPartition(t, p): spec for t, p in partitions}
        if not request:
            return {}
        # Uncommitted isolation: the high watermark, as kafka-consumer-groups and Burrow use.
        futures = self._admin.list_offsets(
            request,
            isolation_level=IsolationLevel.READ_UNCOMMITTED,
            request_timeout=self.timeout_s,
        )
        ends = {}
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException as exc:
                # A topic deleted since it was listed is no failure: leave it out.
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
        return ends

    def groups(self) -> list[str]:
        result = self._admin.list_consumer_groups(request_timeout=self.timeout_s).result()
        if result.errors:
            # Some brokers did not answer: a partial list would hide groups.
            raise KafkaException(result.errors[0])
        return sorted(g.group_id for g in result.valid)

    def owners(self, groups: list[str]) -> dict[str, dict[TopicPartitionKey, tuple[str, str]]]:
        """For each group: (topic, partition) -> (member host, client id) of its owner."""
        if not groups:
            return {}
        futures = self._admin.describe_consumer_groups(groups, request_timeout=self.timeout_s)
        owners: dict[str, dict[TopicPartitionKey, tuple[str, str]]] = {}
        for group, future in futures.items():
            try:
                description = future.result()
            except KafkaException:
                continue  # deleted meanwhile
            owners[group] = {
                (tp.topic, tp.partition): (member.host, member.client_id)
                for member in description.members
                if member.assignment
                for tp in member.assignment.topic_partitions
            }
        return owners

    def committed(self, group: str) -> dict[TopicPartitionKey, int]:
        """The group's committed offsets; partitions without one are left out."""
        request = [ConsumerGroupTopicPartitions(group)]
        futures = self._admin.list_consumer_group_offsets(request, request_timeout=self.timeout_s)
        result = futures[group].result()
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions
            if tp.offset >= 0 and tp.error is None
        }
