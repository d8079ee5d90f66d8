"""Reading the HDFS archive back: the one reader for tests, experiments and tools.

It walks an archive root over WebHDFS, skips folders whose name starts with
``_`` (``_tmp``: not complete yet; ``_committed``: markers), as Hive and Spark
do, and reads every archive file whatever its format (sinks.hdfs_formats),
so that an archive holding both JSON Lines and Parquet reads as one.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hdfs import Client

from clickfan.sinks import hdfs_formats
from clickfan.sinks.hdfs_layout import ArchiveFile


@dataclass(frozen=True)
class ArchivedFile:
    path: str
    name: ArchiveFile
    folder: str  # dt=YYYY-MM-DD/hour=HH, relative to the root
    events: list[dict[str, Any]]  # in offset order
    offsets: list[int] | None  # each event's Kafka offset; None: not stored (JSON Lines)


@dataclass(frozen=True)
class ArchivedEvent:
    event: dict[str, Any]
    topic: str
    partition: int
    offset: int | None  # None: a JSON Lines file does not say (only its first and last)


class UnexpectedFile(ValueError):
    """A file in the archive's folders that is not an archive file."""


def read_archive(client: Client, root: str, *, strict: bool = False) -> Iterator[ArchivedFile]:
    """Every archive file under ``root`` with its events, folder by folder in name order.

    Other files are skipped, or raise UnexpectedFile with ``strict``. A missing
    root reads as empty.
    """
    root = "/" + root.strip("/")
    if client.status(root, strict=False) is None:
        return
    for folder, dirs, names in client.walk(root, ignore_missing=True, allow_dir_changes=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("_"))
        relative = posixpath.relpath(folder, root)
        for name in sorted(names):
            path = posixpath.join(folder, name)
            parsed = ArchiveFile.parse(name)
            if parsed is None or relative == ".":
                if strict:
                    raise UnexpectedFile(f"not an archive file: {path}")
                continue
            with client.read(path) as reader:
                events, offsets = hdfs_formats.decode(parsed, reader.read())
            yield ArchivedFile(path, parsed, relative, events, offsets)


def iter_events(client: Client, root: str) -> Iterator[ArchivedEvent]:
    """Every archived event under ``root`` with its Kafka coordinates."""
    for f in read_archive(client, root):
        offsets: list[int | None] = [None] * len(f.events) if f.offsets is None else [*f.offsets]
        for event, offset in zip(f.events, offsets, strict=True):
            yield ArchivedEvent(event, f.name.topic, f.name.partition, offset)
