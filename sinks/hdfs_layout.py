"""The HDFS archive's layout and its names (pure: no I/O).

    <root>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first>+<last>.jsonl|.parquet
        archived events; first/last are the offsets of the file's own first and
        last record (a file holds one partition's records of one event hour);
        the suffix says the format (an archive may hold both, e.g. after the
        archiver was switched: nothing but the reader looks at it)
    <root>/_tmp/<topic>+<partition>/<owner>/...
        rolls being written by the partition's current owner, each file flat
        in the owner's folder (see sinks.hdfs_fence: the folder is the fence
        against a stalled earlier owner)
    <root>/_committed/<topic>+<partition>+<end>
        commit marker (empty file): every offset of the partition up to and
        including ``end`` is archived or dead-lettered

A roll covers a contiguous range of a partition's offsets and spans several
event-hour folders. It is committed by renaming its marker into
``_committed``, after all its temp files are completely written; the
renames into place come after. So a
partition's committed state is always a prefix of its offsets, whatever
moment a kill -9 hits: a roll whose end is covered by a marker is complete
(its leftover temp files only need renaming), any other leftover is partial
and deleted, and the partition resumes at the newest marker's end + 1.
Readers (Hive, Spark) skip folders starting with "_".
"""

from __future__ import annotations

from dataclasses import dataclass

from clickfan.events import event_time_utc

TMP_DIR = "_tmp"
COMMITTED_DIR = "_committed"
# format -> file suffix; the first is the one of archives written before formats existed
SUFFIXES = {"jsonl": ".jsonl", "parquet": ".parquet"}
FORMATS = tuple(SUFFIXES)


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
    format: str = "jsonl"  # one of FORMATS

    @property
    def name(self) -> str:
        return f"{self.topic}+{self.partition}+{self.first}+{self.last}{SUFFIXES[self.format]}"

    @classmethod
    def parse(cls, name: str) -> ArchiveFile | None:
        for format, suffix in SUFFIXES.items():
            if name.endswith(suffix):
                fields = _split(name[: -len(suffix)], 4)
                if fields is None:
                    return None
                return cls(fields[0], int(fields[1]), int(fields[2]), int(fields[3]), format)
        return None


@dataclass(frozen=True, order=True)
class Roll:
    """A roll's temp folder in the layout before owner folders (still recovered)."""

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
