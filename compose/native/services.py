"""The services of the native stack: how each is configured, launched and probed.

One class per kind of server. Each knows its ports, writes its own
configuration files, builds its command line from the cached artifacts, and
answers `probe()` with whether it is really healthy (not merely running).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import requests

from clickfan.compose.native import artifacts
from clickfan.compose.native.process import LaunchSpec
from clickfan.errors import ClickfanError
from clickfan.settings import Settings

# Hadoop 3.x on Java 17 needs these, as hadoop-env.sh adds them in the distribution.
HADOOP_JAVA17_OPENS = [
    f"--add-opens=java.base/{pkg}=ALL-UNNAMED"
    for pkg in (
        "java.lang",
        "java.lang.reflect",
        "java.io",
        "java.net",
        "java.nio",
        "java.util",
        "java.util.concurrent",
        "java.util.concurrent.atomic",
        "sun.nio.ch",
        "sun.net.dns",
        "sun.net.util",
    )
]


@dataclass(frozen=True)
class Probe:
    healthy: bool
    detail: str


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _hadoop_xml(values: dict[str, object]) -> str:
    props = "".join(
        f"  <property><name>{k}</name><value>{v}</value></property>\n" for k, v in values.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{props}</configuration>\n'


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class Service:
    """A server process of the stack."""

    name: str
    kind: str

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.home / "run" / f"{self.name}.pid"

    @property
    def marker(self) -> str:
        """Carried on the command line so a pid can be recognised as this service."""
        return f"-Dclickfan.service={self.name}@{self.settings.home}"

    @property
    def ports(self) -> dict[str, int]:
        raise NotImplementedError

    def prepare(self, java: str) -> None:
        """Write configuration, and initialise storage the first time."""
        raise NotImplementedError

    def launch_spec(self, java: str) -> LaunchSpec:
        raise NotImplementedError

    def probe(self) -> Probe:
        raise NotImplementedError

    def _spec(self, argv: list[str], **extra: object) -> LaunchSpec:
        return LaunchSpec(
            name=self.name,
            argv=argv,
            marker=self.marker,
            log_file=self.log_file,
            pid_file=self.pid_file,
            cwd=self.data_dir,
            **extra,
        )


# --------------------------------------------------------------------- Kafka


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


# ------------------------------------------------------------- Elasticsearch


class Elasticsearch(Service):
    """One Elasticsearch node, run as an unprivileged user when clickfan runs as root."""

    kind = "elasticsearch"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "elasticsearch")
        self.run_as = settings.es_user if os.geteuid() == 0 else None

    @property
    def data_dir(self) -> Path:
        if self.run_as is None:
            return super().data_dir
        # Elasticsearch refuses to run as root, and root's home (where the cache
        # lives) is closed to other users: as root, the node's install, config
        # and data live in a folder the service user owns, one per CLICKFAN_HOME.
        tag = hashlib.sha1(str(self.settings.home).encode()).hexdigest()[:10]
        return Path("/var/lib/clickfan") / tag / "elasticsearch"

    @property
    def ports(self) -> dict[str, int]:
        return {
            "elasticsearch http": self.settings.es_port,
            "elasticsearch transport": self.settings.es_transport_port,
        }

    @property
    def install_dir(self) -> Path:
        return self.data_dir / f"elasticsearch-{self.settings.elasticsearch_version}"

    @property
    def marker(self) -> str:
        # bin/elasticsearch is a shell script that execs the launcher JVM: the
        # install path is on both command lines (as the script, then es.path.home)
        return str(self.install_dir)

    @property
    def config_dir(self) -> Path:
        return self.data_dir / "config"

    def elasticsearch_yml(self) -> dict[str, object]:
        settings = {
            "cluster.name": "clickfan",
            "node.name": "es-1",
            "network.host": self.settings.host,
            "http.port": self.settings.es_port,
            "transport.port": self.settings.es_transport_port,
            # single-node on loopback keeps production bootstrap checks as warnings
            "discovery.type": "single-node",
            "path.data": str(self.data_dir / "data"),
            "path.logs": str(self.data_dir / "logs"),
            "action.destructive_requires_name": "false",
            # a laptop's disk is often fuller than the default watermarks allow
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        # 8.x integ-test-zips carry x-pack-security, which would switch on TLS
        # and passwords; builds without it reject any xpack.* setting.
        if (self.install_dir / "modules" / "x-pack-security").exists():
            settings["xpack.security.enabled"] = "false"
        return settings

    def prepare(self, java: str) -> None:
        if self.run_as is not None:
            _ensure_user(self.run_as)
        if not (self.install_dir / "bin" / "elasticsearch").exists():
            zip_path = artifacts.elasticsearch_zip(artifacts.elasticsearch(self.settings))
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(self.data_dir)
            for script in (self.install_dir / "bin").iterdir():
                script.chmod(0o755)
            jdk_bin = self.install_dir / "jdk" / "bin"  # absent in integ-test-zips
            if jdk_bin.exists():
                for binary in jdk_bin.iterdir():
                    binary.chmod(0o755)
        if not self.config_dir.exists():
            shutil.copytree(self.install_dir / "config", self.config_dir)
        (self.config_dir / "elasticsearch.yml").write_text(
            "".join(f"{k}: {v}\n" for k, v in self.elasticsearch_yml().items())
        )
        heap = self.settings.es_heap
        (self.config_dir / "jvm.options.d" / "clickfan.options").write_text(
            f"-Xms{heap}\n-Xmx{heap}\n"
        )
        for sub in ("data", "logs", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            subprocess.run(["chown", "-R", f"{self.run_as}:", str(self.data_dir)], check=True)

    def launch_spec(self, java: str) -> LaunchSpec:
        jdk = str(Path(java).parent.parent)
        return self._spec(
            [str(self.install_dir / "bin" / "elasticsearch")],
            env={
                "ES_JAVA_HOME": jdk,
                "ES_PATH_CONF": str(self.config_dir),
                "ES_TMPDIR": str(self.data_dir / "tmp"),
                "HOME": str(self.data_dir),
            },
            user=self.run_as,
        )

    def probe(self) -> Probe:
        try:
            health = requests.get(f"{self.settings.es_url}/_cluster/health", timeout=2).json()
        except (requests.RequestException, ValueError):
            return Probe(False, f"no answer on {self.settings.es_port}")
        status = health.get("status", "?")
        return Probe(status in ("green", "yellow"), f"cluster health {status}")


def _ensure_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClickfanError(
                f"Elasticsearch refuses to run as root and the user {user!r} could not be "
                f"created: {result.stderr.strip()}. Create it, or run clickfan as a normal user."
            ) from None


# ---------------------------------------------------------------------- HDFS


def hadoop_conf_dir(settings: Settings) -> Path:
    return settings.data_dir / "hdfs-conf"


def hadoop_classpath(settings: Settings) -> str:
    art = artifacts.hadoop(settings)
    return os.pathsep.join([str(hadoop_conf_dir(settings)), str(art.root), str(art.libs / "*")])


def core_site(settings: Settings) -> dict[str, object]:
    return {
        "fs.defaultFS": f"hdfs://{settings.host}:{settings.namenode_rpc_port}",
        "hadoop.tmp.dir": settings.data_dir / "hdfs-tmp",
        "hadoop.http.staticuser.user": settings.hdfs_user,
    }


def hdfs_site(settings: Settings) -> dict[str, object]:
    host = settings.host
    return {
        "dfs.replication": 1,
        "dfs.namenode.name.dir": settings.data_dir / "namenode" / "name",
        "dfs.datanode.data.dir": settings.data_dir / "datanode" / "data",
        "dfs.namenode.rpc-address": f"{host}:{settings.namenode_rpc_port}",
        "dfs.namenode.http-address": f"{host}:{settings.namenode_http_port}",
        "dfs.datanode.address": f"{host}:{settings.datanode_port}",
        "dfs.datanode.http.address": f"{host}:{settings.datanode_http_port}",
        "dfs.datanode.ipc.address": f"{host}:{settings.datanode_ipc_port}",
        # WebHDFS redirects clients to the DataNode by this name
        "dfs.datanode.hostname": host,
        "dfs.webhdfs.enabled": "true",
        "dfs.permissions.enabled": "false",
        "dfs.namenode.safemode.extension": 0,
        "dfs.namenode.secondary.http-address": f"{host}:0",
        # a demo's disk may be fuller than the 100 MB default reserve allows
        "dfs.namenode.resource.du.reserved": 10 * 1024 * 1024,
    }


def write_hadoop_conf(settings: Settings) -> None:
    conf = hadoop_conf_dir(settings)
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "core-site.xml").write_text(_hadoop_xml(core_site(settings)))
    (conf / "hdfs-site.xml").write_text(_hadoop_xml(hdfs_site(settings)))
    (conf / "log4j.properties").write_text(HADOOP_LOG4J)


HADOOP_LOG4J = """\
log4j.rootLogger=${hadoop.root.logger}
hadoop.root.logger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
"""


def hadoop_java_argv(
    settings: Settings, java: str, main: str, heap: str | None = None, logger: str = "INFO,console"
) -> list[str]:
    argv = [java]
    if heap:
        argv += [f"-Xms{heap}", f"-Xmx{heap}"]
    return [
        *argv,
        *HADOOP_JAVA17_OPENS,
        f"-Dhadoop.log.dir={settings.data_dir / 'hdfs-logs'}",
        f"-Dhadoop.root.logger={logger}",
        "-cp",
        hadoop_classpath(settings),
        main,
    ]


class NameNode(Service):
    kind = "hdfs"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "namenode")

    @property
    def ports(self) -> dict[str, int]:
        s = self.settings
        return {"namenode rpc": s.namenode_rpc_port, "namenode http": s.namenode_http_port}

    def prepare(self, java: str) -> None:
        write_hadoop_conf(self.settings)
        if not (self.data_dir / "name" / "current" / "VERSION").exists():
            argv = hadoop_java_argv(
                self.settings,
                java,
                "org.apache.hadoop.hdfs.server.namenode.NameNode",
                logger="WARN,console",
            )
            result = subprocess.run(
                [*argv, "-format", "-nonInteractive", "-clusterid", "clickfan"],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise ClickfanError(f"formatting the NameNode failed: {result.stderr[-800:]}")

    def launch_spec(self, java: str) -> LaunchSpec:
        argv = hadoop_java_argv(
            self.settings,
            java,
            "org.apache.hadoop.hdfs.server.namenode.NameNode",
            heap=self.settings.hadoop_heap,
        )
        return self._spec([argv[0], self.marker, *argv[1:]])

    def probe(self) -> Probe:
        url = f"{self.settings.webhdfs_url}/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo"
        try:
            beans = requests.get(url, timeout=2).json().get("beans", [])
        except (requests.RequestException, ValueError):
            return Probe(False, f"no answer on {self.settings.namenode_http_port}")
        if not beans:
            return Probe(False, "starting")
        info = beans[0]
        live = len(json.loads(info.get("LiveNodes") or "{}"))
        if info.get("Safemode"):
            return Probe(False, f"in safe mode, {live} live DataNode(s)")
        if live < 1:
            return Probe(False, "no live DataNode")
        return Probe(True, f"out of safe mode, {live} live DataNode(s)")


class DataNode(Service):
    kind = "hdfs"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "datanode")

    @property
    def ports(self) -> dict[str, int]:
        s = self.settings
        return {
            "datanode http": s.datanode_http_port,
            "datanode data": s.datanode_port,
            "datanode ipc": s.datanode_ipc_port,
        }

    def prepare(self, java: str) -> None:
        write_hadoop_conf(self.settings)
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)

    def launch_spec(self, java: str) -> LaunchSpec:
        argv = hadoop_java_argv(
            self.settings,
            java,
            "org.apache.hadoop.hdfs.server.datanode.DataNode",
            heap=self.settings.hadoop_heap,
        )
        return self._spec([argv[0], self.marker, *argv[1:]])

    def probe(self) -> Probe:
        url = (
            f"http://{self.settings.host}:{self.settings.datanode_http_port}/jmx"
            "?qry=Hadoop:service=DataNode,name=DataNodeInfo"
        )
        try:
            beans = requests.get(url, timeout=2).json().get("beans", [])
        except (requests.RequestException, ValueError):
            return Probe(False, f"no answer on {self.settings.datanode_http_port}")
        if not beans:
            return Probe(False, "starting")
        namenodes = json.loads(beans[0].get("NamenodeAddresses") or "{}")
        return Probe(bool(namenodes), "registered with the NameNode" if namenodes else "starting")


def core_services(settings: Settings) -> list[Service]:
    """The stack of `clickfan up`, in start order."""
    return [
        *kafka_brokers(settings),
        NameNode(settings),
        DataNode(settings),
        Elasticsearch(settings),
    ]


def all_services(settings: Settings, extra_cluster: bool = False) -> list[Service]:
    services = core_services(settings)
    if extra_cluster:
        services.append(extra_kafka_broker(settings))
    return services
