"""Run Apache Kafka's and Hadoop's own command-line tools from the cached jars.

`clickfan kafka kafka-topics ...` behaves as `bin/kafka-topics.sh ...` of the
Kafka distribution would, and `clickfan hdfs dfs -ls /` as Hadoop's `hdfs`.
These are the reference that clickfan's own numbers are checked against.
"""

from __future__ import annotations

import os
from pathlib import Path

from clickfan.compose.native import artifacts
from clickfan.compose.native.java import check_java
from clickfan.compose.native.services.hdfs import hadoop_java_argv, write_hadoop_conf
from clickfan.compose.native.services.kafka import KAFKA_TOOLS_LOG4J2, kafka_classpath
from clickfan.errors import ClickfanError
from clickfan.settings import Settings

# tool name (as bin/<name>.sh) -> main class, as the Kafka 4.x scripts run them
KAFKA_TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "kafka.admin.ConfigCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
    "kafka-dump-log": "kafka.tools.DumpLogSegments",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
    "kafka-storage": "kafka.tools.StorageTool",
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
}

# first argument of `hdfs` -> main class, as Hadoop's bin/hdfs maps them
HDFS_COMMANDS = {
    "dfs": "org.apache.hadoop.fs.FsShell",
    "dfsadmin": "org.apache.hadoop.hdfs.tools.DFSAdmin",
    "fsck": "org.apache.hadoop.hdfs.tools.DFSck",
    "getconf": "org.apache.hadoop.hdfs.tools.GetConf",
    "version": "org.apache.hadoop.util.VersionInfo",
    "classpath": "org.apache.hadoop.util.Classpath",
}


def kafka_tool_argv(settings: Settings, tool: str, args: list[str]) -> list[str]:
    name = tool.removesuffix(".sh")
    if name not in KAFKA_TOOLS:
        raise ClickfanError(
            f"unknown Kafka tool {tool!r}; available: {', '.join(sorted(KAFKA_TOOLS))}",
            exit_code=2,
        )
    _require(artifacts.kafka(settings))
    java = check_java(settings)
    log_config = _tools_log_config(settings)
    return [
        java,
        "-Xmx512m",
        "-XX:+UseSerialGC",  # short-lived tools start faster with it
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        kafka_classpath(settings),
        KAFKA_TOOLS[name],
        *args,
    ]


def hdfs_argv(settings: Settings, args: list[str]) -> list[str]:
    if not args or args[0] not in HDFS_COMMANDS:
        raise ClickfanError(
            f"usage: clickfan hdfs {{{'|'.join(HDFS_COMMANDS)}}} [ARGS]", exit_code=2
        )
    _require(artifacts.hadoop(settings))
    write_hadoop_conf(settings)
    java = check_java(settings)
    argv = hadoop_java_argv(settings, java, HDFS_COMMANDS[args[0]], logger="WARN,console")
    return [*argv, *args[1:]]


def exec_tool(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Replace this process by the tool: stdin, stdout and exit code pass straight through."""
    os.execvpe(argv[0], argv, {**os.environ, **(env or {})})


def _require(artifact: artifacts.Artifact) -> None:
    if not artifact.complete:
        raise ClickfanError(
            f"{artifact.service} {artifact.version} is not in the cache yet: run `clickfan up` "
            "(or `clickfan fetch`) once to download it."
        )


def _tools_log_config(settings: Settings) -> Path:
    path = settings.home / "conf" / "kafka-tools-log4j2.properties"
    if not path.exists() or path.read_text() != KAFKA_TOOLS_LOG4J2:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(KAFKA_TOOLS_LOG4J2)
    return path
