"""The workers against a secure Elasticsearch and HDFS, as against clusters we do not run.

The module starts its own Elasticsearch (TLS on HTTP and transport, file-realm users
from `clickfan up --secure`'s code) and HDFS (permissions on, the archive owned by
hdfs-archiver) in a home and on ports of its own, beside the shared stack, and
stops them at the end. Kafka is the stack's. The workers are configured only through
the CLICKFAN_* variables a user gives for their own clusters (README "Your own
clusters"): node lists, a user and password file, a CA.

    pytest --stack=external --secure-es-hdfs tests/integration/test_secure_es_hdfs.py

CLICKFAN_TEST_SECURE_HOME and CLICKFAN_TEST_SECURE_PORT_BASE move its home and ports.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clickfan.compose.native import process
from clickfan.compose.native import stack as native_stack
from clickfan.compose.native.java import check_java
from clickfan.compose.native.services.base import Service
from clickfan.compose.native.services.elasticsearch import Elasticsearch
from clickfan.compose.native.services.hdfs import DataNode, NameNode
from clickfan.settings import Settings, load
from clickfan.sinks import clients
from tests.integration import pipeline_support as ps
from tests.support import Names, WorkerProcess, clickfan, wait_until, worker_env

pytestmark = pytest.mark.usefixtures("secure_enabled")

EVENTS = 300
HOME = "/tmp/clickfan-secure-es-hdfs"


@pytest.fixture(scope="module")
def secure_enabled(request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("--secure-es-hdfs"):
        pytest.skip("starts its own secure Elasticsearch and HDFS: run with --secure-es-hdfs")


@dataclass(frozen=True)
class Secure:
    settings: Settings  # the secure services' own settings (home, ports, secure=True)
    ca: str
    indexer_password_file: str
    admin: clients.ElasticsearchConnection
    es_url: str
    webhdfs_url: str


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def secure(stack: Settings, secure_enabled: None) -> Iterator[Secure]:
    base = int(os.environ.get("CLICKFAN_TEST_SECURE_PORT_BASE", "19200"))
    env = {
        "CLICKFAN_HOME": os.environ.get(
            "CLICKFAN_TEST_SECURE_HOME", "/tmp/clickfan-secure-es-hdfs"
        ),
        "CLICKFAN_CACHE_DIR": str(stack.artifacts_dir),  # the programs are downloaded once
        "CLICKFAN_SECURE": "1",
        "CLICKFAN_ES_PORT": str(base + 10),
        "CLICKFAN_ES_TRANSPORT_PORT": str(base + 11),
        "CLICKFAN_NAMENODE_RPC_PORT": str(base + 20),
        "CLICKFAN_NAMENODE_HTTP_PORT": str(base + 21),
        "CLICKFAN_DATANODE_HTTP_PORT": str(base + 22),
        "CLICKFAN_DATANODE_PORT": str(base + 23),
        "CLICKFAN_DATANODE_IPC_PORT": str(base + 24),
    }
    settings = load(env)
    services: list[Service] = [NameNode(settings), DataNode(settings), Elasticsearch(settings)]
    java = check_java(settings)
    started: list[int] = []
    try:
        for service in services:
            if native_stack.running_pid(service) is None:
                process.check_ports_free(settings.host, service.ports)
                service.prepare(java)
                started.append(process.start(service.launch_spec(java)))
        for service in services:
            wait_until(
                lambda s=service: s.probe().healthy,
                300,
                f"secure {service.name} to be healthy",
                lambda s=service: native_stack.log_tail(s, 15),
                interval=2,
            )
        for service in services:
            service.after_healthy()
        admin = clients.elasticsearch_connection(settings)
        yield Secure(
            settings=settings,
            ca=admin.ca_cert,
            indexer_password_file=str(
                clients.es_password_file_of(settings, clients.ES_INDEXER_USER)
            ),
            admin=admin,
            es_url=settings.es_url,
            webhdfs_url=settings.webhdfs_url,
        )
    finally:
        for pid in reversed(started):
            process.stop(pid, settings.stop_timeout_s)
        for service in services:
            service.pid_file.unlink(missing_ok=True)


def _es_env(secure: Secure, **extra: str) -> dict[str, str]:
    """What a user gives for an Elasticsearch cluster of their own (the indexer's user)."""
    return {
        "CLICKFAN_ES_URLS": secure.es_url,
        "CLICKFAN_ES_USERNAME": clients.ES_INDEXER_USER,
        "CLICKFAN_ES_PASSWORD_FILE": secure.indexer_password_file,
        "CLICKFAN_ES_CA_CERT": secure.ca,
        **extra,
    }


def _worker(
    stack: Settings, names: Names, tmp_path: Path, kind: str, env: dict[str, str], name: str
) -> WorkerProcess:
    full = worker_env(stack, names)
    full.update(env)
    return WorkerProcess(kind, full, tmp_path, name)


def _exits(worker: WorkerProcess, timeout: float = 120) -> int:
    assert worker.proc is not None
    wait_until(lambda: not worker.running, timeout, f"{worker.log_path.name} to exit", worker.tail)
    return int(worker.proc.returncode)


def _admin_count(secure: Secure, pattern: str) -> int:
    es = clients.elasticsearch_client(secure.admin)
    es.indices.refresh(index=pattern, allow_no_indices=True)
    return int(es.count(index=pattern)["count"])


def _secret(path: str) -> str:
    return Path(path).read_text().strip()


def test_the_indexer_writes_with_its_own_user_and_skips_a_dead_first_node(
    stack: Settings, names: Names, secure: Secure, tmp_path: Path
) -> None:
    prefix = f"clicks-{names.prefix}"  # inside the indexer's clicks-*
    dead = f"https://127.0.0.1:{_free_port()}"
    worker = _worker(
        stack,
        names,
        tmp_path,
        "es",
        _es_env(secure, CLICKFAN_ES_URLS=f"{dead},{secure.es_url}", CLICKFAN_INDEX_PREFIX=prefix),
        "es-secure",
    )
    ps.produce(stack, names, EVENTS)
    worker.start()
    try:
        wait_until(
            lambda: _admin_count(secure, f"{prefix}-*") == EVENTS,
            180,
            f"{EVENTS} documents in {prefix}-*",
            worker.tail,
            interval=2,
        )
        assert worker.running, worker.tail()
    finally:
        assert worker.stop() == 0, worker.tail()
    log = worker.log_path.read_text()
    assert _secret(secure.indexer_password_file) not in log
    es = clients.elasticsearch_client(secure.admin)
    es.indices.delete(index=f"{prefix}-*")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("outside clicks-*", "does not allow the indexer to write"),
        ("wrong password", "refused our credentials (401)"),
        ("plaintext on the TLS port", "answers only TLS"),
        ("unknown CA", "certificate is not trusted"),
    ],
)
def test_a_refused_indexer_stops_loudly_with_one_line_and_commits_nothing(
    stack: Settings, names: Names, secure: Secure, tmp_path: Path, case: str, reason: str
) -> None:
    env = _es_env(secure, CLICKFAN_INDEX_PREFIX=f"clicks-{names.prefix}")
    if case == "outside clicks-*":
        env["CLICKFAN_INDEX_PREFIX"] = names.index_prefix  # t...-clicks: not clicks-*
    elif case == "wrong password":
        wrong = tmp_path / "wrong-password"
        wrong.write_text("not-the-password\n")
        env["CLICKFAN_ES_PASSWORD_FILE"] = str(wrong)
    elif case == "plaintext on the TLS port":
        env["CLICKFAN_ES_URLS"] = secure.es_url.replace("https://", "http://")
    else:  # the system's CAs, which never signed the local CA's certificates
        del env["CLICKFAN_ES_CA_CERT"]
    ps.produce(stack, names, 20)
    worker = _worker(stack, names, tmp_path, "es", env, "es-refused")
    worker.start()
    code = _exits(worker)
    log = worker.log_path.read_text()
    assert code != 0, log
    lines = [line for line in log.splitlines() if reason in line]
    assert lines, log
    assert _secret(secure.indexer_password_file) not in log
    # held, not lost: nothing committed, so a fixed worker reads every record again
    committed = ps.committed(stack, names.es_group, names.topic, stack.partitions)
    assert all(offset < 0 for offset in committed.values()), committed


