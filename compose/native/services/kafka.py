"""Kafka brokers in KRaft combined mode, and the classpath Kafka's own tools run from."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from clickfan.compose.native import artifacts
from clickfan.compose.native.process import LaunchSpec
from clickfan.compose.native.services.base import Probe, Service
from clickfan.errors import ClickfanError
from clickfan.settings import Settings


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

    def server_properties(self) -> dict[str, object]:
        host = self.settings.host
        rf = self.replication_factor
        return {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            "controller.quorum.voters": ",".join(f"{n}@{host}:{p}" for n, p in self.voters),
            "listeners": f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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
        self.config_file.write_text(_properties(self.server_properties()))
        (conf / "log4j2.properties").write_text(KAFKA_LOG4J2)
        if not (self.log_dir / "meta.properties").exists():
            self._format(java)

    def _format(self, java: str) -> None:
        result = subprocess.run(
            [
                java,
                "-cp",
                kafka_classpath(self.settings),
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                self.cluster_id,
                "--config",
                str(self.config_file),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
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
