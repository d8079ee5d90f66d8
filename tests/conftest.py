"""Fixtures shared by the whole suite.

The stack is started once per test run (`stack`, session-scoped) and every
test gets its own topic, dead-letter topic, consumer groups, index prefix and
HDFS folder (`names`) instead of restarting services: six JVMs share two cores.

    pytest --stack=native    # default: `clickfan up` on this machine
    pytest --stack=external  # services already running (e.g. `clickfan up` by hand), or
                             # clusters given by CLICKFAN_* (README "Your own clusters":
                             # CLICKFAN_ES_URLS, _ES_API_KEY_FILE, _ES_CA_CERT,
                             # CLICKFAN_WEBHDFS_URLS, _HDFS_USER, ...)
    pytest --stack=docker    # compose/docker-compose.yml via pytest-docker
    make test-secure         # tests/secure: one whole `clickfan up --secure` stack of its
                             # own, started and stopped by tests/secure/conftest.py
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console

from clickfan.compose.native import stack as native_stack
from clickfan.compose.native.process import port_is_free
from clickfan.settings import Settings, load
from clickfan.sinks import clients
from tests.support import Names, ServiceControl, wait_until

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stack",
        choices=("native", "external", "docker"),
        default="native",
        help="how the integration tests reach Kafka, Elasticsearch and HDFS",
    )
    parser.addoption(
        "--keep-stack",
        action="store_true",
        help="leave a stack that this run started running afterwards (also the secure one)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pypi: downloads from PyPI on its first run (tests/unit/test_packaging.py: "
        "docker-compose 1.29.2 and setuptools, then cached under .pytest_cache)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path).replace("\\", "/")
        if "tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        if "tests/docker/" in path:
            item.add_marker(pytest.mark.docker)
            if item.config.getoption("--stack") != "docker":
                item.add_marker(pytest.mark.skip(reason="the Docker leg runs with --stack=docker"))


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(ROOT / "compose.yaml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    # the project of the README's `docker compose up demo`: one stack, never two on one port
    return "clickfan"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # only the services (the image is built by `make test-docker` first); the tests
    # start the app containers they need
    return ["up -d --wait --no-build kafka-1 kafka-2 kafka-3 elasticsearch namenode datanode"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -v"]


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Settings:
    """A healthy stack; the settings to reach it."""
    settings = load()
    mode = request.config.getoption("--stack")
    console = Console(stderr=True)
    if mode == "docker":
        # a native service of this machine that holds its ports here (not in another
        # network namespace)
        running = [
            s.name
            for s in native_stack.status(settings)[0]
            if s.pid is not None
            and not all(port_is_free(settings.host, p) for p in s.ports.values())
        ]
        if running:
            pytest.exit(
                f"--stack=docker: the native stack runs on the same ports ({', '.join(running)});"
                " stop it first with `clickfan down`",
                3,
            )
        services = request.getfixturevalue("docker_services")
        services.wait_until_responsive(check=lambda: _answers(settings), timeout=300.0, pause=2.0)
        native_stack.ensure_topics(settings, console)
        return settings
    if mode == "external":
        if not _answers(settings):
            pytest.exit("--stack=external: the services do not answer (see `clickfan status`)", 3)
        return settings
    # the one-broker second cluster is cheap and the multi-cluster lag tests need it
    started = native_stack.up(settings, console, extra_cluster=True)
    if started and not request.config.getoption("--keep-stack"):
        request.addfinalizer(lambda: native_stack.down(settings, console))
    return settings


@pytest.fixture(scope="session")
def services(stack: Settings, request: pytest.FixtureRequest) -> ServiceControl:
    """Stop, start and kill services of the stack in use (native or Docker)."""
    return ServiceControl(stack, request.config.getoption("--stack"), ROOT)


def _answers(settings: Settings) -> bool:
    """Health asked over the network, never from pid files: the services may run in
    containers or on other hosts. Every broker in the metadata, Elasticsearch yellow or
    green, HDFS out of safe mode with a live DataNode."""
    try:
        brokers = native_stack.admin_client(settings.bootstrap_servers).list_topics(timeout=5)
        if len(brokers.brokers) < len(settings.kafka_ports):
            return False
        es = clients.elasticsearch_http(clients.elasticsearch_connection(settings))
        health = es.get("/_cluster/health", timeout=5).json()
        if health.get("status") not in ("green", "yellow"):
            return False
        namenodes = clients.webhdfs_http(clients.webhdfs_connection(settings))
        datanodes = namenodes.get(
            "/jmx",
            params={"qry": "Hadoop:service=NameNode,name=FSNamesystemState"},
            timeout=5,
        ).json()["beans"][0]
        safe_mode = namenodes.get(
            "/jmx",
            params={"qry": "Hadoop:service=NameNode,name=NameNodeInfo"},
            timeout=5,
        ).json()["beans"][0]["Safemode"]
        return datanodes["NumLiveDataNodes"] >= 1 and not safe_mode
    except (KafkaException, requests.RequestException, ValueError, KeyError, IndexError):
        return False


@pytest.fixture
def names(stack: Settings) -> Iterator[Names]:
    test_names = Names.new()
    admin = native_stack.admin_client(stack.bootstrap_servers)
    topics = [
        NewTopic(
            name,
            stack.partitions,
            stack.replication_factor,
            config={"min.insync.replicas": str(stack.min_insync_replicas)},
        )
        for name in (test_names.topic, test_names.dlq_topic)
    ]
    for future in admin.create_topics(topics, request_timeout=30).values():
        future.result()
    _wait_until_every_broker_knows(stack, [test_names.topic, test_names.dlq_topic])
    yield test_names
    _remove_test_data(stack, test_names)


def _wait_until_every_broker_knows(settings: Settings, topics: list[str]) -> None:
    """A created topic reaches each broker's metadata a moment later; clients ask any broker."""
    for port in settings.kafka_ports:
        admin = native_stack.admin_client(f"{settings.host}:{port}")

        def knows(admin: AdminClient = admin) -> bool:
            known = admin.list_topics(timeout=10).topics
            return all(
                t in known and all(p.leader >= 0 for p in known[t].partitions.values())
                for t in topics
            )

        wait_until(knows, timeout=30, what=f"broker on {port} to know {topics}", interval=0.1)


def _remove_test_data(settings: Settings, test_names: Names) -> None:
    """Best effort: a test's topics, indices and HDFS folder, so runs do not pile up."""
    admin = native_stack.admin_client(settings.bootstrap_servers)
    for future in admin.delete_topics(
        [test_names.topic, test_names.dlq_topic], request_timeout=30
    ).values():
        with contextlib.suppress(KafkaException):
            future.result()
    with contextlib.suppress(requests.RequestException):
        es = clients.elasticsearch_http(clients.elasticsearch_connection(settings))
        es.delete(f"/{test_names.index_prefix}*", timeout=30)
    with contextlib.suppress(requests.RequestException):
        clients.webhdfs_http(clients.webhdfs_connection(settings)).delete(
            f"/webhdfs/v1{test_names.hdfs_root}",
            params={"op": "DELETE", "recursive": "true"},
            timeout=30,
        )
