"""The Docker leg: compose.yaml's own containers run the pipeline, and survive faults.

Runs with `pytest --stack=docker` (`make test-docker`), after the session fixture has
started the services with `docker compose up -d --wait`. Here the app containers
(both workers, the lag monitor, then the producer and the demo) run on the default
topic and groups, since that is what `docker compose up demo` runs; every fault goes
through Docker: `docker compose kill -s KILL`, `stop`, `start`.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import requests
from confluent_kafka import KafkaException

from clickfan.events import InvalidEvent, decode_event
from clickfan.settings import Settings
from tests.conftest import Names
from tests.integration.pipeline_support import (
    check_archive,
    dead_letters,
    es_ids,
    lag,
    leftovers,
    produce,
    read_archive,
    read_topic,
    source_of,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


def compose(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        ["docker", "compose", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"docker compose {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def both_lags(settings: Settings, names: Names) -> dict[str, int]:
    try:
        return {g: lag(settings, g, names.topic) for g in (names.es_group, names.hdfs_group)}
    except KafkaException:
        return {}


def test_compose_pipeline_survives_kills_and_a_stopped_sink_then_the_demo_adds_up(
    stack: Settings,
) -> None:
    names = Names.defaults(stack)
    compose("up", "-d", "--no-build", "--wait", "es-indexer", "hdfs-archiver", "monitor")

    # kill -9 of a worker container and of a broker container while events arrive
    def faults() -> None:
        time.sleep(3)
        compose("kill", "-s", "KILL", "es-indexer")
        compose("kill", "-s", "KILL", "kafka-2")
        time.sleep(5)
        compose("start", "es-indexer", "kafka-2")

    chaos = threading.Thread(target=faults)
    chaos.start()
    produce(stack, names, 6000, rate=600, bad_fraction=0.01)
    chaos.join()

    # Elasticsearch stopped: the archiver goes on, the indexer holds its offsets
    compose("stop", "elasticsearch")
    try:
        produce(stack, names, 1000, bad_fraction=0.01, seed=8)
        wait_until(
            lambda: both_lags(stack, names).get(names.hdfs_group) == 0,
            240,
            "the archiver to catch up while Elasticsearch is down",
            lambda: str(both_lags(stack, names)),
        )
        assert both_lags(stack, names)[names.es_group] > 0
    finally:
        compose("start", "elasticsearch")

    # the lag monitor in its container answers with Burrow's API
    monitor = f"http://{stack.host}:{stack.monitor_port}/v3/kafka/local/consumer"

    def monitor_sees_es_lag() -> dict | None:
        try:
            doc = requests.get(f"{monitor}/{names.es_group}/lag", timeout=5).json()
        except (requests.RequestException, ValueError):
            return None
        return doc if not doc.get("error") else None

    answer = wait_until(monitor_sees_es_lag, 120, "the lag monitor to report es-indexer")
    assert answer["status"]["group"] == names.es_group

    # `docker compose up demo`: the producer container adds a counted batch
    compose("up", "-d", "--no-build", "demo", env={"CLICKFAN_DEMO_COUNT": "2000"})
    wait_until(
        lambda: "exited (0)" in compose("ps", "-a", "producer", "--format", "{{.Status}}").lower(),
        300,
        "the demo's producer to finish its 2000 events",
        lambda: compose("logs", "--tail", "20", "producer"),
    )
    wait_until(
        lambda: both_lags(stack, names) == {names.es_group: 0, names.hdfs_group: 0},
        300,
        "both groups to reach lag 0",
        lambda: str(both_lags(stack, names)) + compose("logs", "--tail", "20", "es-indexer"),
    )
    demo_log = compose("logs", "demo")
    assert "lag es-indexer 0" in demo_log
    # the demo serves the dashboard on the host's network and says where
    assert f"dashboard: http://{stack.host}:{stack.dashboard_port}" in demo_log
    page = requests.get(f"http://{stack.host}:{stack.dashboard_port}/", timeout=10)
    assert page.status_code == 200 and "clickfan" in page.text

    # every record on the topic: valid ones once in each sink, the rest dead-lettered
    where: dict[str, tuple[int, int]] = {}
    for record in read_topic(stack, names.topic):
        try:
            event = decode_event(record.value, stack.max_event_bytes)
        except InvalidEvent:
            continue
        where[event["event_id"]] = (record.partition, record.offset)
    assert len(where) > 8000
    ids = es_ids(stack, names)
    assert set(ids) == set(where), f"{len(set(where) - set(ids))} events not in Elasticsearch"
    archived = check_archive(read_archive(stack, names.hdfs_root), names.topic, where)
    assert max(archived.values()) == 1, "an offset was archived twice"
    assert set(archived) == set(where.values())
    assert leftovers(stack, names.hdfs_root) == []
    for group in (names.es_group, names.hdfs_group):
        rejected = {source_of(r) for r in dead_letters(stack, names, group)}
        assert not rejected & set(where.values())
    states = json.loads("[" + ",".join(compose("ps", "--format", "json").split("\n")[:-1]) + "]")
    assert {s["Service"] for s in states if s["State"] == "running"} >= {
        "es-indexer",
        "hdfs-archiver",
        "monitor",
        "demo",
    }
