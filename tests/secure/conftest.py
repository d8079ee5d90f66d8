"""A secure Kafka of its own (SASL_SSL, SCRAM-SHA-512, ACLs) for the secure-profile tests.

Run with `make test-secure` (pytest tests/secure -m secure). Three brokers of
`clickfan up --secure --kafka-only` start once per run in their own home and
ports, beside whatever stack runs already; Elasticsearch and HDFS are the
usual stack's (CLICKFAN_ES_PORT ...), used as the workers' sinks.

    CLICKFAN_SECURE_TEST_HOME           default /tmp/clickfan-secure-kafka
    CLICKFAN_SECURE_TEST_KAFKA_PORTS    default 9492,9493,9494 (controllers: +10000)

The brokers are stopped and their home removed afterwards (--keep-stack keeps them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console

from clickfan import kafka_client
from clickfan.compose.native import kafka_acls
from clickfan.compose.native import stack as native_stack
from clickfan.settings import Settings, load
from tests.support import Names, names_env, wait_until


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "secure: needs the secure Kafka (make test-secure)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = "secure" in (config.getoption("-m") or "")
    for item in items:
        if "tests/secure/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.secure)
            if not wanted:
                item.add_marker(pytest.mark.skip(reason="starts its own brokers: -m secure"))


def secure_settings() -> Settings:
    base = load()
    ports = tuple(
        int(p)
        for p in os.environ.get("CLICKFAN_SECURE_TEST_KAFKA_PORTS", "9492,9493,9494").split(",")
    )
    home = Path(os.environ.get("CLICKFAN_SECURE_TEST_HOME", "/tmp/clickfan-secure-kafka"))
    return dataclasses.replace(
        base,
        home=home,
        cache_dir=str(base.artifacts_dir),  # the programs the usual stack downloaded
        kafka_ports=ports,
        kafka_controller_ports=tuple(p + 10000 for p in ports),
        secure=True,
        kafka_config="",
    )


def secure_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `clickfan` process aimed at the secure brokers."""
    env = {k: v for k, v in os.environ.items() if k != "CLICKFAN_KAFKA_CONFIG"}
    env.update(
        {
            "CLICKFAN_HOME": str(settings.home),
            "CLICKFAN_CACHE_DIR": settings.cache_dir,
            "CLICKFAN_KAFKA_PORTS": ",".join(map(str, settings.kafka_ports)),
            "CLICKFAN_KAFKA_CONTROLLER_PORTS": ",".join(map(str, settings.kafka_controller_ports)),
            "CLICKFAN_SECURE": "1",
        }
    )
    env.update(extra)
    return env


def client_file(settings: Settings, user: str) -> Path:
    return kafka_client.clients_dir(settings) / f"{user}.properties"


@contextlib.contextmanager
def identity(settings: Settings, user: str) -> Iterator[None]:
    """Kafka clients made in this process act as ``user`` inside the block."""
    before = kafka_client.active()
    kafka_client.activate(kafka_client.read_config(client_file(settings, user)))
    try:
        yield
    finally:
        kafka_client.activate(before)


@pytest.fixture(scope="session")
def secure_stack(request: pytest.FixtureRequest) -> Iterator[Settings]:
    settings = secure_settings()
    console = Console(stderr=True)
    started = native_stack.up(settings, console, kafka_only=True)
    kafka_client.activate(kafka_client.read_config(client_file(settings, "admin")))
    yield settings
    if started and not request.config.getoption("--keep-stack"):
        native_stack.down(settings, console)
        shutil.rmtree(settings.home, ignore_errors=True)


@pytest.fixture
def secure_names(secure_stack: Settings) -> Iterator[Names]:
    """A test's own topic, DLQ and groups on the secure brokers, with the profile's ACLs."""
    names = Names.new()
    admin = native_stack.admin_client(secure_stack.bootstrap_servers)
    topics = [
        NewTopic(n, secure_stack.partitions, secure_stack.replication_factor)
        for n in (names.topic, names.dlq_topic)
    ]
    for future in admin.create_topics(topics, request_timeout=30).values():
        future.result()
    kafka_acls.apply(
        admin,
        kafka_acls.pipeline_acls(names.topic, names.dlq_topic, names.es_group, names.hdfs_group),
    )
    # each broker applies new ACLs a moment later; the archiver's are created last
    for port in secure_stack.kafka_ports:
        for user, topic in (("producer", names.topic), ("hdfs-archiver", names.dlq_topic)):
            with identity(secure_stack, user):
                client = native_stack.admin_client(f"{secure_stack.host}:{port}")

            def granted(client: AdminClient = client, topic: str = topic) -> bool:
                return client.list_topics(topic, timeout=10).topics[topic].error is None

            wait_until(granted, timeout=30, what=f"{user}'s ACLs on the broker at {port}")
    yield names
    for future in admin.delete_topics([names.topic, names.dlq_topic], request_timeout=30).values():
        with contextlib.suppress(KafkaException):
            future.result()


__all__ = ["client_file", "identity", "names_env", "secure_env", "secure_settings"]
