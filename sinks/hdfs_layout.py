"""The HDFS archive's layout, its names, and how a partition recovers (pure: no I/O).

    <root>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first>+<last>.jsonl
        archived events; first/last are the offsets of the file's own first and
        last record (a file holds one partition's records of one event hour)
    <root>/_tmp/<topic>+<partition>+<start>+<end>/dt=.../hour=.../<file>.jsonl
        one roll being written: all files of a partition's offsets start..end
    <root>/_committed/<topic>+<partition>+<end>
        commit marker (empty file): every offset of the partition up to and
        including ``end`` is archived or dead-lettered

A roll covers a contiguous range of a partition's offsets and spans several
event-hour folders. It is committed by creating its marker, after all its temp
files are completely written; the renames into place come after. So a
partition's committed state is always a prefix of its offsets, whatever
moment a kill -9 hits: a roll whose end is covered by a marker is complete
(its leftover temp files only need renaming), any other leftover is partial
and deleted, and the partition resumes at the newest marker's end + 1.
Readers (Hive, Spark) skip folders starting with "_".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clickfan.events import event_time_utc

TMP_DIR = "_tmp"
COMMITTED_DIR = "_committed"
SUFFIX = ".jsonl"


def bucket(event_time: str) -> str:
    """The folder of a valid event, relative to the root: ``dt=YYYY-MM-DD/hour=HH`` in UTC.

    The time is read by clickfan.events.event_time_utc, as for the index name.
    """
    t = event_time_utc(event_time)
    # not strftime: %Y gives "1", not "0001", for the year 1 on Linux
    return f"dt={t.year:04d}-{t.month:02d}-{t.day:02d}/hour={t.hour:02d}"


def _split(name: str, parts: int) -> list[str] | None:
    """``topic+a+b...`` into [topic, a, b, ...]; topics cannot contain '+'."""
    fields = name.rsplit("+", parts - 1)
    if len(fields) != parts or not fields[0] or not all(f.isdigit() for f in fields[1:]):
        return None
    return fields


@dataclass(frozen=True, order=True)
class ArchiveFile:
    topic: str
    partition: int
    first: int
    last: int

    @property
    def name(self) -> str:
        return f"{self.topic}+{self.partition}+{self.first}+{self.last}{SUFFIX}"

    @classmethod
    def parse(cls, name: str) -> ArchiveFile | None:
        if not name.endswith(SUFFIX):
            return None
        fields = _split(name[: -len(SUFFIX)], 4)
        if fields is None:
            return None
        return cls(fields[0], int(fields[1]), int(fields[2]), int(fields[3]))


@dataclass(frozen=True, order=True)
class Roll:
    topic: str
    partition: int
    start: int
    end: int

    @property
    def name(self) -> str:
        return f"{self.topic}+{self.partition}+{self.start}+{self.end}"

    @classmethod
    def parse(cls, name: str) -> Roll | None:
        fields = _split(name, 4)
        if fields is None:
            return None
        return cls(fields[0], int(fields[1]), int(fields[2]), int(fields[3]))


@dataclass(frozen=True, order=True)
class Marker:
    topic: str
    partition: int
    end: int

    @property
    def name(self) -> str:
        return f"{self.topic}+{self.partition}+{self.end}"

    @classmethod
    def parse(cls, name: str) -> Marker | None:
        fields = _split(name, 3)
        if fields is None:
            return None
        return cls(fields[0], int(fields[1]), int(fields[2]))


@dataclass
class RecoveryPlan:
    """What to do with one partition's leftovers before it is archived again."""

    committed_end: int | None  # None: nothing of this partition was ever committed
    finish: list[Roll] = field(default_factory=list)  # committed rolls not fully renamed
    discard: list[Roll] = field(default_factory=list)  # partial rolls: delete
    stale_markers: list[Marker] = field(default_factory=list)  # superseded: delete

    @property
    def resume_offset(self) -> int | None:
        """The first offset not yet archived; earlier ones are skipped when re-read."""
        return None if self.committed_end is None else self.committed_end + 1


def plan_recovery(
    topic: str, partition: int, marker_names: list[str], tmp_names: list[str]
) -> RecoveryPlan:
    """Decide from the listings of ``_committed`` and ``_tmp`` how ``partition`` resumes."""
    markers = sorted(
        m
        for m in map(Marker.parse, marker_names)
        if m is not None and m.topic == topic and m.partition == partition
    )
    committed_end = markers[-1].end if markers else None
    plan = RecoveryPlan(committed_end, stale_markers=markers[:-1])
    for roll in sorted(r for r in map(Roll.parse, tmp_names) if r is not None):
        if roll.topic != topic or roll.partition != partition:
            continue
        if committed_end is not None and roll.end <= committed_end:
            plan.finish.append(roll)
        else:
            plan.discard.append(roll)
    return plan
