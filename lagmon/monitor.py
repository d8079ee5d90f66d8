"""Runs the collectors of every configured cluster into one storage.

Per cluster, two threads: a poller that each interval reads through the admin
API the log-end offsets, the members of every group and the partitions they own
(with the log-start offsets of those, for groups that have not committed yet),
and then evaluates the cluster's groups for the notifier; and a reader of
``__consumer_offsets`` that stores commits as they happen. The reader starts
after the first successful poll, because a commit can only be stored once its
partition's log-end offset is known.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import KafkaException

from clickfan.lagmon.cluster import KafkaCluster
from clickfan.lagmon.config import ClusterConfig, MonitorConfig
from clickfan.lagmon.consumer import CommitKey, CommitValue, OffsetsTopicReader
from clickfan.lagmon.evaluator import Evaluator
from clickfan.lagmon.notifier import Notifier
from clickfan.lagmon.protocol import Status
from clickfan.lagmon.storage import Storage

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, config: MonitorConfig, notifier: Notifier | None = None) -> None:
        self.config = config
        self.storage = Storage(config.window, int(config.min_distance_s * 1000))
        self.evaluator = Evaluator(self.storage, config.allowed_lag, config.minimum_complete)
        self.notifier = notifier
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        for cluster in config.clusters:
            self.storage.add_cluster(cluster.name)

    def start(self) -> None:
        for cluster in self.config.clusters:
            polled = threading.Event()
            self._spawn(f"lagmon-poll-{cluster.name}", self._poll, cluster, polled)
            self._spawn(f"lagmon-commits-{cluster.name}", self._read_commits, cluster, polled)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        if self.notifier:
            self.notifier.close()

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _poll(self, cluster: ClusterConfig, polled: threading.Event) -> None:
        kafka = KafkaCluster(cluster, timeout_s=max(10.0, self.config.interval_s))
        failing = False
        while not self._stop.is_set():
            try:
                self._poll_once(kafka)
            except KafkaException as exc:
                if not failing:  # say it once per outage, not every interval
                    log.warning(
                        "%s; retrying every %ss", kafka.unreachable(exc), self.config.interval_s
                    )
                failing = True
            else:
                if failing:
                    log.warning("cluster %s is readable again", cluster.name)
                failing = False
                polled.set()
                self._notify(cluster.name)
            self._stop.wait(self.config.interval_s)

    def _poll_once(self, kafka: KafkaCluster) -> None:
        ends = kafka.topic_offsets()
        # Every group with members, not only those that committed: a group that
        # joined and never committed must be seen (protocol.NO_COMMITS).
        owners = kafka.owners(kafka.groups())
        owned = {tp for group in owners.values() for tp in group if tp[0] in ends}
        first = kafka.log_start_offsets(owned)
        starts = {
            topic: [first.get((topic, p), 0) for p in range(len(ends[topic]))]
            for topic in {t for t, _ in owned}
        }
        self.storage.set_topic_offsets(kafka.config.name, ends, starts)
        self.storage.set_members(kafka.config.name, owners)

    def _notify(self, cluster: str) -> None:
        if self.notifier is None:
            return
        statuses = [
            self.evaluator.group_status(cluster, g) for g in self.storage.groups(cluster) or []
        ]
        # A group deleted since it was listed is NOTFOUND: gone, not a change to report.
        self.notifier.observe(cluster, [s for s in statuses if s.status != Status.NOTFOUND])

    def _read_commits(self, cluster: ClusterConfig, polled: threading.Event) -> None:
        while not polled.wait(0.5):
            if self._stop.is_set():
                return

        def commit(key: CommitKey, value: CommitValue) -> None:
            self.storage.add_commit(
                cluster.name,
                key.group,
                key.topic,
                key.partition,
                value.offset,
                value.commit_timestamp,
            )

        def delete(key: CommitKey) -> None:
            self.storage.delete_commit(cluster.name, key.group, key.topic, key.partition)

        reader = OffsetsTopicReader(cluster.bootstrap_servers, commit, delete)
        reader.run(self._stop, retry_s=self.config.interval_s)
