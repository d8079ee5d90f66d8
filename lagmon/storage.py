"""In-memory storage: sliding windows of commits and recent broker offsets.

Modelled on Burrow's in-memory storage module. Per cluster it keeps, for every
topic partition, the last ``window`` log-end offsets read from the brokers, and
for every group/topic/partition the last ``window`` offset commits. A commit's
lag is computed when it is stored, against the newest broker offset; a commit
for a partition whose broker offset is not known yet is dropped, as Burrow does.
Groups come from their commits and, unlike Burrow, from their members too: a
partition a member owns is kept without a commit, its lag the whole log (see
``protocol.NO_COMMITS``), so a group that joined and never committed is seen.
All methods are thread-safe: the collectors write from their threads while the
HTTP server reads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from clickfan.lagmon.protocol import ConsumerOffset, ConsumerPartition, ConsumerTopics


@dataclass
class _Partition:
    offsets: deque[ConsumerOffset]
    owner: str = ""
    client_id: str = ""
    assigned: bool = False


@dataclass
class _Cluster:
    # topic -> per partition, recent log-end offsets, newest first
    broker: dict[str, list[deque[int]]] = field(default_factory=dict)
    # topic -> per partition, the newest log-start offset
    starts: dict[str, list[int]] = field(default_factory=dict)
    # group -> topic -> partitions by number
    groups: dict[str, dict[str, list[_Partition]]] = field(default_factory=dict)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Storage:
    def __init__(
        self, window: int, min_distance_ms: int = 0, clock: Callable[[], int] = _now_ms
    ) -> None:
        if window < 1:
            raise ValueError("window must hold at least one commit")
        self.window = window
        self.min_distance_ms = min_distance_ms
        self.clock = clock  # stamps each stored commit's observed_at
        self._lock = threading.Lock()
        self._clusters: dict[str, _Cluster] = {}

    # clusters and broker offsets

    def add_cluster(self, cluster: str) -> None:
        with self._lock:
            self._clusters.setdefault(cluster, _Cluster())

    def clusters(self) -> list[str]:
        with self._lock:
            return sorted(self._clusters)

    def has_cluster(self, cluster: str) -> bool:
        with self._lock:
            return cluster in self._clusters

    def set_topic_offsets(
        self,
        cluster: str,
        topics: Mapping[str, Sequence[int]],
        starts: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        """One read of every topic's log-end (and log-start) offsets; topics not listed are gone."""
        with self._lock:
            c = self._clusters[cluster]
            for topic in set(c.broker) - set(topics):
                self._delete_topic(c, topic)
            for topic, offsets in (starts or {}).items():
                if topic in topics:
                    c.starts[topic] = list(offsets)
            for topic, offsets in topics.items():
                rings = c.broker.setdefault(topic, [])
                # Partitions can only be added to a topic, never removed.
                rings.extend(deque(maxlen=self.window) for _ in range(len(offsets) - len(rings)))
                for ring, offset in zip(rings, offsets, strict=False):
                    ring.appendleft(offset)

    def topics(self, cluster: str) -> list[str] | None:
        with self._lock:
            c = self._clusters.get(cluster)
            return None if c is None else sorted(c.broker)

    def topic_offsets(self, cluster: str, topic: str) -> list[int] | None:
        """The newest log-end offset of each partition of a topic."""
        with self._lock:
            c = self._clusters.get(cluster)
            if c is None or topic not in c.broker:
                return None
            return [ring[0] for ring in c.broker[topic] if ring]

    def consumers_of_topic(self, cluster: str, topic: str) -> list[str] | None:
        with self._lock:
            c = self._clusters.get(cluster)
            if c is None:
                return None
            return sorted(g for g, topics in c.groups.items() if topic in topics)

    @staticmethod
    def _delete_topic(c: _Cluster, topic: str) -> None:
        del c.broker[topic]
        c.starts.pop(topic, None)
        for topics in c.groups.values():
            topics.pop(topic, None)

    # consumer groups

    def add_commit(
        self, cluster: str, group: str, topic: str, partition: int, offset: int, timestamp_ms: int
    ) -> bool:
        """Store one offset commit; False if it was dropped (broker offset unknown)."""
        with self._lock:
            c = self._clusters.get(cluster)
            rings = c.broker.get(topic) if c else None
            if c is None or rings is None or partition >= len(rings) or not rings[partition]:
                return False
            lag = max(rings[partition][0] - offset, 0)
            parts = c.groups.setdefault(group, {}).setdefault(topic, [])
            parts.extend(
                _Partition(deque(maxlen=self.window)) for _ in range(len(rings) - len(parts))
            )
            window = parts[partition].offsets
            if window and timestamp_ms - window[-1].timestamp < self.min_distance_ms:
                # Too soon after the previous commit: replace it but keep its time,
                # or a consumer committing faster than min-distance would never
                # add a slot (Burrow's mergeFrequentCommitIntoPrevious).
                timestamp_ms = window.pop().timestamp
            window.append(ConsumerOffset(offset, timestamp_ms, lag, self.clock()))
            return True

    def delete_commit(self, cluster: str, group: str, topic: str, partition: int) -> None:
        """A committed offset was deleted (a tombstone in __consumer_offsets)."""
        with self._lock:
            c = self._clusters.get(cluster)
            parts = c.groups.get(group, {}).get(topic) if c else None
            if c is None or parts is None or partition >= len(parts):
                return
            old = parts[partition]
            parts[partition] = _Partition(
                deque(maxlen=self.window), old.owner, old.client_id, old.assigned
            )
            if all(not p.offsets and not p.assigned for p in parts):
                del c.groups[group][topic]
            if not c.groups[group]:
                del c.groups[group]

    def set_owners(
        self, cluster: str, group: str, owners: Mapping[tuple[str, int], tuple[str, str]]
    ) -> None:
        """Replace who owns the group's partitions: (topic, partition) -> (host, client id).

        An owned partition is kept even without a commit; a group left with
        neither commits nor owned partitions is gone.
        """
        with self._lock:
            c = self._clusters.get(cluster)
            if c is None:
                return
            topics = c.groups.setdefault(group, {})
            for topic, number in owners:
                rings = c.broker.get(topic)
                if rings is None or number >= len(rings):
                    continue  # log-end offset not read yet: seen at the next poll
                parts = topics.setdefault(topic, [])
                parts.extend(
                    _Partition(deque(maxlen=self.window)) for _ in range(len(rings) - len(parts))
                )
            for topic, parts in list(topics.items()):
                for number, p in enumerate(parts):
                    owner = owners.get((topic, number))
                    p.owner, p.client_id = owner or ("", "")
                    p.assigned = owner is not None
                if all(not p.offsets and not p.assigned for p in parts):
                    del topics[topic]
            if not topics:
                del c.groups[group]

    def set_members(
        self, cluster: str, owners: Mapping[str, Mapping[tuple[str, int], tuple[str, str]]]
    ) -> None:
        """Owners of every group of the cluster at once; groups not listed have no members."""
        for group in set(self.groups(cluster) or []) | set(owners):
            self.set_owners(cluster, group, owners.get(group, {}))

    def groups(self, cluster: str) -> list[str] | None:
        with self._lock:
            c = self._clusters.get(cluster)
            return None if c is None else sorted(c.groups)

    def consumer(self, cluster: str, group: str) -> ConsumerTopics | None:
        """A copy of the group's windows, with broker offsets and current lag."""
        with self._lock:
            c = self._clusters.get(cluster)
            topics = c.groups.get(group) if c else None
            if c is None or topics is None:
                return None
            result: ConsumerTopics = {}
            for topic, parts in topics.items():
                rings = c.broker.get(topic, [])
                starts = c.starts.get(topic, [])
                result[topic] = []
                for number, p in enumerate(parts):
                    broker = tuple(rings[number]) if number < len(rings) else ()
                    last = p.offsets[-1].offset if p.offsets else None
                    if last is None and p.assigned and broker:
                        # owned, never committed: the whole log is still to read
                        start = starts[number] if number < len(starts) else 0
                        last = min(start, broker[0])
                    lag = max(broker[0] - last, 0) if broker and last is not None else 0
                    padding = (None,) * (self.window - len(p.offsets)) if p.offsets else ()
                    result[topic].append(
                        ConsumerPartition(
                            offsets=padding + tuple(p.offsets),
                            broker_offsets=broker,
                            current_lag=lag,
                            owner=p.owner,
                            client_id=p.client_id,
                            assigned=p.assigned,
                        )
                    )
            return result
