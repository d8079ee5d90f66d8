"""The workers against the secure stack's Elasticsearch and HDFS, given as clusters we do
not run: node lists (a dead node first), a user and password file, a CA, an HDFS user.

Elasticsearch speaks TLS only and knows file-realm users (the indexer may write only
<index_prefix>-*); HDFS checks permissions (the archive is hdfs-archiver's). Kafka is
the same secure stack's, each worker as its own user. Run: `make test-secure`.
"""

from __future__ import annotations

import dataclasses
import getpass
import socket
import uuid
from pathlib import Path

import pytest

from clickfan.generators.producer import ProduceSummary
from clickfan.settings import Settings
from clickfan.sinks import clients
from tests.integration import pipeline_support as ps
from tests.secure.conftest import identity, worker_env
from tests.support import Names, WorkerProcess, wait_until

EVENTS = 300


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def _produce(settings: Settings, names: Names, count: int) -> ProduceSummary:
    with identity(settings, "producer"):
        return ps.produce(settings, names, count)


def _password_file(settings: Settings) -> str:
    return str(clients.es_password_file_of(settings, clients.ES_INDEXER_USER))


def _es_env(settings: Settings, **extra: str) -> dict[str, str]:
    """What a user gives for an Elasticsearch cluster of their own (the indexer's user)."""
    return {
        "CLICKFAN_ES_URLS": settings.es_node_urls[0],
        "CLICKFAN_ES_USERNAME": clients.ES_INDEXER_USER,
        "CLICKFAN_ES_PASSWORD_FILE": _password_file(settings),
        "CLICKFAN_ES_CA_CERT": str(clients.local_ca(settings)),
        **extra,
    }


def _worker(
    settings: Settings, names: Names, tmp_path: Path, kind: str, env: dict[str, str], name: str
) -> WorkerProcess:
    return WorkerProcess(kind, worker_env(settings, names, **env), tmp_path, name)


def _exits(worker: WorkerProcess, timeout: float = 120) -> int:
    assert worker.proc is not None
    wait_until(lambda: not worker.running, timeout, f"{worker.log_path.name} to exit", worker.tail)
    return int(worker.proc.returncode)


def _admin_count(settings: Settings, pattern: str) -> int:
    es = ps.es_client(settings)  # the profile's admin
    es.indices.refresh(index=pattern, allow_no_indices=True)
    return int(es.count(index=pattern)["count"])


def _secret(path: str) -> str:
    return Path(path).read_text().strip()


def test_the_indexer_writes_with_its_own_user_and_skips_a_dead_first_node(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    s, names = secure_stack, secure_names
    dead = f"https://127.0.0.1:{_free_port()}"
    env = _es_env(s, CLICKFAN_ES_URLS=f"{dead},{s.es_node_urls[0]}")
    worker = _worker(s, names, tmp_path, "es", env, "es-secure")
    _produce(s, names, EVENTS)
    worker.start()
    try:
        wait_until(
            lambda: not worker.running or _admin_count(s, f"{names.index_prefix}-*") == EVENTS,
            180,
            f"{EVENTS} documents in {names.index_prefix}-*",
            worker.tail,
            interval=2,
        )
        assert worker.running, worker.tail()
    finally:
        assert worker.stop() == 0, worker.tail()
    assert _secret(_password_file(s)) not in worker.log_path.read_text()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("outside its indices", "does not allow the indexer to write"),
        ("wrong password", "refused our credentials (401)"),
        ("plaintext on the TLS port", "answers only TLS"),
        ("unknown CA", "certificate is not trusted"),
    ],
)
def test_a_refused_indexer_stops_loudly_with_one_line_and_commits_nothing(
    secure_stack: Settings, secure_names: Names, tmp_path: Path, case: str, reason: str
) -> None:
    s, names = secure_stack, secure_names
    env = _es_env(s)
    if case == "outside its indices":
        env["CLICKFAN_INDEX_PREFIX"] = f"{names.prefix}-clicks"  # not <index_prefix>-*
    elif case == "wrong password":
        wrong = tmp_path / "wrong-password"
        wrong.write_text("not-the-password\n")
        env["CLICKFAN_ES_PASSWORD_FILE"] = str(wrong)
    elif case == "plaintext on the TLS port":
        env["CLICKFAN_ES_URLS"] = s.es_node_urls[0].replace("https://", "http://")
    else:  # the system's CAs, which never signed the local CA's certificates
        env["CLICKFAN_ES_CA_CERT"] = "/etc/ssl/certs/ca-certificates.crt"
    _produce(s, names, 20)
    worker = _worker(s, names, tmp_path, "es", env, "es-refused")
    worker.start()
    code = _exits(worker)
    log = worker.log_path.read_text()
    assert code != 0, log
    assert [line for line in log.splitlines() if reason in line], log
    assert _secret(_password_file(s)) not in log
    # held, not lost: nothing committed, so a fixed worker reads every record again
    committed = ps.committed(s, names.es_group, names.topic, s.partitions)
    assert all(offset < 0 for offset in committed.values()), committed


