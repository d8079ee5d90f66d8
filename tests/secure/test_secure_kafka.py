"""The secure profile's Kafka: each user does its job, and every refusal is loud.

On the secure stack of tests/secure/conftest.py (SASL_SSL, SCRAM-SHA-512, ACLs;
Elasticsearch with TLS and users; HDFS with permissions). Run: `make test-secure`.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path

import pytest

from clickfan import kafka_client
from clickfan.compose.native import pki
from clickfan.generators.producer import ClickProducer, ProduceSummary
from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.secure.conftest import client_file, identity, secure_env, worker_env
from tests.support import (
    Names,
    clickfan,
    end_offsets,
    running_workers,
    wait_drained,
    wait_until,
)

EVENTS = 3_000
RATE = 300.0  # events/s: ~10 s of production, long enough for a kill -9 in the middle


def test_the_whole_pipeline_is_exact_under_the_secure_profile_through_a_kill_9(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    """N events produced as `producer`; es-indexer into the secure Elasticsearch as its
    user, hdfs-archiver into the secure HDFS as its user; both workers killed -9 half-way
    and restarted; every event exactly once in both sinks."""
    names = secure_names
    # no --kafka-config, no Elasticsearch or HDFS credentials: on a secure home each
    # worker takes its own user's Kafka file, the indexer's password file, the local CA
    result: list[ProduceSummary] = []

    def produce() -> None:
        settings = secure_stack.with_overrides(topic=names.topic, produce_rate=RATE)
        with identity(secure_stack, "producer"):
            producer = ClickProducer(settings)
        result.append(producer.run(count=EVENTS, record_deliveries=True))

    producer = threading.Thread(target=produce)
    with running_workers(worker_env(secure_stack, names), tmp_path) as workers:
        producer.start()
        # half-way through production, records written to the sinks, none committed yet
        wait_until(
            lambda: (
                sum(end_offsets(secure_stack, names.topic, secure_stack.partitions).values())
                >= EVENTS // 2
            ),
            timeout=120,
            what=f"{EVENTS // 2} records in {names.topic}",
        )
        for w in workers:  # no flush, no commit, HDFS files half-written
            w.kill9()
            w.start()
        producer.join()
        assert result and result[0].ok, result[0].to_dict() if result else "producer failed"
        assert result[0].acknowledged == EVENTS
        wait_drained(secure_stack, names, workers, timeout=300, fail_fast=True)
        assert all(w.running for w in workers), ps.logs(workers)
        assert all(w.starts == 2 for w in workers)
    ps.assert_exact(secure_stack, names, result[0])
    # the sinks were the secure ones, written by the profile's users
    assert secure_stack.es_node_urls[0].startswith("https://")
    hdfs = ps.hdfs_client(secure_stack)
    written = [
        hdfs.status(f"{folder}/{name}")
        for folder, _, files in hdfs.walk(names.hdfs_root)
        for name in files
    ]
    assert written and {f["owner"] for f in written} == {"hdfs-archiver"}, written


def kafka_client_password(settings: Settings, user: str) -> str:
    return kafka_client.read_config(client_file(settings, user)).password


# ------------------------------------------------------------------- refusals


def _variant(settings: Settings, tmp_path: Path, user: str, name: str, **changes: str) -> Path:
    """``user``'s client file with some keys changed (a value None: the key removed)."""
    lines = client_file(settings, user).read_text().splitlines()
    kept = [line for line in lines if line.split("=", 1)[0] not in changes]
    path = tmp_path / f"{name}.properties"
    path.write_text("\n".join(kept + [f"{k}={v}" for k, v in changes.items() if v]) + "\n")
    return path


def _refused(result: object, *expected: str) -> str:
    out = getattr(result, "stderr", "") + getattr(result, "stdout", "")
    assert getattr(result, "returncode", 0) != 0, out
    line = [x for x in out.splitlines() if x.startswith("clickfan: ")]
    assert line, out[-2000:]
    assert all(e in line[-1] for e in expected), line[-1]
    return line[-1]


def _produce_cli(settings: Settings, names: Names, config: Path | None, *extra: str) -> object:
    args = ["produce", "--count", "20", "--topic", names.topic, *extra]
    if config is not None:
        args += ["--kafka-config", str(config)]
    return clickfan(*args, env=secure_env(settings), timeout=120)


def _worker_cli(settings: Settings, names: Names, kind: str, config: Path) -> object:
    return clickfan(
        "worker",
        kind,
        "--kafka-config",
        str(config),
        env=worker_env(settings, names),
        timeout=120,
    )


