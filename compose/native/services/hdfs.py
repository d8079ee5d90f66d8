"""HDFS: a NameNode and a DataNode with WebHDFS, and the configuration they share.

`hadoop_java_argv` is also how Hadoop's own tools (`clickfan hdfs ...`) are run.

The secure profile (settings.secure) switches permissions on, with simple
authentication (the user name a request states; Kerberos is out of scope): the
archive folder belongs to the archiver's user `hdfs-archiver`, so a write
anywhere else by that user, or into the archive by anyone else, is refused.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import subprocess
from pathlib import Path

import requests
from hdfs import HdfsError

from clickfan.compose.native import artifacts
from clickfan.compose.native.process import LaunchSpec
from clickfan.compose.native.services.base import Probe, Service
from clickfan.errors import ClickfanError
from clickfan.settings import Settings
from clickfan.sinks import clients

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


def _hadoop_xml(values: dict[str, object]) -> str:
    props = "".join(
        f"  <property><name>{k}</name><value>{v}</value></property>\n" for k, v in values.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{props}</configuration>\n'


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
        "dfs.permissions.enabled": "true" if settings.secure else "false",
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

    def after_healthy(self) -> None:
        if self.settings.secure:
            secure_folders(self.settings)


def secure_folders(settings: Settings) -> None:
    """/tmp for everyone (sticky), the archive folder for the archiver alone.

    Done as HDFS's superuser: the user who runs the NameNode (simple auth).
    """
    conn = dataclasses.replace(
        clients.webhdfs_connection(settings, timeout_s=30), user=getpass.getuser()
    )
    client = clients.webhdfs_client(conn)
    root = "/" + settings.hdfs_root.strip("/")
    try:
        client.makedirs("/tmp", permission="1777")
        client.set_permission("/tmp", "1777")
        client.makedirs(root)
        client.set_owner(root, owner=clients.HDFS_ARCHIVER_USER, group=clients.HDFS_ARCHIVER_USER)
        client.set_permission(root, "755")
    except HdfsError as exc:
        raise ClickfanError(
            f"preparing HDFS folders for the secure profile failed: {exc}"
        ) from None


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
