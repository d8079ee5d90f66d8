"""The Docker leg of the secure profile: `docker compose -f compose.secure.yaml up demo`.

Run by `make test-docker` (pytest --stack=docker), before the plain compose tests.
The module's fixture starts the project `clickfan-secure` (its own volumes) on its own
ports (CLICKFAN_SECURE_PORT_PREFIX, default 28: brokers 28192-28194, ...), so it runs
beside the shared native stack or the plain compose one. It starts the project afresh
(`down -v` first) and removes it with `down -v` at the end (--keep-stack leaves it
running until the next run).

The test process is a client on the host: it copies the secure home the one-shot
`secure-init` wrote into the `secrets` volume, and reads Kafka as `admin`,
Elasticsearch as its superuser and HDFS as a user, as an operator would.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from hdfs import HdfsError

from clickfan import kafka_client
from clickfan.events import InvalidEvent, decode_event
from clickfan.settings import Settings, load
from clickfan.sinks import clients
from tests.integration.pipeline_support import (
    check_archive,
    dead_letters,
    es_ids,
    lag,
    leftovers,
    read_archive,
    read_topic,
    source_of,
    wait_until,
)
from tests.support import Names, argv_of_every_process

ROOT = Path(__file__).resolve().parents[2]
# -p as well as the file's `name:`: a COMPOSE_PROJECT_NAME in the environment would win
# over the file, and `down -v` must never reach another project's volumes
PROJECT = ["-p", "clickfan-secure", "-f", str(ROOT / "compose.secure.yaml")]
CONTAINER_HOME = "/var/lib/clickfan-home"
PREFIX = os.environ.get("CLICKFAN_SECURE_PORT_PREFIX", "28")
EVENTS = 2000
SERVERS = ("kafka-1", "kafka-2", "kafka-3", "elasticsearch", "namenode", "datanode")
APPS = ("es-indexer", "hdfs-archiver", "monitor")
# each app container and the user whose share of the secrets it holds
SHARES = {
    "producer": "producer",
    "es-indexer": "es-indexer",
    "hdfs-archiver": "hdfs-archiver",
    "monitor": "monitor",
    "demo": "admin",
}
# what of Elasticsearch's secrets a share holds: the indexer works with its API key, the
# demo watches as the superuser
ES_SHARES = {
    "es-indexer": ("elasticsearch/es-indexer.api-key",),
    "admin": ("elasticsearch/admin.password",),
}


def compose(*args: str, env: dict[str, str] | None = None, timeout: float = 400) -> str:
    result = subprocess.run(
        ["docker", "compose", *PROJECT, *args],
        cwd=ROOT,
        # the archiver publishes its files every 5 s instead of 30
        env={
            **os.environ,
            "CLICKFAN_SECURE_PORT_PREFIX": PREFIX,
            "CLICKFAN_HDFS_ROLL_S": "5",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"docker compose {' '.join(args)}:\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class SecureCompose:
    settings: Settings  # how the host reaches the stack (secure home: a copy of the volume)
    secrets: Path  # that copy


def copy_secure_home(dest: Path, service: str = "secure-init") -> Path:
    """A container's <home>/secure copied out (running or exited); secure-init's is the
    whole `secrets` volume, an app's its own share."""
    container = compose("ps", "-a", "-q", service).split()[0]
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    subprocess.run(
        ["docker", "cp", f"{container}:{CONTAINER_HOME}/secure", str(dest)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return dest / "secure"


def host_client_config(settings: Settings, user: str) -> kafka_client.KafkaClientConfig:
    """A user's client file as the containers have it, its CA path moved to the host copy."""
    path = kafka_client.clients_dir(settings) / f"{user}.properties"
    text = path.read_text().replace(CONTAINER_HOME, str(settings.home))
    return kafka_client.config_from_text(text, str(path))


@pytest.fixture(scope="module")
def secure_compose(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureCompose]:
    before = kafka_client.active()
    # a fresh project: the exact counts below need an empty topic (the project and its
    # volumes are this test's alone: `clickfan-secure`)
    compose("down", "-v", "--timeout", "20")
    try:
        try:
            compose("up", "-d", "--no-build", "--wait", *SERVERS)
            compose("up", "-d", "--no-build", "--wait", *APPS)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{compose('ps', '-a')}\n{logs_tail()}") from None
        home = tmp_path_factory.mktemp("secure-compose-home")
        secrets = copy_secure_home(home)
        settings = load(
            {
                "CLICKFAN_HOME": str(home),
                "CLICKFAN_SECURE": "1",
                **compose_ports(),
            }
        )
        kafka_client.activate(host_client_config(settings, "admin"))
        yield SecureCompose(settings, secrets)
    finally:
        kafka_client.activate(before)
        if not request.config.getoption("--keep-stack"):
            compose("down", "-v", "--timeout", "20")


def logs_tail(lines: int = 15) -> str:
    return compose("logs", "--no-color", "--tail", str(lines))


def compose_ports() -> dict[str, str]:
    """The CLICKFAN_*_PORT(S) variables every container of the project has."""
    config = json.loads(compose("config", "--format", "json"))
    env = config["services"]["kafka-1"]["environment"]
    return {k: v for k, v in env.items() if k.startswith("CLICKFAN_") and "PORT" in k}


def test_secure_demo_delivers_every_event_exactly_once_to_both_sinks(
    secure_compose: SecureCompose,
) -> None:
    """`up demo`: the producer container writes N records as `producer` (SASL_SSL); each
    worker container reads them as its own user; every valid event is once in
    Elasticsearch and once in HDFS, every other one dead-lettered once per group."""
    s = secure_compose.settings
    names = Names.defaults(s)
    assert s.kafka_ports == tuple(int(f"{PREFIX}{p}") for p in (192, 193, 194))
    compose(
        "up",
        "-d",
        "--no-build",
        "demo",
        env={"CLICKFAN_DEMO_COUNT": str(EVENTS), "CLICKFAN_DEMO_RATE": "1000"},
    )
    wait_until(
        lambda: "exited (0)" in compose("ps", "-a", "producer", "--format", "{{.Status}}").lower(),
        300,
        f"the demo's producer to finish its {EVENTS} events",
        lambda: compose("logs", "--tail", "20", "producer"),
    )

    def lags() -> dict[str, int]:
        try:
            return {g: lag(s, g, names.topic) for g in (names.es_group, names.hdfs_group)}
        except KafkaException:
            return {}

    wait_until(
        lambda: lags() == {names.es_group: 0, names.hdfs_group: 0},
        300,
        "both groups to reach lag 0",
        lambda: str(lags()) + compose("logs", "--tail", "20", "es-indexer", "hdfs-archiver"),
    )

    records = read_topic(s, names.topic)
    assert len(records) == EVENTS, "the producer container did not write exactly N records"
    valid: dict[str, tuple[int, int]] = {}
    invalid: set[tuple[int, int]] = set()
    for record in records:
        try:
            event = decode_event(record.value, s.max_event_bytes)
        except InvalidEvent:
            invalid.add((record.partition, record.offset))
            continue
        valid[event["event_id"]] = (record.partition, record.offset)
    assert valid and invalid, "the demo's producer mixes in 1% bad records"
    assert len(valid) + len(invalid) == EVENTS

    indexed = es_ids(s, names)
    assert set(indexed) == set(valid), f"{len(set(valid) - set(indexed))} events not indexed"
    assert max(indexed.values()) == 1, "an event is in two indices"
    archived = check_archive(read_archive(s, names.hdfs_root), names.topic, valid)
    assert set(archived) == set(valid.values()) and max(archived.values()) == 1
    assert leftovers(s, names.hdfs_root) == []
    for group in (names.es_group, names.hdfs_group):
        rejected = [source_of(r) for r in dead_letters(s, names, group)]
        assert sorted(rejected) == sorted(invalid), f"{group}'s dead letters"

    # the demo container watches as admin and serves the dashboard on its own port
    demo_log = compose("logs", "demo")
    assert f"dashboard: http://{s.host}:{s.dashboard_port}/" in demo_log
    wait_until(
        lambda: "lag es-indexer 0" in compose("logs", "demo"),
        60,
        "the demo to show es-indexer at lag 0",
        lambda: compose("logs", "--tail", "5", "demo"),
    )


QUIET = logging.getLogger(f"{__name__}.refused")  # librdkafka's retries are expected here
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def _refused_metadata(config: dict[str, object]) -> set[str]:
    """The errors a client with ``config`` meets when it asks for metadata (it must not
    get any)."""
    errors: set[str] = set()
    admin = AdminClient(
        {
            "socket.timeout.ms": 5000,
            "logger": QUIET,
            "error_cb": lambda err: errors.add(err.name()),
            **config,
        }
    )
    try:
        metadata = admin.list_topics(timeout=8)
    except KafkaException as exc:
        admin.poll(1)  # serves error_cb
        return errors | {exc.args[0].name()}
    raise AssertionError(f"metadata given to {config.get('security.protocol')}: {metadata}")


def test_plaintext_anonymous_and_unauthorised_clients_are_refused(
    secure_compose: SecureCompose,
) -> None:
    s = secure_compose.settings
    broker = f"{s.host}:{s.kafka_ports[0]}"
    ca = str(clients.local_ca(s))
    # Kafka: no TLS; TLS but no login; a wrong password
    _refused_metadata({"bootstrap.servers": broker})
    _refused_metadata(
        {"bootstrap.servers": broker, "security.protocol": "ssl", "ssl.ca.location": ca}
    )
    producer = host_client_config(s, "producer")
    wrong = producer.confluent(broker, {"sasl.password": uuid.uuid4().hex})
    assert "_AUTHENTICATION" in _refused_metadata(wrong)
    # the right password, outside its ACLs: the producer may not even see the DLQ
    as_producer = AdminClient(producer.confluent(broker))
    assert as_producer.list_topics(s.topic, timeout=15).topics[s.topic].error is None
    dlq = as_producer.list_topics(s.dlq_topic, timeout=15).topics[s.dlq_topic]
    assert dlq.error is not None and dlq.error.name() == "TOPIC_AUTHORIZATION_FAILED"

    # Elasticsearch: TLS only, and nobody without a password
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{s.host}:{s.es_port}/", timeout=10)
    answer = requests.get(f"https://{s.host}:{s.es_port}/", verify=ca, timeout=10)
    assert answer.status_code == 401
    # the indexer's API key may write clicks-* only
    indexer = clients.elasticsearch_http(clients.elasticsearch_connection(s, indexer=True))
    assert (
        indexer.get("/_security/_authenticate")
        .json()["api_key"]["name"]
        .startswith("clickfan-es-indexer")
    )
    index = f"not-{s.index_prefix}-{uuid.uuid4().hex[:8]}"
    outside = indexer.request("PUT", f"/{index}/_doc/1", json={"a": 1})
    assert outside.status_code == 403, outside.text

    # HDFS: the archive belongs to hdfs-archiver; another user may not write in it
    other = clients.webhdfs_client(clients.webhdfs_connection(s))
    with pytest.raises(HdfsError, match="Permission denied"):
        other.write(f"{s.hdfs_root}/intruder-{uuid.uuid4().hex[:8]}", data=b"x")


def _passwords(secrets: Path) -> dict[str, str]:
    found = {
        f"kafka {user}": password
        for user, password in json.loads((secrets / "kafka-passwords.json").read_text()).items()
    }
    for user in (clients.ES_ADMIN_USER, clients.ES_INDEXER_USER):
        found[f"elasticsearch {user}"] = (
            (secrets / "elasticsearch" / f"{user}.password").read_text().strip()
        )
    api_key = secrets / "elasticsearch" / f"{clients.ES_INDEXER_USER}.api-key"
    found["elasticsearch es-indexer API key"] = api_key.read_text().strip()
    assert len(found) == 8 and all(len(p) >= 16 for p in found.values()), sorted(found)
    return found


def test_secrets_are_made_once_and_shown_nowhere(
    secure_compose: SecureCompose, tmp_path: Path
) -> None:
    """No password in the compose model, the containers' configuration, any process's
    argv (the containers' processes are this host's) or the logs; the secure folder is
    0600; and a later `up` (which runs secure-init again) keeps the same secrets."""
    s = secure_compose.settings
    passwords = _passwords(secure_compose.secrets)

    compose("up", "-d", "--no-build", "--wait", *APPS)  # secure-init runs once more
    compose("create", "--no-build", "--no-recreate", "producer", "demo")  # their shares
    assert _passwords(copy_secure_home(tmp_path)) == passwords, "secrets made again"

    ids = compose("ps", "-a", "-q").split()
    inspected = json.loads(
        subprocess.run(
            ["docker", "inspect", *ids], check=True, capture_output=True, text=True
        ).stdout
    )
    running = {
        c["Config"]["Labels"]["com.docker.compose.service"]: c["State"]["Pid"] for c in inspected
    }
    assert set(SERVERS + APPS) <= {n for n, pid in running.items() if pid}, running
    argv = argv_of_every_process()
    assert {pid for pid in running.values() if pid} <= argv.keys()

    shown = {
        "docker compose config": compose("config"),
        "docker inspect": json.dumps(inspected),
        "docker compose logs": compose("logs", "--no-color"),
        **{f"argv of pid {pid}": line for pid, line in argv.items()},
    }
    leaks = [
        f"{what} in {where}"
        for where, text in shown.items()
        for what, password in passwords.items()
        if password in text
    ]
    assert not leaks, leaks

    # the secure folder inside the containers: every file its owner's alone, and each
    # app container holds only its own user's share
    find = ["find", f"{CONTAINER_HOME}/secure", "-type", "f", "-printf", "%m %p\n"]
    modes = compose("exec", "-T", "elasticsearch", *find).splitlines()
    assert all(m.startswith("600 ") for m in modes), modes
    held = {m.split(f"{CONTAINER_HOME}/secure/", 1)[1] for m in modes}
    assert held >= {
        "ca-key.pem",
        "kafka-passwords.json",
        *(f"clients/{user}.properties" for user in kafka_client.ROLES),
        *(f"elasticsearch/{user}.password" for user in ("admin", "es-indexer")),
        "elasticsearch/es-indexer.api-key",
    }, held
    for service, user in SHARES.items():
        share = copy_secure_home(tmp_path / service, service)
        files = {p for p in share.rglob("*") if p.is_file()}
        assert {str(p.relative_to(share)) for p in files} == {
            "ca.pem",
            f"clients/{user}.properties",
            *ES_SHARES.get(user, ()),
        }, service
        assert {p.stat().st_mode & 0o777 for p in files} == {0o600}, service
    assert s.secure
