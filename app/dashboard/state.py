"""The JSON the page reads, built from one reading of the pipeline.

Reading the services (``readers``) and shaping what the page shows (here) are
kept apart, so the shape and its numbers are unit-tested from plain values.
Lag and statuses per partition are the lag monitor's own (lagmon's evaluator,
the values of the monitor's Burrow API); a group the monitor has no commits
for yet shows its whole log as lag and no status, as ``clickfan lag`` does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from clickfan.lagmon.protocol import GroupStatus, Status

# Burrow's JSON spellings, as the monitor's API writes them
STATUS_NAMES = {s: s.name for s in Status}


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader: int  # -1: no leader
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    log_start: int
    log_end: int


@dataclass(frozen=True)
class ElasticInfo:
    documents: int
    indices: tuple[tuple[str, int], ...]  # (name, documents)


@dataclass(frozen=True)
class HdfsInfo:
    files: int
    bytes: int
    newest: str | None  # path of the newest file
    newest_mtime_ms: int | None


@dataclass(frozen=True)
class ProcessInfo:
    name: str  # es-indexer | hdfs-archiver | producer
    running: bool
    state: str
    log_file: str


@dataclass(frozen=True)
class GroupReading:
    name: str
    role: str  # indexer | archiver
    status: GroupStatus | None  # None: the monitor knows no commit of it yet
    owners: dict[int, tuple[str, str]]  # partition -> (member host, client id)


@dataclass
class Reading:
    """Everything one tick read; None where a service did not answer."""

    at_ms: int
    topic: str
    dlq_topic: str
    partitions: list[PartitionInfo] | None
    brokers: dict[int, bool]  # node id -> up
    groups: list[GroupReading]
    elastic: ElasticInfo | None
    hdfs: HdfsInfo | None
    dead_letters: dict[str, int]  # group -> records on the DLQ written by it
    dlq_records: int | None
    processes: list[ProcessInfo] = field(default_factory=list)
    producer_rate: float | None = None  # the managed producer's rate; None: not managed
    services: dict[str, bool] | None = None  # local stack: name -> running; None: not local
    errors: list[str] = field(default_factory=list)


def _group_partitions(
    g: GroupReading, topic: str, partitions: list[PartitionInfo]
) -> list[dict[str, Any]]:
    """One row per partition of the topic: committed offset, lag, status, owner."""
    evaluated = {}
    if g.status is not None:
        evaluated = {p.partition: p for p in g.status.partitions if p.topic == topic}
    rows = []
    for info in partitions:
        p = evaluated.get(info.partition)
        owner = g.owners.get(info.partition)
        if p is None:
            # no commit yet: everything in the log is still to be read
            committed, lag, status = None, info.log_end - info.log_start, None
        else:
            committed = p.end.offset if p.end is not None else None
            lag, status = p.current_lag, STATUS_NAMES[p.status]
        rows.append(
            {
                "partition": info.partition,
                "committed": committed,
                "lag": lag,
                "status": status,
                "owner": owner[1] if owner else None,
            }
        )
    return rows


def _members(g: GroupReading) -> list[dict[str, Any]]:
    by_member: dict[tuple[str, str], list[int]] = {}
    for partition, owner in sorted(g.owners.items()):
        by_member.setdefault(owner, []).append(partition)
    return [
        {"host": host, "client_id": client, "partitions": parts}
        for (host, client), parts in sorted(by_member.items())
    ]


def build_state(r: Reading, rates: dict[str, Any] | None = None) -> dict[str, Any]:
    """The page's JSON for one reading; rates ({"in": x, "out": {group: y}}) from History."""
    rates = rates or {}
    partitions = r.partitions or []
    groups = []
    for g in r.groups:
        rows = _group_partitions(g, r.topic, partitions)
        groups.append(
            {
                "name": g.name,
                "role": g.role,
                "status": STATUS_NAMES[g.status.status] if g.status is not None else None,
                "totallag": sum(row["lag"] for row in rows),
                "members": _members(g),
                "partitions": rows,
                "dead_letters": r.dead_letters.get(g.name, 0),
                "rate_in": rates.get("in", 0.0),
                "rate_out": rates.get("out", {}).get(g.name, 0.0),
            }
        )
    return {
        "at": r.at_ms,
        "topic": {
            "name": r.topic,
            "readable": r.partitions is not None,
            "records": sum(p.log_end - p.log_start for p in partitions),
            "produced": sum(p.log_end for p in partitions),
            "partitions": [
                {
                    "partition": p.partition,
                    "leader": p.leader,
                    "replicas": list(p.replicas),
                    "isr": list(p.isr),
                    "under_replicated": len(p.isr) < len(p.replicas),
                    "log_start": p.log_start,
                    "log_end": p.log_end,
                }
                for p in partitions
            ],
        },
        "brokers": [{"id": b, "up": up} for b, up in sorted(r.brokers.items())],
        "producer": {"managed": r.producer_rate is not None, "rate": r.producer_rate},
        "groups": groups,
        "elasticsearch": None
        if r.elastic is None
        else {
            "documents": r.elastic.documents,
            "indices": [{"name": n, "documents": d} for n, d in r.elastic.indices],
        },
        "hdfs": None
        if r.hdfs is None
        else {
            "files": r.hdfs.files,
            "bytes": r.hdfs.bytes,
            "newest": r.hdfs.newest,
            "newest_mtime": r.hdfs.newest_mtime_ms,
        },
        "dlq": {
            "topic": r.dlq_topic,
            "records": r.dlq_records,
            "by_group": dict(sorted(r.dead_letters.items())),
        },
        "processes": [
            {"name": p.name, "running": p.running, "state": p.state, "log_file": p.log_file}
            for p in r.processes
        ],
        "services": None
        if r.services is None
        else [{"name": n, "running": up} for n, up in r.services.items()],
        "errors": r.errors,
    }


class History:
    """The last window_s of lag and events/s per group, one point per reading.

    Events/s in: records appended to the topic (every group reads all of them);
    out of a group: how far its committed offsets moved (what its sink made
    durable). A replay moves commits back: that counts as 0 out, not negative.
    """

    def __init__(self, window_s: float, interval_s: float) -> None:
        self.points: deque[dict[str, Any]] = deque(maxlen=max(int(window_s / interval_s), 2))
        self._last: tuple[int, int, dict[str, int]] | None = None

    def add(self, r: Reading, state: dict[str, Any]) -> dict[str, Any]:
        """Record one reading (and its state's lags); returns its rates for build_state."""
        lags = {g["name"]: g["totallag"] for g in state["groups"]}
        if r.partitions is None:
            return {}
        produced = sum(p.log_end for p in r.partitions)
        committed = {
            g.name: sum(
                p.end.offset
                for p in g.status.partitions
                if p.end is not None and p.topic == r.topic
            )
            for g in r.groups
            if g.status is not None
        }
        rates: dict[str, Any] = {"in": 0.0, "out": {}}
        if self._last is not None:
            at, before, done = self._last
            seconds = (r.at_ms - at) / 1000
            if seconds > 0:
                rates["in"] = max(produced - before, 0) / seconds
                rates["out"] = {
                    g: max(c - done[g], 0) / seconds for g, c in committed.items() if g in done
                }
        self._last = (r.at_ms, produced, committed)
        self.points.append(
            {
                "t": r.at_ms,
                "lag": lags,
                "in": round(rates["in"], 1),
                "out": {g: round(v, 1) for g, v in rates["out"].items()},
            }
        )
        return rates