def _hdfs_env(settings: Settings, root: str, **extra: str) -> dict[str, str]:
    return {
        "CLICKFAN_WEBHDFS_URLS": settings.webhdfs_node_urls[0],
        "CLICKFAN_HDFS_USER": clients.HDFS_ARCHIVER_USER,
        "CLICKFAN_HDFS_ROOT": root,
        **extra,
    }


def _as_superuser(settings: Settings) -> Settings:
    """Settings that read the secure HDFS as its superuser (for the test's checks)."""
    return dataclasses.replace(settings, hdfs_user=getpass.getuser(), secure=False)


def test_the_archiver_writes_its_folder_through_a_dead_first_namenode(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    s, names = secure_stack, secure_names
    dead = f"http://127.0.0.1:{_free_port()}"
    env = _hdfs_env(s, names.hdfs_root, CLICKFAN_WEBHDFS_URLS=f"{dead};{s.webhdfs_node_urls[0]}")
    worker = _worker(s, names, tmp_path, "hdfs", env, "hdfs-secure")
    summary = _produce(s, names, EVENTS)
    worker.start()
    try:
        wait_until(
            lambda: not worker.running or ps.lag(s, names.hdfs_group, names.topic) == 0,
            180,
            "the archiver to catch up",
            worker.tail,
            interval=2,
        )
        assert worker.running, worker.tail()
    finally:
        assert worker.stop() == 0, worker.tail()
    archive = _as_superuser(s)
    archived = ps.read_archive(archive, names.hdfs_root)
    ids = sorted(e["event_id"] for f in archived for e in f.events)
    assert ids == sorted(e for e, _, _ in ps.iter_valid(summary))
    status = clients.webhdfs_client(clients.webhdfs_connection(archive)).status(names.hdfs_root)
    assert status["owner"] == clients.HDFS_ARCHIVER_USER


def test_an_archiver_writing_outside_its_folder_stops_loudly(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    s, names = secure_stack, secure_names
    env = _hdfs_env(s, f"/{names.prefix}")  # beside the archive, not in it
    worker = _worker(s, names, tmp_path, "hdfs", env, "hdfs-refused")
    _produce(s, names, 20)
    worker.start()
    code = _exits(worker)
    log = worker.log_path.read_text()
    assert code != 0, log
    lines = log.splitlines()
    assert any("HDFS (as user hdfs-archiver) does not allow it" in line for line in lines), log
    assert any("Permission denied" in line for line in lines), log
    committed = ps.committed(s, names.hdfs_group, names.topic, s.partitions)
    assert all(offset < 0 for offset in committed.values()), committed


def test_webhdfs_fails_over_from_a_dead_namenode_url(secure_stack: Settings) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    settings = dataclasses.replace(
        secure_stack,
        webhdfs_urls=f"{dead};{secure_stack.webhdfs_node_urls[0]}",
        hdfs_user=clients.HDFS_ARCHIVER_USER,
    )
    client = clients.webhdfs_client(clients.webhdfs_connection(settings))
    path = f"{settings.hdfs_root.rstrip('/')}/failover-{uuid.uuid4().hex}"
    client.write(path, data=b"both ways")
    with client.read(path) as reader:
        assert reader.read() == b"both ways"
    client.delete(path)