def _hdfs_env(secure: Secure, root: str, **extra: str) -> dict[str, str]:
    return {
        "CLICKFAN_WEBHDFS_URLS": secure.webhdfs_url,
        "CLICKFAN_HDFS_USER": clients.HDFS_ARCHIVER_USER,
        "CLICKFAN_HDFS_ROOT": root,
        **extra,
    }


def test_the_archiver_writes_its_folder_through_a_dead_first_namenode(
    stack: Settings, names: Names, secure: Secure, tmp_path: Path
) -> None:
    root = f"{secure.settings.hdfs_root.rstrip('/')}/{names.prefix}"  # in hdfs-archiver's
    dead = f"http://127.0.0.1:{_free_port()}"
    worker = _worker(
        stack,
        names,
        tmp_path,
        "hdfs",
        _hdfs_env(secure, root, CLICKFAN_WEBHDFS_URLS=f"{dead};{secure.webhdfs_url}"),
        "hdfs-secure",
    )
    summary = ps.produce(stack, names, EVENTS)
    worker.start()
    archive = _as_superuser(stack, secure)
    try:
        wait_until(
            lambda: ps.lag(stack, names.hdfs_group, names.topic) == 0,
            180,
            "the archiver to catch up",
            worker.tail,
            interval=2,
        )
        assert worker.running, worker.tail()
    finally:
        assert worker.stop() == 0, worker.tail()
    archived = ps.read_archive(archive, root)
    ids = sorted(e["event_id"] for f in archived for e in f.events)
    assert ids == sorted(e for e, _, _ in ps.iter_valid(summary))
    status = clients.webhdfs_client(clients.webhdfs_connection(archive)).status(root)
    assert status["owner"] == clients.HDFS_ARCHIVER_USER


