"""The native stack as a user meets it: topics, brokers, Elasticsearch, HDFS, status."""

from __future__ import annotations

import json
import os
import re
import signal
import uuid

import requests
from hdfs import InsecureClient

from clickfan.compose.native import stack as native_stack
from clickfan.settings import Settings
from tests.support import clickfan, wait_for


def _status(settings: Settings) -> tuple[int, dict]:
    result = clickfan("status", "--json")
    return result.returncode, json.loads(result.stdout)


def _service(report: dict, name: str) -> dict:
    return next(s for s in report["services"] if s["name"] == name)


def test_click_logs_topic_as_kafka_topics_describes_it(stack: Settings) -> None:
    result = clickfan(
        "kafka",
        "kafka-topics",
        "--bootstrap-server",
        stack.bootstrap_servers,
        "--describe",
        "--topic",
        stack.topic,
    )
    assert result.returncode == 0, result.stderr
    header, *partitions = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert f"PartitionCount: {stack.partitions}" in header
    assert f"ReplicationFactor: {stack.replication_factor}" in header
    assert f"min.insync.replicas={stack.min_insync_replicas}" in header
    assert len(partitions) == stack.partitions
    for line in partitions:
        replicas = re.search(r"Replicas: ([\d,]+)", line).group(1).split(",")
        isr = re.search(r"Isr: ([\d,]+)", line).group(1).split(",")
        assert sorted(replicas) == ["1", "2", "3"], line
        assert sorted(isr) == ["1", "2", "3"], line


def test_dead_letter_topic_exists(stack: Settings) -> None:
    result = clickfan(
        "kafka", "kafka-topics", "--bootstrap-server", stack.bootstrap_servers, "--list"
    )
    assert result.returncode == 0, result.stderr
    assert stack.dlq_topic in result.stdout.split()


def test_three_brokers_answer_and_quorum_has_a_leader(stack: Settings) -> None:
    versions = clickfan(
        "kafka", "kafka-broker-api-versions", "--bootstrap-server", stack.bootstrap_servers
    )
    assert versions.returncode == 0, versions.stderr
    ids = set(re.findall(r"\(id: (\d+) rack", versions.stdout))
    assert ids == {"1", "2", "3"}
    quorum = clickfan(
        "kafka",
        "kafka-metadata-quorum",
        "--bootstrap-server",
        stack.bootstrap_servers,
        "describe",
        "--status",
    )
    assert quorum.returncode == 0, quorum.stderr
    leader = int(re.search(r"LeaderId:\s+(\d+)", quorum.stdout).group(1))
    assert leader in (1, 2, 3)
    voters = re.search(r"CurrentVoters:\s+(.*)", quorum.stdout).group(1)
    assert {int(v) for v in re.findall(r'"id":\s*(\d+)', voters)} == {1, 2, 3}


def test_document_indexed_in_elasticsearch_is_found(stack: Settings, names) -> None:
    index = f"{names.index_prefix}-smoke"
    doc_id = str(uuid.uuid4())
    put = requests.put(
        f"{stack.es_url}/{index}/_doc/{doc_id}?refresh=true",
        json={"event_id": doc_id, "event_type": "click"},
        timeout=30,
    )
    assert put.status_code == 201, put.text
    try:
        hits = requests.post(
            f"{stack.es_url}/{index}/_search",
            json={"query": {"term": {"event_id.keyword": doc_id}}},
            timeout=30,
        ).json()["hits"]["hits"]
        assert [h["_id"] for h in hits] == [doc_id]
    finally:
        requests.delete(f"{stack.es_url}/{index}", timeout=30)


def test_file_written_over_webhdfs_reads_back_through_hdfs_cat(stack: Settings, names) -> None:
    client = InsecureClient(stack.webhdfs_url, user=stack.hdfs_user)
    path = f"{names.hdfs_root}/smoke.txt"
    payload = f"written over WebHDFS {uuid.uuid4()}\n"
    client.write(path, data=payload.encode(), overwrite=True)
    try:
        cat = clickfan("hdfs", "dfs", "-cat", path)
        assert cat.returncode == 0, cat.stderr
        assert cat.stdout == payload
    finally:
        client.delete(names.hdfs_root, recursive=True)


def test_up_again_changes_nothing(stack: Settings) -> None:
    _, before = _status(stack)
    result = clickfan("up")
    assert result.returncode == 0, result.stderr
    assert "nothing changed" in result.stderr
    _, after = _status(stack)
    assert [s["pid"] for s in after["services"]] == [s["pid"] for s in before["services"]]


def test_killed_broker_shows_down_and_start_brings_it_back_into_the_isr(
    stack: Settings, names
) -> None:
    code, report = _status(stack)
    assert code == 0 and report["healthy"]
    victim = _service(report, "kafka-3")
    os.kill(victim["pid"], signal.SIGKILL)
    try:

        def reported_down() -> tuple[int, dict] | None:
            code, report = _status(stack)
            return (code, report) if _service(report, "kafka-3")["state"] == "down" else None

        code, report = wait_for("status to report kafka-3 down", reported_down)
        assert code == 1
        assert not report["healthy"]
        assert _service(report, "kafka-1")["state"] == "healthy"  # the others are fine
    finally:
        started = clickfan("start", "kafka-3")
    assert started.returncode == 0, started.stderr

    admin = native_stack.admin_client(stack.bootstrap_servers)

    def isr_complete() -> bool:
        topic = admin.list_topics(names.topic, timeout=10).topics[names.topic]
        return all(sorted(p.isrs) == [1, 2, 3] for p in topic.partitions.values())

    wait_for("kafka-3 back in the ISR of every partition", isr_complete, timeout=120, pause=1)
    code, report = _status(stack)
    assert code == 0, report
