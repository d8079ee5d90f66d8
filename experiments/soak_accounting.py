"""Where every record of a soak ended, counted against what the source topic holds (pure).

The source topic itself is the ground truth, read back at the end: each of
its records is a generated event (the project's producer), a hostile record
whose delivery report said where it landed (its outcome decided when it was
built), or a hostile record without a report (sent while a broker died: it
may be in the log anyway), which may end in a sink or in the DLQ. From that:

- valid records: in Elasticsearch exactly once (by event id) and in HDFS
  exactly once (by partition and offset); missing = lost, more = duplicated;
- invalid hostile records: in the DLQ exactly once per group;
- anything in a sink that is no valid record of the log is "unexpected".
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from clickfan.generators.hostile import VALID, Hostile

Coord = tuple[int, int]  # (partition, offset)
HOSTILE_TAG = "clickfan-soak-hostile"  # header on the soak's hostile records (bookkeeping only)


@dataclass(frozen=True)
class LogRecord:
    partition: int
    offset: int
    value: bytes | None
    headers: dict[str, bytes] | None  # None: header names that are not UTF-8


@dataclass(frozen=True)
class DeadLetter:
    headers: dict[str, bytes] | None  # None: header names no Python client can decode

    def source(self) -> Coord | None:
        h = self.headers or {}
        try:
            return int(h["clickfan.source.partition"]), int(h["clickfan.source.offset"])
        except (KeyError, ValueError):
            return None


@dataclass
class GroupDlq:
    expected: int = 0  # invalid hostile records
    once: int = 0
    missing: int = 0
    more_than_once: int = 0
    valid_dead_lettered: int = 0
    without_reason: int = 0


@dataclass
class Accounting:
    records_in_log: int = 0
    generated: int = 0
    acknowledged_not_in_log: int = 0
    hostile_valid: int = 0
    hostile_invalid: int = 0
    hostile_unreported: int = 0  # in the log without a delivery report: either outcome is fine
    es_lost: int = 0
    es_duplicated: int = 0
    es_unexpected: int = 0
    hdfs_lost: int = 0
    hdfs_duplicated: int = 0
    hdfs_unexpected: int = 0
    dlq: dict[str, GroupDlq] = field(default_factory=dict)
    dlq_unreadable: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def valid(self) -> int:
        return self.generated + self.hostile_valid

    @property
    def lost(self) -> int:
        return self.es_lost + self.hdfs_lost + self.acknowledged_not_in_log

    @property
    def duplicated(self) -> int:
        return self.es_duplicated + self.hdfs_duplicated

    @property
    def hostile_misplaced(self) -> int:
        return sum(
            g.missing + g.more_than_once + g.valid_dead_lettered + g.without_reason
            for g in self.dlq.values()
        )

    @property
    def ok(self) -> bool:
        unexpected = self.es_unexpected + self.hdfs_unexpected + self.dlq_unreadable
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.hostile_misplaced == 0
            and not (unexpected)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            valid=self.valid,
            lost=self.lost,
            duplicated=self.duplicated,
            hostile_misplaced=self.hostile_misplaced,
            ok=self.ok,
        )
        return data

    def _example(self, what: str, items: Iterable[object]) -> None:
        listed = [str(i) for i in items][:10]
        if listed:
            self.examples[what] = listed


def _event_id(value: bytes | None) -> str | None:
    """The event id of a record value, if it is a JSON object with a string one."""
    try:
        obj = json.loads(value or b"")
    except (ValueError, RecursionError):
        return None
    event_id = obj.get("event_id") if isinstance(obj, dict) else None
    return event_id if isinstance(event_id, str) else None


def account(
    log: list[LogRecord],
    acknowledged: Iterable[Coord],
    placed: dict[Coord, Hostile],
    es_ids: Counter[str],
    archived: Iterable[tuple[int, str]],
    dead_letters: list[DeadLetter],
    groups: tuple[str, ...],
) -> Accounting:
    """Count it all. ``archived``: (partition in the file name, event id) per HDFS line."""
    a = Accounting(records_in_log=len(log))
    valid: dict[str, Coord] = {}  # event id -> where it is in the log
    invalid: dict[Coord, str] = {}  # -> case name
    either: set[str] = set()  # event ids of unreported hostile records
    in_log = set()
    for r in log:
        coord = (r.partition, r.offset)
        in_log.add(coord)
        hostile = placed.get(coord)
        if hostile is not None:
            if hostile.expected == VALID and hostile.event_id is not None:
                valid[hostile.event_id] = coord
                a.hostile_valid += 1
            else:
                invalid[coord] = hostile.name
                a.hostile_invalid += 1
        elif r.headers is None or HOSTILE_TAG in r.headers:
            a.hostile_unreported += 1
            event_id = _event_id(r.value)
            if event_id is not None:
                either.add(event_id)
        else:
            event_id = _event_id(r.value)
            if event_id is None:  # not from our producer after all: judge it by either outcome
                a.hostile_unreported += 1
                continue
            valid[event_id] = coord
            a.generated += 1
    missing_acks = set(acknowledged) - in_log
    a.acknowledged_not_in_log = len(missing_acks)
    a._example("acknowledged but not in the log", sorted(missing_acks))

    # Elasticsearch, by id
    lost = set(valid) - set(es_ids)
    a.es_lost = len(lost)
    a._example("lost in Elasticsearch", sorted(valid[i] for i in lost))
    a.es_duplicated = sum(n - 1 for i, n in es_ids.items() if i in valid and n > 1)
    stray = set(es_ids) - set(valid) - either
    a.es_unexpected = len(stray)
    a._example("unexpected in Elasticsearch", sorted(stray))

    # HDFS, by offset (a line's event id gives its offset; its file gives the partition)
    found: Counter[Coord] = Counter()
    strays = []
    for partition, event_id in archived:
        coord = valid.get(event_id)
        if coord is None or coord[0] != partition:
            if event_id not in either:
                strays.append((partition, event_id))
            continue
        found[coord] += 1
    lost_offsets = set(valid.values()) - set(found)
    a.hdfs_lost = len(lost_offsets)
    a._example("lost in HDFS", sorted(lost_offsets))
    a.hdfs_duplicated = sum(n - 1 for n in found.values() if n > 1)
    a._example("archived more than once", sorted(c for c, n in found.items() if n > 1))
    a.hdfs_unexpected = len(strays)
    a._example("unexpected in HDFS", strays)

    # the DLQ, per group
    valid_coords = set(valid.values())
    a.dlq_unreadable = sum(1 for d in dead_letters if d.headers is None)
    for group in groups:
        letters = [
            d
            for d in dead_letters
            if d.headers is not None and d.headers.get("clickfan.dlq.group") == group.encode()
        ]
        counted = Counter(c for c in (d.source() for d in letters) if c is not None)
        g = GroupDlq(expected=len(invalid))
        g.once = sum(1 for c in invalid if counted[c] == 1)
        g.missing = sum(1 for c in invalid if counted[c] == 0)
        g.more_than_once = sum(1 for c, n in counted.items() if n > 1)
        g.valid_dead_lettered = len(set(counted) & valid_coords)
        g.without_reason = sum(
            1 for d in letters if not (d.headers or {}).get("clickfan.error.reason")
        )
        a.dlq[group] = g
        a._example(f"DLQ {group}: missing", sorted(invalid[c] for c in invalid if not counted[c]))
        a._example(f"DLQ {group}: valid records", sorted(set(counted) & valid_coords))
    return a