def _as_superuser(stack: Settings, secure: Secure) -> Settings:
    """Settings that read the secure HDFS as its superuser (for the test's checks)."""
    return dataclasses.replace(
        stack, webhdfs_urls=secure.webhdfs_url, hdfs_user=getpass.getuser(), secure=False
    )


def test_an_archiver_writing_outside_its_folder_stops_loudly(
    stack: Settings, names: Names, secure: Secure, tmp_path: Path
) -> None:
    worker = _worker(
        stack, names, tmp_path, "hdfs", _hdfs_env(secure, f"/{names.prefix}"), "hdfs-refused"
    )
    ps.produce(stack, names, 20)
    worker.start()
    code = _exits(worker)
    log = worker.log_path.read_text()
    assert code != 0, log
    assert any(
        "HDFS (as user hdfs-archiver) does not allow it" in line for line in log.splitlines()
    )
    assert any("Permission denied" in line for line in log.splitlines()), log
    committed = ps.committed(stack, names.hdfs_group, names.topic, stack.partitions)
    assert all(offset < 0 for offset in committed.values()), committed


def test_webhdfs_fails_over_from_a_dead_namenode_url(secure: Secure) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    settings = dataclasses.replace(
        secure.settings,
        webhdfs_urls=f"{dead};{secure.webhdfs_url}",
        hdfs_user=clients.HDFS_ARCHIVER_USER,
    )
    client = clients.webhdfs_client(clients.webhdfs_connection(settings))
    path = f"{settings.hdfs_root.rstrip('/')}/failover-{uuid.uuid4().hex}"
    client.write(path, data=b"both ways")
    with client.read(path) as reader:
        assert reader.read() == b"both ways"
    client.delete(path)


def test_secrets_appear_in_no_status_output(
    stack: Settings, secure: Secure, tmp_path: Path
) -> None:
    password = _secret(secure.indexer_password_file)
    # this home runs no Kafka: the stack's, in plaintext
    kafka = tmp_path / "client.properties"
    kafka.write_text(f"bootstrap.servers={stack.bootstrap_servers}\nsecurity.protocol=PLAINTEXT\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLICKFAN_")},
        "CLICKFAN_HOME": str(secure.settings.home),
        "CLICKFAN_SECURE": "1",
        "CLICKFAN_KAFKA_CONFIG": str(kafka),
        "CLICKFAN_ES_PORT": str(secure.settings.es_port),
        "CLICKFAN_ES_PASSWORD": password,
        "CLICKFAN_ES_USERNAME": clients.ES_INDEXER_USER,
    }
    shown = clickfan("status", env=env, replace_env=True, timeout=120)
    as_json = clickfan("status", "--json", env=env, replace_env=True, timeout=120)
    # it did log in with the password (the node answers only with credentials) ...
    es = next(x for x in json.loads(as_json.stdout)["services"] if x["name"] == "elasticsearch")
    assert es["state"] == "healthy", es
    # ... and printed it nowhere
    assert password not in shown.stdout + shown.stderr + as_json.stdout + as_json.stderr
