"""Burrow's v3 API and /metrics over an in-memory storage (aiohttp's test client)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from clickfan.lagmon import config as lagconfig
from clickfan.lagmon.evaluator import Evaluator
from clickfan.lagmon.httpserver import make_app
from clickfan.lagmon.storage import Storage
from clickfan.settings import Settings

NOW = 1_000_000
SEEN = NOW + 250  # when the monitor read each commit: Burrow's observedAt


@pytest.fixture
def app() -> Callable[[], web.Application]:
    """A fresh app (an aiohttp app serves one test server) over one storage."""
    storage = Storage(window=3, clock=lambda: SEEN)
    for cluster in ("local", "extra"):
        storage.add_cluster(cluster)
    storage.set_topic_offsets("local", {"clicks": [100, 50], "idle": [0]})
    # "lagging": lag grows on every commit of partition 0 -> WARN
    for i, (offset, end) in enumerate([(10, 40), (20, 60), (30, 100)]):
        storage.set_topic_offsets("local", {"clicks": [end, 50], "idle": [0]})
        storage.add_commit("local", "lagging", "clicks", 0, offset, NOW - 3000 + i * 1000)
    storage.add_commit("local", "lagging", "clicks", 1, 50, NOW - 1000)
    storage.set_owners("local", "lagging", {("clicks", 0): ("/127.0.0.1", "consumer-1")})
    storage.set_topic_offsets("extra", {"other": [5]})
    storage.add_commit("extra", "elsewhere", "other", 0, 5, NOW)
    config = dataclasses.replace(
        lagconfig.defaults(Settings()),
        clusters=(
            lagconfig.ClusterConfig("local", ("127.0.0.1:9092",)),
            lagconfig.ClusterConfig("extra", ("127.0.0.1:9095",)),
        ),
    )
    evaluator = Evaluator(storage, clock=lambda: NOW)
    return lambda: make_app(storage, evaluator, config)


def get(app: Callable[[], web.Application], path: str) -> tuple[int, str, str]:
    async def call() -> tuple[int, str, str]:
        async with TestClient(TestServer(app())) as client:
            response = await client.get(path)
            return response.status, response.headers["Content-Type"], await response.text()

    return asyncio.run(call())


def get_json(app: Callable[[], web.Application], path: str, expect: int = 200) -> dict[str, Any]:
    status, content_type, text = get(app, path)
    assert status == expect, text
    assert content_type.startswith("application/json")
    body = json.loads(text)
    if "request" in body:
        assert body["request"] == {"url": path, "host": socket.gethostname()}
    return body


def test_admin_is_burrows_healthcheck(app: Callable[[], web.Application]) -> None:
    assert get(app, "/burrow/admin")[::2] == (200, "GOOD")


def test_cluster_list_and_detail(app: Callable[[], web.Application]) -> None:
    body = get_json(app, "/v3/kafka")
    assert body["error"] is False
    assert body["message"] == "cluster list returned"
    assert body["clusters"] == ["extra", "local"]
    detail = get_json(app, "/v3/kafka/extra")
    assert detail["module"]["servers"] == ["127.0.0.1:9095"]
    assert detail["module"]["class-name"] == "kafka"


def test_topics(app: Callable[[], web.Application]) -> None:
    assert get_json(app, "/v3/kafka/local/topic")["topics"] == ["clicks", "idle"]
    body = get_json(app, "/v3/kafka/local/topic/clicks")
    assert (body["message"], body["offsets"]) == ("topic offsets returned", [100, 50])
    assert get_json(app, "/v3/kafka/local/topic/clicks/consumers")["consumers"] == ["lagging"]


def test_consumers_of_each_cluster(app: Callable[[], web.Application]) -> None:
    assert get_json(app, "/v3/kafka/local/consumer")["consumers"] == ["lagging"]
    assert get_json(app, "/v3/kafka/extra/consumer")["consumers"] == ["elsewhere"]


def test_consumer_detail_has_the_windows(app: Callable[[], web.Application]) -> None:
    body = get_json(app, "/v3/kafka/local/consumer/lagging")
    assert body["message"] == "consumer detail returned"
    p0, p1 = body["topics"]["clicks"]
    assert p0["offsets"] == [
        {"offset": 10, "timestamp": NOW - 3000, "observedAt": SEEN, "lag": 30},
        {"offset": 20, "timestamp": NOW - 2000, "observedAt": SEEN, "lag": 40},
        {"offset": 30, "timestamp": NOW - 1000, "observedAt": SEEN, "lag": 70},
    ]
    assert (p0["owner"], p0["client_id"], p0["current-lag"]) == ("/127.0.0.1", "consumer-1", 70)
    assert p1["offsets"] == [
        None,
        None,
        {"offset": 50, "timestamp": NOW - 1000, "observedAt": SEEN, "lag": 0},
    ]


def test_status_shows_only_partitions_not_ok_and_lag_shows_all(
    app: Callable[[], web.Application],
) -> None:
    status = get_json(app, "/v3/kafka/local/consumer/lagging/status")["status"]
    assert status["status"] == "WARN"
    assert [(p["partition"], p["status"]) for p in status["partitions"]] == [(0, "WARN")]
    assert (status["partition_count"], status["totallag"]) == (2, 70)
    assert status["maxlag"]["partition"] == 0
    assert status["complete"] == 0.5
    body = get_json(app, "/v3/kafka/local/consumer/lagging/lag")
    assert body["message"] == "consumer status returned"
    lag = body["status"]
    assert [(p["partition"], p["status"], p["current_lag"]) for p in lag["partitions"]] == [
        (0, "WARN", 70),
        (1, "OK", 0),
    ]
    assert lag["partitions"][0]["start"] == {
        "offset": 10,
        "timestamp": NOW - 3000,
        "observedAt": SEEN,
        "lag": 30,
    }


@pytest.mark.parametrize(
    "path",
    [
        "/v3/kafka/nope",
        "/v3/kafka/nope/topic",
        "/v3/kafka/local/topic/nope",
        "/v3/kafka/nope/consumer",
        "/v3/kafka/local/consumer/nope",
        "/v3/kafka/extra/consumer/lagging",
    ],
)
def test_unknown_cluster_topic_or_group_is_404_with_the_error_envelope(
    app: Callable[[], web.Application], path: str
) -> None:
    body = get_json(app, path, expect=404)
    assert body["error"] is True
    assert "not found" in body["message"]


@pytest.mark.parametrize("suffix", ["status", "lag"])
def test_unknown_groups_status_is_404_and_notfound(
    app: Callable[[], web.Application], suffix: str
) -> None:
    body = get_json(app, f"/v3/kafka/local/consumer/nope/{suffix}", expect=404)
    assert body["error"] is True
    assert body["status"]["status"] == "NOTFOUND"
    assert body["status"]["partitions"] == []


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/v3/kafka/bad%20name", "cluster"),
        ("/v3/kafka/bad!/consumer", "cluster"),
        ("/v3/kafka/local/topic/no%20spaces", "topic"),
        ("/v3/kafka/local/topic/" + "x" * 250, "topic"),
        ("/v3/kafka/local/topic/caf%C3%A9", "topic"),
        ("/v3/kafka/local/consumer/bad%0Agroup/status", "group"),
    ],
)
def test_names_that_cannot_be_kafka_names_are_400(
    app: Callable[[], web.Application], path: str, what: str
) -> None:
    status, _, text = get(app, path)
    assert status == 400, text
    body = json.loads(text)
    assert body["error"] is True
    assert body["message"].startswith(f"invalid {what} name")


def test_unknown_path_is_burrows_catch_all(app: Callable[[], web.Application]) -> None:
    status, _, text = get(app, "/v2/kafka")
    assert status == 404
    assert json.loads(text) == {"error": True, "message": "invalid request type", "result": {}}


def test_metrics(app: Callable[[], web.Application]) -> None:
    status, content_type, text = get(app, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    group = {"cluster": "local", "consumer_group": "lagging"}
    assert value("burrow_kafka_consumer_lag_total", **group) == 70
    assert value("clickfan_kafka_consumer_records_lag_max", **group) == 70
    assert value("burrow_kafka_consumer_status", **group) == 2  # WARN
    partition = {**group, "topic": "clicks", "partition": "0"}
    assert value("burrow_kafka_consumer_partition_lag", **partition) == 70
    assert value("burrow_kafka_consumer_current_offset", **partition) == 30
    topic = {"cluster": "local", "topic": "clicks", "partition": "1"}
    assert value("burrow_kafka_topic_partition_offset", **topic) == 50
    assert value("burrow_kafka_consumer_status", cluster="extra", consumer_group="elsewhere") == 1


def test_a_group_with_members_and_no_commits_is_warn_with_the_whole_log() -> None:
    storage = Storage(window=3)
    storage.add_cluster("local")
    storage.set_topic_offsets("local", {"clicks": [100, 50]}, starts={"clicks": [20, 0]})
    storage.set_members("local", {"joined": {("clicks", 0): ("/127.0.0.1", "c0")}})
    config = dataclasses.replace(
        lagconfig.defaults(Settings()),
        clusters=(lagconfig.ClusterConfig("local", ("127.0.0.1:9092",)),),
    )
    app = lambda: make_app(storage, Evaluator(storage, clock=lambda: NOW), config)  # noqa: E731
    status = get_json(app, "/v3/kafka/local/consumer/joined/status")["status"]
    assert (status["status"], status["totallag"]) == ("WARN", 80)
    (p,) = status["partitions"]
    assert (p["status"], p["current_lag"], p["end"], p["note"]) == (
        "WARN",
        80,
        None,
        "no commits yet",
    )
    detail = get_json(app, "/v3/kafka/local/consumer/joined")["topics"]["clicks"]
    # as in Burrow, every partition of the topic is listed; only partition 0 is owned
    assert [(q["offsets"], q["current-lag"], q["owner"]) for q in detail] == [
        ([], 80, "/127.0.0.1"),
        ([], 0, ""),
    ]
    samples = {
        (s.name, s.labels.get("partition")): s.value
        for family in text_string_to_metric_families(get(app, "/metrics")[2])
        for s in family.samples
        if s.labels.get("consumer_group") == "joined"
    }
    assert samples[("burrow_kafka_consumer_status", None)] == 2  # WARN
    assert samples[("burrow_kafka_consumer_partition_lag", "0")] == 80
    assert ("burrow_kafka_consumer_current_offset", "0") not in samples  # Kafka's "-"
