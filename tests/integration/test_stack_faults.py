"""Bad input to the stack commands: a clear message, nothing left half-started.

Each test runs `clickfan` against its own CLICKFAN_HOME and its own ports, so
the shared stack of the session is never touched.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import psutil
import pytest

from clickfan.settings import load
from tests.support import clickfan

# ports away from the real stack's (and from the ephemeral range)
PORTS = {
    "CLICKFAN_KAFKA_PORTS": "12092,12093,12094",
    "CLICKFAN_KAFKA_CONTROLLER_PORTS": "12192,12193,12194",
    "CLICKFAN_EXTRA_KAFKA_PORT": "12095",
    "CLICKFAN_EXTRA_KAFKA_CONTROLLER_PORT": "12195",
    "CLICKFAN_ES_PORT": "12200",
    "CLICKFAN_ES_TRANSPORT_PORT": "12300",
    "CLICKFAN_NAMENODE_RPC_PORT": "12020",
    "CLICKFAN_NAMENODE_HTTP_PORT": "12870",
    "CLICKFAN_DATANODE_HTTP_PORT": "12864",
    "CLICKFAN_DATANODE_PORT": "12866",
    "CLICKFAN_DATANODE_IPC_PORT": "12867",
}


@pytest.fixture
def isolated(tmp_path: Path):
    """Environment for a separate stack: own home, shared download cache, other ports."""
    env = {
        **PORTS,
        "CLICKFAN_HOME": str(tmp_path / "home"),
        "CLICKFAN_CACHE_DIR": str(load().artifacts_dir),
        "CLICKFAN_START_TIMEOUT_S": "120",
    }
    yield env
    clickfan("down", "--wipe", env=env)


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output, output


def _processes_under(home: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if home in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_taken_port_names_the_port_and_its_process(isolated: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 12093))
        holder.listen()
        result = clickfan("up", env=isolated)
    assert result.returncode == 1
    _no_traceback(result.stderr)
    assert "port 12093" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert not _processes_under(isolated["CLICKFAN_HOME"])


def test_missing_java_is_explained(isolated: dict[str, str], tmp_path: Path) -> None:
    env = {**isolated, "PATH": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    result = clickfan("up", env=env, replace_env=True)
    assert result.returncode == 1
    _no_traceback(result.stderr)
    assert "Java was not found" in result.stderr


def test_old_java_is_explained(isolated: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "jdk11" / "bin"
    fake.mkdir(parents=True)
    (fake / "java").write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    (fake / "java").chmod(0o755)
    result = clickfan("up", env={**isolated, "CLICKFAN_JAVA_HOME": str(fake.parent)})
    assert result.returncode == 1
    _no_traceback(result.stderr)
    assert "is Java 11" in result.stderr and "17" in result.stderr


def test_missing_maven_on_first_start_is_explained(
    isolated: dict[str, str], tmp_path: Path
) -> None:
    from clickfan.compose.native.java import java_home

    env = {
        **isolated,
        "CLICKFAN_CACHE_DIR": str(tmp_path / "empty-cache"),
        "CLICKFAN_JAVA_HOME": str(java_home(load())),
        "PATH": str(tmp_path / "no-tools"),
        "HOME": str(tmp_path),
    }
    result = clickfan("up", env=env, replace_env=True)
    assert result.returncode == 1
    _no_traceback(result.stderr)
    assert "Maven (mvn) was not found" in result.stderr


def test_service_that_fails_to_start_is_named_with_its_log_and_the_rest_is_stopped(
    isolated: dict[str, str],
) -> None:
    env = {**isolated, "CLICKFAN_ES_HEAP": "not-a-size"}
    result = clickfan("up", env=env, timeout=600)
    assert result.returncode == 1
    _no_traceback(result.stderr)
    assert "elasticsearch exited during start-up" in result.stderr
    assert "Invalid initial heap size" in result.stderr  # the JVM's own words, from the log
    assert "has been stopped again" in result.stderr
    leftovers = _processes_under(isolated["CLICKFAN_HOME"])
    assert not leftovers, [p.info["cmdline"][:3] for p in leftovers]


def test_stale_pid_file_does_not_block(isolated: dict[str, str]) -> None:
    run = Path(isolated["CLICKFAN_HOME"]) / "run"
    run.mkdir(parents=True)
    # a live pid that is not a broker: this very test process
    (run / "kafka-1.pid").write_text(f"{os.getpid()}\n")
    result = clickfan("status", "--json", env=isolated)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    kafka_1 = next(s for s in report["services"] if s["name"] == "kafka-1")
    assert kafka_1["state"] == "down" and kafka_1["pid"] is None
    assert not (run / "kafka-1.pid").exists()


def test_unknown_service_lists_the_real_ones(isolated: dict[str, str]) -> None:
    result = clickfan("start", "kafka-9", env=isolated)
    assert result.returncode == 2
    _no_traceback(result.stderr)
    assert "no service named 'kafka-9'" in result.stderr and "kafka-1" in result.stderr


def test_unreadable_setting_is_explained(isolated: dict[str, str]) -> None:
    result = clickfan("status", env={**isolated, "CLICKFAN_ES_PORT": "ninety-two-hundred"})
    assert result.returncode == 2
    _no_traceback(result.stderr)
    assert "CLICKFAN_ES_PORT" in result.stderr


def test_unknown_kafka_tool_lists_the_tools(isolated: dict[str, str]) -> None:
    result = clickfan("kafka", "kafka-nonsense", env=isolated)
    assert result.returncode == 2
    assert "kafka-console-producer" in result.stderr


def test_unreachable_maven_central_on_first_start_is_explained(
    isolated: dict[str, str], tmp_path: Path
) -> None:
    # a Maven whose only repository is a closed local port, with an empty local repo
    m2 = tmp_path / ".m2"
    m2.mkdir()
    (m2 / "settings.xml").write_text(
        "<settings><mirrors><mirror><id>nowhere</id><mirrorOf>*</mirrorOf>"
        "<url>http://127.0.0.1:9/maven2</url></mirror></mirrors></settings>"
    )
    env = {
        **isolated,
        "CLICKFAN_CACHE_DIR": str(tmp_path / "empty-cache"),
        "MAVEN_OPTS": f"-Duser.home={tmp_path}",  # Maven finds ~/.m2 through user.home
    }
    result = clickfan("fetch", env=env)
    assert result.returncode == 1
    _no_traceback(result.stderr)
    assert "could not fetch kafka" in result.stderr
    assert "Maven Central could not be reached" in result.stderr
