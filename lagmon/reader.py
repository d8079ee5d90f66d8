"""Lag read from Kafka now: what `clickfan lag`, the demo and the benchmarks show.

Committed and log-end offsets are read at once through the admin API, as
``kafka-consumer-groups --describe`` reads them, so the numbers agree with it.
A partition that a member of the group owns but that has no commit yet is shown
as Kafka's tool shows it (no committed offset: ``NO_COMMITS``); where a number
is needed, its lag is the whole log (log-end minus log-start).

Statuses need a window of commits over time, which one read cannot give; they
come from a ``StatusSource``: a running monitor (``clickfan.lagmon.client``) or
a window built in this process (``window_statuses``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException

from clickfan.errors import ClickfanError
from clickfan.lagmon.cluster import KafkaCluster, TopicPartitionKey
from clickfan.lagmon.monitor import Monitor
from clickfan.lagmon.protocol import NO_COMMITS, Status


@dataclass(frozen=True)
class PartitionRow:
    topic: str
    partition: int
    committed: int | None  # None: owned by a member, never committed
    log_end: int
    status: Status | None
    log_start: int = 0

    @property
    def lag(self) -> int:
        """Log-end minus committed; without a commit, the whole log."""
        position = self.log_start if self.committed is None else self.committed
        return max(self.log_end - position, 0)

    def to_json(self) -> dict[str, Any]:
        row = {
            "topic": self.topic,
            "partition": self.partition,
            "committed_offset": self.committed,
            "log_end_offset": self.log_end,
            "lag": self.lag,
            "status": status_name(self.status),
        }
        if self.committed is None:
            # only here, so that committed partitions keep the shape they always had
            row.update(log_start_offset=self.log_start, note=NO_COMMITS)
        return row


@dataclass(frozen=True)
class GroupRow:
    cluster: str
    group: str
    status: Status | None
    partitions: tuple[PartitionRow, ...]

    @property
    def totallag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def records_lag_max(self) -> int:
        return max((p.lag for p in self.partitions), default=0)

    @property
    def note(self) -> str | None:
        """NO_COMMITS when some owned partition has no commit yet (how many, if not all)."""
        without = sum(p.committed is None for p in self.partitions)
        if not without:
            return None
        if without == len(self.partitions):
            return NO_COMMITS
        return f"{NO_COMMITS} on {without} of {len(self.partitions)} partitions"

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "group": self.group,
            "status": status_name(self.status),
            "totallag": self.totallag,
            "records_lag_max": self.records_lag_max,
            "note": self.note,
            "partitions": [p.to_json() for p in self.partitions],
        }


def status_name(status: Status | None) -> str | None:
    return status.long_name if status is not None else None


# (group status, per-partition statuses) for a group, or None when unknown
Statuses = tuple[Status, dict[TopicPartitionKey, Status]] | None
StatusSource = Callable[[str, str], Statuses]


def window_statuses(mon: Monitor) -> StatusSource:
    """Statuses judged on the windows of a monitor running in this process."""

    def statuses(cluster: str, group: str) -> Statuses:
        found = mon.evaluator.group_status(cluster, group)
        if found.status == Status.NOTFOUND:
            return None
        return found.status, {(p.topic, p.partition): p.status for p in found.partitions}

    return statuses


def read_lag(
    kafka: KafkaCluster, group: str | None, statuses: StatusSource | None = None
) -> list[GroupRow]:
    """Every group's lag (or GROUP's), read from Kafka now, with statuses if a source has them.

    A group's partitions are those it has committed and those its members own.
    """
    name = kafka.config.name
    try:
        groups = kafka.groups()
        if group is not None:
            if group not in groups:
                raise ClickfanError(f"consumer group {group!r} not found on cluster {name!r}")
            groups = [group]
        committed = {g: kafka.committed(g) for g in groups}
        owners = kafka.owners(groups)
        uncommitted = {
            g: {tp for tp in owners.get(g, {}) if tp not in committed[g]} for g in groups
        }
        ends = kafka.log_end_offsets(
            {tp for g in groups for tp in (*committed[g], *uncommitted[g])}
        )
        starts = kafka.log_start_offsets({tp for tps in uncommitted.values() for tp in tps})
    except KafkaException as exc:
        raise kafka.unreachable(exc) from None
    rows = []
    for g in groups:
        known = statuses(name, g) if statuses else None
        by_partition = known[1] if known else {}
        positions: dict[TopicPartitionKey, int | None] = {
            **dict.fromkeys(uncommitted[g]),
            **committed[g],
        }
        partitions = tuple(
            PartitionRow(
                t, p, offset, ends[(t, p)], by_partition.get((t, p)), starts.get((t, p), 0)
            )
            for (t, p), offset in sorted(positions.items())
            if (t, p) in ends  # else its topic was deleted
        )
        rows.append(GroupRow(name, g, known[0] if known else None, partitions))
    return rows


@dataclass(frozen=True)
class TopicLag:
    """How much of one topic a group has still to read."""

    lag: int
    partitions: int
    uncommitted: int  # partitions without a commit: their lag is the whole log

    @property
    def note(self) -> str | None:
        if not self.uncommitted:
            return None
        if self.uncommitted == self.partitions:
            return NO_COMMITS
        return f"{NO_COMMITS} on {self.uncommitted} of {self.partitions} partitions"


def topic_lag(kafka: KafkaCluster, group: str, topic: str) -> TopicLag:
    """The group's lag on every partition of topic, owned or not.

    Unlike ``read_lag`` (which shows what Kafka's tool shows), a partition with
    no commit counts with its whole log even when no member owns it yet: a
    group that is still starting has all of it to read (the pipeline's workers
    start from the earliest offset). Raises KafkaException, or ClickfanError
    when the topic does not exist.
    """
    partitions = [(topic, p) for p in kafka.partitions(topic)]
    committed = {tp: o for tp, o in kafka.committed(group).items() if tp[0] == topic}
    ends = kafka.log_end_offsets(partitions)
    missing = [tp for tp in partitions if tp not in committed]
    starts = kafka.log_start_offsets(missing)
    lag = sum(max(end - committed.get(tp, starts.get(tp, 0)), 0) for tp, end in ends.items())
    return TopicLag(lag, len(partitions), len(missing))
