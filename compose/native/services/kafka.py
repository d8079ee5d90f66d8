"""Kafka brokers in KRaft combined mode, and the classpath Kafka's own tools run from.

With ``settings.secure`` (`clickfan up --secure`) the brokers listen SASL_SSL only:
TLS from the local CA (compose/native/pki.py), SCRAM-SHA-512 users created when
the storage is formatted (`kafka-storage format --add-scram`), the controller
listener SASL_SSL too (PLAIN there: a controller must authenticate its peers
before the metadata holding the SCRAM credentials is loaded), and the
StandardAuthorizer with `admin` as the only super user; the ACLs of the other
users are in compose/native/kafka_acls.py. Passwords are generated once, kept
0600 in <home>/secure/kafka-passwords.json, and never passed on a command line.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import tempfile
from pathlib import Path

from clickfan import kafka_client
from clickfan.compose.native import artifacts, pki
from clickfan.compose.native.process import LaunchSpec
from clickfan.compose.native.services.base import Probe, Service
from clickfan.errors import ClickfanError
from clickfan.settings import Settings

SCRAM = "SCRAM-SHA-512"
SECURE_LISTENER = "SASL_SSL"


def _jaas(module: str, user: str, password: str, **extra: str) -> str:
    options = " ".join(
        f'{k}="{v}"' for k, v in {"username": user, "password": password, **extra}.items()
    )
    return f"org.apache.kafka.common.security.{module} required {options};"


def kafka_passwords(settings: Settings) -> dict[str, str]:
    """Each secure-profile user's password: generated the first time, then kept (0600)."""
    path = pki.secure_dir(settings) / "kafka-passwords.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    wanted = {u: known.get(u) or secrets.token_urlsafe(24) for u in kafka_client.ROLES}
    if wanted != known:
        pki.write_secret(path, json.dumps(wanted, indent=2))
    return wanted


def broker_certificate(settings: Settings) -> pki.CertPaths:
    return pki.issue_certificate(settings, "kafka", [settings.host, "localhost"])


