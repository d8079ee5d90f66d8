"""One reading of the pipeline from the real services, for ``state.build_state``.

Kafka through the admin API (metadata for leaders and ISR, log start and end
offsets, group members), lag and statuses from a lag monitor running in this
process (lagmon's Monitor: the same storage and evaluator as `clickfan
monitor`), Elasticsearch and HDFS over HTTP with short timeouts, dead letters
counted per group by a reader of the DLQ. A service that does not answer is
shown as such; it never stops the reading.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import requests
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from clickfan import kafka_client
from clickfan.app.dashboard.state import (
    ElasticInfo,
    GroupReading,
    HdfsInfo,
    PartitionInfo,
    Reading,
)
from clickfan.compose.native import stack
from clickfan.compose.native.services.kafka import kafka_brokers
from clickfan.lagmon.cluster import KafkaCluster
from clickfan.lagmon.monitor import Monitor
from clickfan.lagmon.protocol import Status
from clickfan.settings import Settings
from clickfan.sinks import clients
from clickfan.streams.deadletter import GROUP as DLQ_GROUP_HEADER

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 2.0
KAFKA_TIMEOUT_S = 5.0


class DeadLetterCounter:
    """Counts the DLQ's records per writing group (header clickfan.dlq.group), in a thread.

    Reads every partition from its start without a consumer group (assign, no
    commits), so it disturbs no one and counts what is on the topic now.
    """

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.counts: dict[str, int] = {}
        self._bootstrap = bootstrap_servers
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-dlq", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def _run(self) -> None:
        consumer = Consumer(
            {
                **kafka_client.confluent(self._bootstrap),
                "group.id": "clickfan-dashboard-unused",  # required; assign() never joins it
                "enable.auto.commit": False,
                # dead letters are written in transactions: aborted attempts are not counted
                "isolation.level": "read_committed",
                "log_level": 0,
            }
        )
        try:
            while not self._stop.is_set() and not self._assign(consumer):
                self._stop.wait(2.0)
            while not self._stop.is_set():
                for msg in consumer.consume(500, timeout=0.5):
                    if msg.error() is None:
                        self._count(msg.headers() or [])
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> bool:
        try:
            metadata = consumer.list_topics(self.topic, timeout=KAFKA_TIMEOUT_S)
        except KafkaException:
            return False
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            return False
        consumer.assign(
            [TopicPartition(self.topic, p, -2) for p in sorted(topic.partitions)]  # -2: beginning
        )
        return True

    def _count(self, headers: list[tuple[str, bytes | None]]) -> None:
        group = next((v for k, v in headers if k == DLQ_GROUP_HEADER), None)
        name = group.decode("utf-8", "replace") if group else "(no group header)"
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1


class PipelineReader:
    """Reads the topic, groups, sinks and DLQ of one pipeline's settings."""

    def __init__(self, settings: Settings, monitor: Monitor, cluster: str) -> None:
        self.settings = settings
        self.monitor = monitor
        self.cluster = cluster
        self.admin: AdminClient = stack.admin_client(settings.bootstrap_servers)
        self.kafka = KafkaCluster(monitor.config.cluster(cluster), timeout_s=KAFKA_TIMEOUT_S)
        self.broker_ids = [b.node_id for b in kafka_brokers(settings)]
        self.dlq = DeadLetterCounter(settings.bootstrap_servers, settings.dlq_topic)
        # the clusters' own addresses, credentials and CA (sinks/clients.py)
        self.es = clients.elasticsearch_http(clients.elasticsearch_connection(settings))
        self.webhdfs = clients.webhdfs_http(clients.webhdfs_connection(settings))
        self.roles = {settings.es_group: "indexer", settings.hdfs_group: "archiver"}

    def read(self) -> Reading:
        s = self.settings
        errors: list[str] = []
        partitions, up = self._topic(errors)
        brokers = {b: b in up for b in self.broker_ids}
        owners = self._owners(errors)
        groups = []
        for name, role in self.roles.items():
            status = self.monitor.evaluator.group_status(self.cluster, name)
            groups.append(
                GroupReading(
                    name,
                    role,
                    None if status.status == Status.NOTFOUND else status,
                    {p: o for (t, p), o in owners.get(name, {}).items() if t == s.topic},
                )
            )
        return Reading(
            at_ms=int(time.time() * 1000),
            topic=s.topic,
            dlq_topic=s.dlq_topic,
            partitions=partitions,
            brokers=brokers,
            groups=groups,
            elastic=self._elastic(errors),
            hdfs=self._hdfs(errors),
            dead_letters=self.dlq.snapshot(),
            dlq_records=self._records(s.dlq_topic),
            errors=errors,
        )

    def _topic(self, errors: list[str]) -> tuple[list[PartitionInfo] | None, set[int]]:
        topic = self.settings.topic
        try:
            metadata = self.admin.list_topics(topic, timeout=KAFKA_TIMEOUT_S)
        except KafkaException as exc:
            errors.append(f"Kafka: {exc.args[0].str()}")
            return None, set()
        up = set(metadata.brokers)
        t = metadata.topics.get(topic)
        if t is None or t.error is not None:
            errors.append(f"topic {topic}: {t.error.str() if t is not None else 'missing'}")
            return None, up
        keys = [(topic, p) for p in sorted(t.partitions)]
        try:
            starts = self.kafka.log_start_offsets(keys)
            ends = self.kafka.log_end_offsets(keys)
        except KafkaException as exc:
            errors.append(f"offsets of {topic}: {exc.args[0].str()}")
            return None, up
        return [
            PartitionInfo(
                p,
                t.partitions[p].leader,
                tuple(t.partitions[p].replicas),
                tuple(t.partitions[p].isrs),
                starts.get((topic, p), 0),
                ends.get((topic, p), 0),
            )
            for _, p in keys
        ], up

    def _records(self, topic: str) -> int | None:
        """Records on a topic now (log end minus log start, over its partitions)."""
        try:
            metadata = self.admin.list_topics(topic, timeout=KAFKA_TIMEOUT_S)
            t = metadata.topics.get(topic)
            if t is None or t.error is not None:
                return None
            keys = [(topic, p) for p in t.partitions]
            starts = self.kafka.log_start_offsets(keys)
            ends = self.kafka.log_end_offsets(keys)
        except KafkaException:
            return None
        return sum(ends[k] - starts.get(k, 0) for k in ends)

    def _owners(self, errors: list[str]) -> dict[str, dict[tuple[str, int], tuple[str, str]]]:
        try:
            return self.kafka.owners(list(self.roles))
        except KafkaException as exc:
            errors.append(f"group members: {exc.args[0].str()}")
            return {}

    def _elastic(self, errors: list[str]) -> ElasticInfo | None:
        s = self.settings
        pattern = f"{s.index_prefix}-*"
        try:
            count = self.es.get(f"/{pattern}/_count", timeout=HTTP_TIMEOUT_S)
            count.raise_for_status()
            cat = self.es.get(
                f"/_cat/indices/{pattern}",
                params={"format": "json", "h": "index,docs.count"},
                timeout=HTTP_TIMEOUT_S,
            )
            cat.raise_for_status()
            indices = tuple(sorted((i["index"], int(i.get("docs.count") or 0)) for i in cat.json()))
            return ElasticInfo(int(count.json()["count"]), indices)
        except (requests.RequestException, ValueError, KeyError) as exc:
            errors.append(f"Elasticsearch: {_short(exc)}")
            return None

    def _webhdfs(self, path: str, op: str) -> dict:
        response = self.webhdfs.get(
            f"/webhdfs/v1{path}",
            params={"op": op},
            timeout=HTTP_TIMEOUT_S,
        )
        response.raise_for_status()
        return response.json()

    def _hdfs(self, errors: list[str]) -> HdfsInfo | None:
        root = self.settings.hdfs_root.rstrip("/") or "/"
        try:
            summary = self._webhdfs(root, "GETCONTENTSUMMARY")["ContentSummary"]
            newest, mtime = self._newest(root)
            return HdfsInfo(summary["fileCount"], summary["length"], newest, mtime)
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                return HdfsInfo(0, 0, None, None)  # nothing archived yet
            errors.append(f"HDFS: {_short(exc)}")
        except (requests.RequestException, ValueError, KeyError) as exc:
            errors.append(f"HDFS: {_short(exc)}")
        return None

    def _newest(self, root: str) -> tuple[str | None, int | None]:
        """The newest file under <root>/dt=.../hour=...: follow the latest folder down."""
        path = root
        while True:
            entries = self._webhdfs(path, "LISTSTATUS")["FileStatuses"]["FileStatus"]
            dirs = [e for e in entries if e["type"] == "DIRECTORY"]
            files = [
                e
                for e in entries
                if e["type"] == "FILE" and not e["pathSuffix"].startswith((".", "_"))
            ]
            if files:
                newest = max(files, key=lambda e: e["modificationTime"])
                return f"{path}/{newest['pathSuffix']}", newest["modificationTime"]
            if not dirs:
                return None, None
            # dt=YYYY-MM-DD and hour=HH sort by name
            path = f"{path}/{max(d['pathSuffix'] for d in dirs)}"

    def start(self) -> None:
        self.dlq.start()

    def stop(self) -> None:
        self.dlq.stop()
        with contextlib.suppress(Exception):
            self.es.close()
            self.webhdfs.close()


def _short(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, requests.ConnectionError):
        return "not reachable"
    return text if len(text) < 160 else text[:157] + "..."
