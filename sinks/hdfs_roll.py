"""One partition's records since its last roll, grouped into files by event hour (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from clickfan.sinks.hdfs_layout import ArchiveFile


@dataclass
class PendingFile:
    first: int
    last: int
    lines: list[bytes] = field(default_factory=list)  # encode_event of each event
    offsets: list[int] = field(default_factory=list)  # the offset of each line

    def data(self) -> bytes:
        """The file as JSON Lines."""
        return b"".join(line + b"\n" for line in self.lines)


@dataclass
class PendingRoll:
    """Offsets start..end of one partition, handled but not yet archived.

    Every offset counts (dead-lettered ones too, which have no line), so the
    range stays contiguous and a committed roll accounts for all of it.
    """

    topic: str
    partition: int
    start: int | None = None
    end: int | None = None
    offsets: int = 0
    size: int = 0
    opened_at: float | None = None  # monotonic time of the first offset
    files: dict[str, PendingFile] = field(default_factory=dict)  # by bucket

    def add(self, offset: int, now: float, bucket: str | None, line: bytes | None) -> None:
        """Count ``offset``; with a bucket and a line, archive the line in that bucket."""
        if self.end is not None and offset <= self.end:
            raise ValueError(f"offset {offset} after {self.end}: offsets must increase")
        if self.start is None:
            self.start, self.opened_at = offset, now
        self.end = offset
        self.offsets += 1
        if bucket is None or line is None:
            return
        pending = self.files.get(bucket)
        if pending is None:
            pending = self.files[bucket] = PendingFile(first=offset, last=offset)
        pending.last = offset
        pending.lines.append(line)
        pending.offsets.append(offset)
        self.size += len(line) + 1

    def empty(self) -> bool:
        return self.start is None

    def due(self, now: float, max_records: int, max_bytes: int, max_age_s: float) -> bool:
        if self.opened_at is None:
            return False
        return (
            self.offsets >= max_records
            or self.size >= max_bytes
            or now - self.opened_at >= max_age_s
        )

    def archive_files(self, format: str = "jsonl") -> list[tuple[str, ArchiveFile, PendingFile]]:
        """(bucket, final name in ``format``, contents) of each file of this roll."""
        return [
            (bucket, ArchiveFile(self.topic, self.partition, f.first, f.last, format), f)
            for bucket, f in sorted(self.files.items())
        ]
