"""compose/docker-compose.yml and the native stack must describe the same topology.

Reads both and fails on any difference in topic, partitions, replication,
ports or server settings. Paths (data folders) are the only allowed difference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from clickfan.compose.native.services.elasticsearch import Elasticsearch
from clickfan.compose.native.services.hdfs import core_site, hdfs_site
from clickfan.compose.native.services.kafka import kafka_brokers
from clickfan.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yml"
PATH_SETTINGS = {
    "log.dirs",
    "path.data",
    "path.logs",
    "hadoop.tmp.dir",
    "dfs.namenode.name.dir",
    "dfs.datanode.data.dir",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()  # the defaults, not this shell's CLICKFAN_* variables


def _kafka_env_name(key: str) -> str:
    return "KAFKA_" + key.upper().replace(".", "_")


def test_same_kafka_brokers_and_settings(compose: dict, settings: Settings) -> None:
    brokers = kafka_brokers(settings)
    compose_brokers = sorted(name for name in compose if re.fullmatch(r"kafka-\d+", name))
    assert compose_brokers == [b.name for b in brokers]
    for broker in brokers:
        env = compose[broker.name]["environment"]
        for key, value in broker.server_properties().items():
            if key in PATH_SETTINGS:
                continue
            assert str(env.get(_kafka_env_name(key))) == str(value), (broker.name, key)
        assert env["CLUSTER_ID"] == settings.kafka_cluster_id
        assert env["KAFKA_HEAP_OPTS"] == f"-Xms{settings.kafka_heap} -Xmx{settings.kafka_heap}"


def test_same_topics(compose: dict, settings: Settings) -> None:
    script = compose["kafka-init"]["command"][0]
    assert f"for topic in {settings.topic} {settings.dlq_topic};" in script
    assert f"--partitions {settings.partitions}" in script
    assert f"--replication-factor {settings.replication_factor}" in script
    assert f"min.insync.replicas={settings.min_insync_replicas}" in script


def test_same_elasticsearch(compose: dict, settings: Settings) -> None:
    env = compose["elasticsearch"]["environment"]
    native = Elasticsearch(settings).elasticsearch_yml()
    native.setdefault("xpack.security.enabled", "false")  # the image has x-pack
    for key, value in native.items():
        if key not in PATH_SETTINGS:
            assert str(env.get(key)) == str(value), key
    assert env["ES_JAVA_OPTS"] == f"-Xms{settings.es_heap} -Xmx{settings.es_heap}"
    assert compose["elasticsearch"]["image"].endswith(f":{settings.elasticsearch_version}")


def test_same_hdfs(compose: dict, settings: Settings) -> None:
    for service in ("namenode", "datanode"):
        env = compose[service]["environment"]
        for prefix, native in (
            ("CORE-SITE.XML_", core_site(settings)),
            ("HDFS-SITE.XML_", hdfs_site(settings)),
        ):
            for key, value in native.items():
                if key not in PATH_SETTINGS:
                    assert str(env.get(prefix + key)) == str(value), (service, key)
        assert env["HADOOP_HEAPSIZE_MAX"] == settings.hadoop_heap


def test_every_service_binds_like_the_native_stack(compose: dict) -> None:
    for name, service in compose.items():
        assert service.get("network_mode") == "host", name
