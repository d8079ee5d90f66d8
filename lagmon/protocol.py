"""The data passed between lagmon's parts, and its JSON in Burrow's spelling.

Field names and their JSON names follow Burrow's ``core/protocol`` so that the
HTTP API answers exactly what Burrow clients expect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Status(IntEnum):
    """Burrow's status constants; the numbers are the Prometheus values too."""

    NOTFOUND = 0
    OK = 1
    WARN = 2
    ERR = 3
    STOP = 4
    STALL = 5
    REWIND = 6

    @property
    def long_name(self) -> str:
        """The name the CLI prints: WARNING and ERROR spelled out."""
        return {Status.WARN: "WARNING", Status.ERR: "ERROR"}.get(self, self.name)


@dataclass(frozen=True)
class ConsumerOffset:
    """One offset commit kept in a window."""

    offset: int
    timestamp: int  # milliseconds since the epoch, as Burrow
    lag: int | None  # lag when committed; None when it could not be known
    # When the monitor read the commit (ms since the epoch; Burrow's observedAt).
    # Not part of what the commit is, so two equal commits seen at different times
    # compare equal; 0 when the commit was not read by a monitor (`lag evaluate`).
    observed_at: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "timestamp": self.timestamp,
            "observedAt": self.observed_at,
            "lag": self.lag,
        }


@dataclass(frozen=True)
class ConsumerPartition:
    """What storage knows about one partition of one group."""

    # The window, oldest first; slots not yet filled are None and come first.
    offsets: tuple[ConsumerOffset | None, ...]
    broker_offsets: tuple[int, ...]  # recent log-end offsets, newest first
    # Lag against the newest log-end offset; for a partition a member owns that
    # has no commit yet, the whole log (log-end minus log-start): see NO_COMMITS.
    current_lag: int
    owner: str = ""
    client_id: str = ""
    # A member of the group owns the partition (Burrow keeps this as owner only).
    assigned: bool = False

    @property
    def no_commits(self) -> bool:
        """Owned by a member, never committed: Kafka's tools show "-" for it."""
        return self.assigned and not any(self.offsets)

    def to_json(self) -> dict[str, Any]:
        # Burrow leaves broker offsets out of its JSON, and spells current-lag so.
        return {
            "offsets": [o.to_json() if o else None for o in self.offsets],
            "owner": self.owner,
            "client_id": self.client_id,
            "current-lag": self.current_lag,
        }


# What the CLI, the API and the demo say for a partition a member owns with no
# commit yet: Kafka's tools show its offset and lag as "-". Where a number is
# needed (current_lag, totallag, metrics) its lag is the whole log, log-end minus
# log-start: what a consumer starting from the earliest offset has to read.
NO_COMMITS = "no commits yet"

# topic -> partitions, indexed by partition number
ConsumerTopics = dict[str, list[ConsumerPartition]]


@dataclass(frozen=True)
class PartitionStatus:
    topic: str
    partition: int
    owner: str
    client_id: str
    status: Status
    start: ConsumerOffset | None
    end: ConsumerOffset | None
    current_lag: int
    complete: float
    no_commits: bool = False

    def to_json(self) -> dict[str, Any]:
        # "note" only on partitions without a commit, so Burrow's shape is unchanged
        # for every other partition.
        note = {"note": NO_COMMITS} if self.no_commits else {}
        return {
            "topic": self.topic,
            "partition": self.partition,
            "owner": self.owner,
            "client_id": self.client_id,
            "status": self.status.name,
            "start": self.start.to_json() if self.start else None,
            "end": self.end.to_json() if self.end else None,
            "current_lag": self.current_lag,
            "complete": self.complete,
            **note,
        }


@dataclass(frozen=True)
class GroupStatus:
    cluster: str
    group: str
    status: Status
    complete: float
    partitions: tuple[PartitionStatus, ...]
    partition_count: int
    maxlag: PartitionStatus | None
    totallag: int

    @classmethod
    def not_found(cls, cluster: str, group: str) -> GroupStatus:
        return cls(cluster, group, Status.NOTFOUND, 1.0, (), 0, None, 0)

    def to_json(self, show_all: bool = True) -> dict[str, Any]:
        """Burrow's JSON; without ``show_all`` only partitions that are not OK."""
        shown = [p for p in self.partitions if show_all or p.status > Status.OK]
        return {
            "cluster": self.cluster,
            "group": self.group,
            "status": self.status.name,
            "complete": self.complete,
            "partitions": [p.to_json() for p in shown],
            "partition_count": self.partition_count,
            "maxlag": self.maxlag.to_json() if self.maxlag else None,
            "totallag": self.totallag,
        }


# Kafka's rule for topic names (Topic.validate); Burrow applies the same rule to
# module names, so clickfan uses it for cluster names too.
_KAFKA_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def valid_kafka_name(name: str) -> bool:
    return bool(_KAFKA_NAME.fullmatch(name)) and name not in (".", "..")


def valid_group_name(name: str) -> bool:
    """Kafka accepts any non-empty group id; refuse only control characters."""
    return bool(name) and name.isprintable()
