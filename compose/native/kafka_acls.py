"""What each user of the secure profile may do on Kafka: the ACLs `clickfan up --secure` sets.

    admin          super user (the brokers themselves, `clickfan up`, ensure-topics)
    producer       write the topic (and idempotent writes)
    es-indexer     read the topic in group es-indexer (and es-indexer.*, its dead-letter
    hdfs-archiver  reader, purge and re-drive groups); read and write the dead-letter topic,
                   in transactions whose ids start with the group's name and a dot
                   (streams.deadletter.transactional_id)
    monitor        describe the cluster, every topic and group; read __consumer_offsets

Nothing else is allowed (StandardAuthorizer, allow.everyone.if.no.acl.found=false).
Creating an ACL that exists already changes nothing, so applying them again is safe.
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from clickfan.errors import ClickfanError

LITERAL = ResourcePatternType.LITERAL
PREFIXED = ResourcePatternType.PREFIXED


def _allow(
    user: str,
    kind: ResourceType,
    name: str,
    operations: tuple[AclOperation, ...],
    pattern: ResourcePatternType = LITERAL,
) -> list[AclBinding]:
    return [
        AclBinding(kind, name, pattern, f"User:{user}", "*", op, AclPermissionType.ALLOW)
        for op in operations
    ]


def producer_acls(user: str, topic: str) -> list[AclBinding]:
    return [
        *_allow(user, ResourceType.TOPIC, topic, (AclOperation.WRITE, AclOperation.DESCRIBE)),
        *_allow(user, ResourceType.BROKER, "kafka-cluster", (AclOperation.IDEMPOTENT_WRITE,)),
    ]


def worker_acls(user: str, topic: str, dlq_topic: str, group: str) -> list[AclBinding]:
    read = (AclOperation.READ, AclOperation.DESCRIBE)
    return [
        *_allow(user, ResourceType.TOPIC, topic, read),
        *_allow(user, ResourceType.TOPIC, dlq_topic, (*read, AclOperation.WRITE)),
        *_allow(user, ResourceType.GROUP, group, read),
        # its own helpers' groups: <group>.dlq-reader, .dlq-purged, .redrive
        *_allow(user, ResourceType.GROUP, f"{group}.", read, PREFIXED),
        # its fenced dead-letter writers: <group>.dlq-writer:<source topic>:<partition>
        *_allow(
            user,
            ResourceType.TRANSACTIONAL_ID,
            f"{group}.",
            (AclOperation.WRITE, AclOperation.DESCRIBE),
            PREFIXED,
        ),
    ]


def monitor_acls(user: str) -> list[AclBinding]:
    describe = (AclOperation.DESCRIBE,)
    return [
        *_allow(user, ResourceType.BROKER, "kafka-cluster", describe),
        *_allow(user, ResourceType.TOPIC, "*", describe),
        *_allow(user, ResourceType.GROUP, "*", describe),
        *_allow(user, ResourceType.TOPIC, "__consumer_offsets", (AclOperation.READ,)),
    ]


def pipeline_acls(topic: str, dlq_topic: str, es_group: str, hdfs_group: str) -> list[AclBinding]:
    """The secure profile's ACLs for one pipeline (its topic, DLQ and two groups)."""
    return [
        *producer_acls("producer", topic),
        *worker_acls("es-indexer", topic, dlq_topic, es_group),
        *worker_acls("hdfs-archiver", topic, dlq_topic, hdfs_group),
        *monitor_acls("monitor"),
    ]


def apply(admin: AdminClient, bindings: list[AclBinding]) -> None:
    for binding, future in admin.create_acls(bindings, request_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            raise ClickfanError(f"creating the ACL {binding} failed: {exc.args[0].str()}") from None