def write_client_files(settings: Settings, bootstrap: str) -> dict[str, Path]:
    """<home>/secure/clients/<user>.properties: Kafka's own client format, for every user.

    The same file works for clickfan (`--kafka-config`) and for Kafka's tools
    (`clickfan kafka kafka-console-producer --producer.config FILE`, `--command-config`).
    """
    ca = pki.ensure_ca(settings)
    folder = kafka_client.clients_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    written = {}
    for user, password in kafka_passwords(settings).items():
        path = folder / f"{user}.properties"
        pki.write_secret(
            path,
            _properties(
                {
                    "bootstrap.servers": bootstrap,
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanism": SCRAM,
                    "sasl.jaas.config": _jaas("scram.ScramLoginModule", user, password),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": ca,
                }
            ),
        )
        written[user] = path
    return written


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class KafkaBroker(Service):
    """A Kafka broker in KRaft combined mode (broker and controller in one JVM)."""

    kind = "kafka"

    def __init__(
        self,
        settings: Settings,
        name: str,
        node_id: int,
        port: int,
        controller_port: int,
        voters: list[tuple[int, int]],
        cluster_id: str,
        replication_factor: int,
    ) -> None:
        super().__init__(settings, name)
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        self.voters = voters
        self.cluster_id = cluster_id
        self.replication_factor = replication_factor

    @property
    def ports(self) -> dict[str, int]:
        return {f"{self.name} client": self.port, f"{self.name} controller": self.controller_port}

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "conf" / "server.properties"

    def listener_properties(self) -> dict[str, object]:
        host = self.settings.host
        if not self.settings.secure:
            return {
                "listeners": f"PLAINTEXT://{host}:{self.port},"
                f"CONTROLLER://{host}:{self.controller_port}",
                "advertised.listeners": f"PLAINTEXT://{host}:{self.port}",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            }
        cert = broker_certificate(self.settings)
        admin = kafka_passwords(self.settings)["admin"]
        listener = SECURE_LISTENER.lower()
        return {
            "listeners": f"{SECURE_LISTENER}://{host}:{self.port},"
            f"CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"{SECURE_LISTENER}://{host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": SECURE_LISTENER,
            "listener.security.protocol.map": f"{SECURE_LISTENER}:SASL_SSL,CONTROLLER:SASL_SSL",
            "sasl.enabled.mechanisms": SCRAM,
            "sasl.mechanism.inter.broker.protocol": SCRAM,
            f"listener.name.{listener}.sasl.enabled.mechanisms": SCRAM,
            f"listener.name.{listener}.scram-sha-512.sasl.jaas.config": _jaas(
                "scram.ScramLoginModule", "admin", admin
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": _jaas(
                "plain.PlainLoginModule", "admin", admin, user_admin=admin
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": cert.bundle,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": pki.ensure_ca(self.settings),
            "ssl.endpoint.identification.algorithm": "https",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin",
            "allow.everyone.if.no.acl.found": "false",
        }

    def server_properties(self) -> dict[str, object]:
        host = self.settings.host
        rf = self.replication_factor
        return {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            "controller.quorum.voters": ",".join(f"{n}@{host}:{p}" for n, p in self.voters),
            **self.listener_properties(),
            "log.dirs": self.log_dir,
            "num.partitions": self.settings.partitions,
            "default.replication.factor": rf,
            "min.insync.replicas": min(self.settings.min_insync_replicas, rf),
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 12,  # 50 by default: slow to create on 2 cores
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min(2, rf),
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": 0,  # a demo and tests want quick joins
            # retention shows within seconds, not after Kafka's default 5 minutes
            "log.retention.check.interval.ms": 10000,
            "num.network.threads": 2,
            "num.io.threads": 4,
        }

    def prepare(self, java: str) -> None:
        conf = self.config_file.parent
        conf.mkdir(parents=True, exist_ok=True)
        # 0600 always: the secure profile's holds the admin password
        pki.write_secret(self.config_file, _properties(self.server_properties()))
        (conf / "log4j2.properties").write_text(KAFKA_LOG4J2)
        if not (self.log_dir / "meta.properties").exists():
            self._format(java)

    def _format(self, java: str) -> None:
        args = [
            "-cp",
            kafka_classpath(self.settings),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(self.config_file),
            "--ignore-formatted",
        ]
        if self.settings.secure:
            for user, password in kafka_passwords(self.settings).items():
                args += ["--add-scram", f"{SCRAM}=[name={user},password={password}]"]
        # the arguments go in a 0600 @argfile, so no password is ever on a command line
        fd, argfile = tempfile.mkstemp(prefix="format-", suffix=".args", dir=self.data_dir)
        try:
            with os.fdopen(fd, "w") as out:
                out.write("\n".join(_argfile_quote(a) for a in args) + "\n")
            result = subprocess.run(
                [java, f"@{argfile}"], capture_output=True, text=True, check=False
            )
        finally:
            os.unlink(argfile)
        if result.returncode != 0:
            output = (result.stderr or result.stdout)[-800:]
            raise ClickfanError(f"formatting {self.name}'s storage failed: {output}")

    def launch_spec(self, java: str) -> LaunchSpec:
        heap = self.settings.kafka_heap
        return self._spec(
            [
                java,
                self.marker,
                f"-Xms{heap}",
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.config_file.parent / 'log4j2.properties'}",
                "-cp",
                kafka_classpath(self.settings),
                "kafka.Kafka",
                str(self.config_file),
            ]
        )

    def quorum_leader(self) -> int | None:
        """The controller-quorum leader as this node last recorded it."""
        try:
            state = json.loads((self.log_dir / "__cluster_metadata-0" / "quorum-state").read_text())
        except (OSError, ValueError):
            return None
        leader = state.get("leaderId", -1)
        return leader if leader >= 0 else None

    def probe(self) -> Probe:
        if _tcp_open(self.settings.host, self.port):
            return Probe(True, f"listening on {self.port}")
        return Probe(False, f"port {self.port} not answering")


def _argfile_quote(arg: str) -> str:
    """One argument of a java @argfile: quoted, with backslashes and quotes escaped."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


KAFKA_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = console
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""

# The tools log only warnings, to stderr, as bin/*.sh do with tools-log4j2.yaml.
KAFKA_TOOLS_LOG4J2 = """\
status = error
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = stderr
"""


def kafka_classpath(settings: Settings) -> str:
    return str(artifacts.kafka(settings).libs / "*")


def kafka_brokers(settings: Settings) -> list[KafkaBroker]:
    ids = range(1, len(settings.kafka_ports) + 1)
    voters = list(zip(ids, settings.kafka_controller_ports, strict=True))
    return [
        KafkaBroker(
            settings,
            f"kafka-{node_id}",
            node_id,
            port,
            controller_port,
            voters,
            settings.kafka_cluster_id,
            settings.replication_factor,
        )
        for node_id, port, controller_port in zip(
            ids, settings.kafka_ports, settings.kafka_controller_ports, strict=True
        )
    ]


def extra_kafka_broker(settings: Settings) -> KafkaBroker:
    """The one-broker second cluster, for the multi-cluster lag view."""
    port, controller = settings.extra_kafka_port, settings.extra_kafka_controller_port
    cluster_id = settings.kafka_cluster_id[:-1] + "2"
    return KafkaBroker(
        settings, "kafka-extra", 1, port, controller, [(1, controller)], cluster_id, 1
    )