def _unchanged(settings: Settings, names: Names) -> None:
    assert sum(end_offsets(settings, names.topic, settings.partitions).values()) == 0


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("plaintext", "security.protocol is PLAINTEXT"),
        ("tls-without-credentials", "without credentials"),
        ("wrong-password", "authentication refused"),
        ("unknown-ca", "certificate verify failed"),
        ("other-topic", "TOPIC_AUTHORIZATION_FAILED"),
        # the monitor may describe the topic, not write: no IDEMPOTENT_WRITE, no WRITE
        ("wrong-user", "AUTHORIZATION_FAILED"),
    ],
)
def test_producer_refusals_are_one_line_and_nothing_is_written(
    secure_stack: Settings, secure_names: Names, tmp_path: Path, case: str, expected: str
) -> None:
    s, names = secure_stack, secure_names
    bootstrap = f"{s.host}:{s.kafka_ports[0]}"
    extra: tuple[str, ...] = ()
    config: Path | None
    if case == "plaintext":
        config = tmp_path / "plain.properties"
        config.write_text(f"bootstrap.servers={bootstrap}\n")
    elif case == "tls-without-credentials":
        config = _variant(
            s,
            tmp_path,
            "producer",
            case,
            **{"security.protocol": "SSL", "sasl.mechanism": "", "sasl.jaas.config": ""},
        )
    elif case == "wrong-password":
        good = kafka_client_password(s, "producer")
        config = tmp_path / "wrong.properties"
        config.write_text(client_file(s, "producer").read_text().replace(good, "not-it"))
    elif case == "unknown-ca":
        stranger = pki.broken_certificate(tmp_path, s, "stranger", [s.host], unknown_ca=True)
        config = _variant(
            s, tmp_path, "producer", case, **{"ssl.truststore.location": str(stranger.cert)}
        )
    elif case == "other-topic":
        config, extra = None, ("--topic", names.dlq_topic)
    else:
        config = client_file(s, "monitor")
    line = _refused(_produce_cli(s, names, config, *extra), expected)
    assert "Traceback" not in line
    assert kafka_client_password(s, "producer") not in line
    _unchanged(s, names)


def test_expired_broker_certificate_is_refused(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    """A TLS endpoint whose certificate (from the right CA) has expired: refused in the
    handshake, by the producer and by a worker, each with one line."""
    s = secure_stack
    expired = pki.broken_certificate(tmp_path, s, "expired", [s.host], expired=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(expired.cert, expired.key)
    listener = socket.create_server((s.host, 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass  # the client refused our certificate: that is the point

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        config = _variant(
            s, tmp_path, "producer", "expired", **{"bootstrap.servers": f"{s.host}:{port}"}
        )
        # librdkafka says only "certificate verify failed": the expiry is the one fault here
        _refused(_produce_cli(s, secure_names, config), "TLS handshake failed")
        _refused(_worker_cli(s, secure_names, "es", config), "TLS handshake failed")
    finally:
        stop.set()
        server.join(timeout=10)
        listener.close()


def test_worker_refused_another_groups_offsets(secure_stack: Settings, secure_names: Names) -> None:
    """es-indexer's user started with the archiver's group: refused before it joins."""
    s, names = secure_stack, secure_names
    env = worker_env(s, names)
    result = clickfan("worker", "es", "--group", names.hdfs_group, env=env, timeout=120)
    _refused(result, "GROUP_AUTHORIZATION_FAILED", names.hdfs_group, "'es-indexer'")


def test_worker_with_a_wrong_password_is_refused(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    s = secure_stack
    good = kafka_client_password(s, "hdfs-archiver")
    config = tmp_path / "wrong.properties"
    config.write_text(client_file(s, "hdfs-archiver").read_text().replace(good, "not-it"))
    line = _refused(_worker_cli(s, secure_names, "hdfs", config), "authentication refused")
    assert good not in line and "not-it" not in line


def test_client_files_work_with_kafkas_own_tools(
    secure_stack: Settings, secure_names: Names
) -> None:
    """The same file is Kafka's --producer.config: the producer may write, es-indexer not."""
    s, names = secure_stack, secure_names
    env = secure_env(s)
    bootstrap = f"{s.host}:{s.kafka_ports[0]}"
    for user, allowed in (("producer", True), ("es-indexer", False)):
        result = clickfan(
            "kafka",
            "kafka-console-producer",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            names.topic,
            "--producer.config",
            str(client_file(s, user)),
            env=env,
            input="one record\n",
            timeout=120,
        )
        if allowed:
            assert result.returncode == 0, result.stderr[-2000:]
        else:
            assert "TopicAuthorizationException" in result.stderr, result.stderr[-2000:]
    assert sum(end_offsets(s, names.topic, s.partitions).values()) == 1
    # and --command-config, as the monitor: it may describe groups
    described = clickfan(
        "kafka",
        "kafka-consumer-groups",
        "--bootstrap-server",
        bootstrap,
        "--list",
        "--command-config",
        str(client_file(s, "monitor")),
        env=env,
        timeout=120,
    )
    assert described.returncode == 0, described.stderr[-2000:]


def test_files_are_private(secure_stack: Settings) -> None:
    secure = secure_stack.home / "secure"
    assert oct(secure.stat().st_mode & 0o777) == "0o700"
    kafka = [*secure.glob("ca*.pem"), *secure.glob("kafka*"), *secure.glob("clients/*")]
    assert len(kafka) >= 7, kafka
    for path in [secure / "clients", *kafka]:
        wanted = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == wanted, path
    conf = secure_stack.data_dir / "kafka-1" / "conf" / "server.properties"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert os.access(client_file(secure_stack, "producer"), os.R_OK)
