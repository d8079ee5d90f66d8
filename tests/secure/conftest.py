"""One whole secure stack per run: `clickfan up --secure`, as a user starts it.

Run with `make test-secure` (pytest tests/secure -m secure). The session fixture
`secure_stack` starts three SASL_SSL brokers with ACLs, Elasticsearch with TLS and
file-realm users, and HDFS with permissions (the archive owned by hdfs-archiver) in
a home of its own (/tmp/clickfan-secure-XXXXXX) and on ports of its own, beside
whatever stack runs already, and stops and removes them at the end, also when a
test fails.

    CLICKFAN_SECURE_TEST_PORT_BASE  default 29000: brokers +192..194, controllers
                                    +292..294, Elasticsearch +200/+300, NameNode
                                    +20/+870, DataNode +864/+866/+867
    CLICKFAN_SECURE_TEST_HOME       an existing secure home to use (kept afterwards
                                    unless this run started it); default: a new one

--keep-stack leaves a stack this run started running (its home is printed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console

from clickfan import kafka_client
from clickfan.compose.native import kafka_acls
from clickfan.compose.native import stack as native_stack
from clickfan.settings import Settings, load
from tests.support import Names, names_env, wait_until

# offsets from CLICKFAN_SECURE_TEST_PORT_BASE (the plain stack's ports minus 9000)
_PORT_OFFSETS = {
    "CLICKFAN_KAFKA_PORTS": (192, 193, 194),
    "CLICKFAN_KAFKA_CONTROLLER_PORTS": (292, 293, 294),
    "CLICKFAN_EXTRA_KAFKA_PORT": (195,),
    "CLICKFAN_EXTRA_KAFKA_CONTROLLER_PORT": (295,),
    "CLICKFAN_ES_PORT": (200,),
    "CLICKFAN_ES_TRANSPORT_PORT": (300,),
    "CLICKFAN_NAMENODE_RPC_PORT": (20,),
    "CLICKFAN_NAMENODE_HTTP_PORT": (870,),
    "CLICKFAN_DATANODE_HTTP_PORT": (864,),
    "CLICKFAN_DATANODE_PORT": (866,),
    "CLICKFAN_DATANODE_IPC_PORT": (867,),
}

# what a `clickfan` process of the tests needs to reach the secure stack (set once)
_STACK_ENV: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "secure: needs the secure stack (make test-secure)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = "secure" in (config.getoption("-m") or "")
    for item in items:
        if "tests/secure/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.secure)
            if not wanted:
                item.add_marker(pytest.mark.skip(reason="starts its own stack: -m secure"))


def _stack_env(home: Path) -> dict[str, str]:
    base = int(os.environ.get("CLICKFAN_SECURE_TEST_PORT_BASE", "29000"))
    env = {
        name: ",".join(str(base + o) for o in offsets) for name, offsets in _PORT_OFFSETS.items()
    }
    env.update(
        {
            "CLICKFAN_HOME": str(home),
            "CLICKFAN_CACHE_DIR": str(load().artifacts_dir),  # downloaded once, shared
            "CLICKFAN_SECURE": "1",
        }
    )
    return env


def secure_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `clickfan` process aimed at the secure stack.

    Only the stack's place is given (home, ports): everything else, the users' client
    files, passwords and CA, each process finds in the secure home, as a user's would.
    """
    drop = ("CLICKFAN_KAFKA_CONFIG", "CLICKFAN_ES_", "CLICKFAN_WEBHDFS_", "CLICKFAN_HDFS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(_STACK_ENV)
    env.update(extra)
    return env


def worker_env(settings: Settings, names: Names, **extra: str) -> dict[str, str]:
    """A `clickfan worker` on the secure stack, confined to one test's names."""
    return secure_env(
        settings,
        **{
            **names_env(names),
            "CLICKFAN_HDFS_ROLL_S": "2",
            "CLICKFAN_HDFS_ROLL_RECORDS": "500",
            "CLICKFAN_WORKER_STATS_INTERVAL_S": "5",
            "CLICKFAN_WORKER_SESSION_TIMEOUT_S": "10",
            # a worker that dies of a signal leaves every thread's Python stack in its log
            "PYTHONFAULTHANDLER": "1",
            **extra,  # a test's own, over the defaults above
        },
    )


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
    given = os.environ.get("CLICKFAN_SECURE_TEST_HOME")
    home = Path(given) if given else Path(tempfile.mkdtemp(prefix="clickfan-secure-", dir="/tmp"))
    _STACK_ENV.update(_stack_env(home))
    settings = load(secure_env(Settings()))
    console = Console(stderr=True)
    started: list[str] = []
    try:
        started = native_stack.up(settings, console)
        kafka_client.activate(kafka_client.read_config(client_file(settings, "admin")))
        yield settings
    finally:
        if request.config.getoption("--keep-stack"):
            console.print(f"--keep-stack: the secure stack runs on in {home}")
        elif started or not given:
            # wipe: Elasticsearch's folder may live outside the home (/var/lib/clickfan)
            native_stack.down(settings, console, wipe=True)
            shutil.rmtree(home, ignore_errors=True)


def names_in_profile(settings: Settings) -> Names:
    """A test's own names, inside what the profile's users may touch: the indexer's
    role covers <index_prefix>-*, the archiver owns <hdfs_root>."""
    names = Names.new()
    return dataclasses.replace(
        names,
        index_prefix=f"{settings.index_prefix}-{names.prefix}",
        hdfs_root=f"{settings.hdfs_root.rstrip('/')}/tests/{names.prefix}",
    )


@pytest.fixture
def secure_names(secure_stack: Settings) -> Iterator[Names]:
    """A test's own topic, DLQ, groups, indices and folder on the secure stack, with the
    profile's ACLs; its data removed afterwards."""
    from tests.conftest import _remove_test_data

    names = names_in_profile(secure_stack)
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
    _remove_test_data(secure_stack, names)  # its topics, indices and folder


__all__ = ["client_file", "identity", "secure_env", "worker_env"]
