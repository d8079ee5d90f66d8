"""Kafka's own command-line tools as the reference for clickfan's numbers.

Each call starts the tool's JVM from the cached jars (a few seconds on two
cores), so experiments call them a handful of times, not in loops.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from clickfan.compose.native.tools import kafka_tool_argv
from clickfan.settings import Settings

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class ToolResult:
    argv: list[str]  # the tool's own arguments, as a user would type them
    returncode: int
    stdout: str
    stderr: str

    @property
    def command(self) -> str:
        return " ".join(self.argv)


def run_kafka_tool(
    settings: Settings, tool: str, args: list[str], timeout: float = 120
) -> ToolResult:
    argv = kafka_tool_argv(settings, tool, args)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return ToolResult([tool, *args], done.returncode, done.stdout, done.stderr)


def parse_reset_offsets(stdout: str) -> dict[TopicPartition, int]:
    """The table of `kafka-consumer-groups --reset-offsets`: GROUP TOPIC PARTITION NEW-OFFSET."""
    result: dict[TopicPartition, int] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2].isdigit() and parts[3].lstrip("-").isdigit():
            result[(parts[1], int(parts[2]))] = int(parts[3])
    return result


def parse_get_offsets(stdout: str) -> dict[TopicPartition, int]:
    """`kafka-get-offsets` prints topic:partition:offset lines."""
    result: dict[TopicPartition, int] = {}
    for line in stdout.splitlines():
        topic, sep, rest = line.strip().rpartition(":")
        if not sep:
            continue
        name, sep2, partition = topic.rpartition(":")
        if sep2 and partition.isdigit() and rest.lstrip("-").isdigit():
            result[(name, int(partition))] = int(rest)
    return result


def reset_offsets_dry_run(
    settings: Settings, group: str, topic: str, target_args: list[str]
) -> tuple[ToolResult, dict[TopicPartition, int]]:
    args = [
        "--bootstrap-server",
        settings.bootstrap_servers,
        "--group",
        group,
        "--topic",
        topic,
        "--reset-offsets",
        *target_args,
        "--dry-run",
    ]
    result = run_kafka_tool(settings, "kafka-consumer-groups", args)
    return result, parse_reset_offsets(result.stdout)


def get_offsets(
    settings: Settings, topic: str, time: str = "earliest"
) -> tuple[ToolResult, dict[TopicPartition, int]]:
    args = ["--bootstrap-server", settings.bootstrap_servers, "--topic", topic, "--time", time]
    result = run_kafka_tool(settings, "kafka-get-offsets", args)
    return result, parse_get_offsets(result.stdout)
