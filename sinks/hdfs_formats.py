"""The archive's file formats, both ways: a roll's pending file to bytes, and bytes to events.

JSON Lines keeps each record's exact bytes (the line is the Kafka value as
clickfan.events.encode_event wrote it), so it can be replayed into Kafka byte
for byte; a line knows its partition from the file name but not its offset.
Parquet (sinks.hdfs_parquet) is typed and columnar for batch engines, and each
row carries its Kafka coordinates.
"""

from __future__ import annotations

import json
from typing import Any

from clickfan.sinks import hdfs_parquet
from clickfan.sinks.hdfs_layout import FORMATS, ArchiveFile
from clickfan.sinks.hdfs_roll import PendingFile

DEFAULT = FORMATS[0]


def encode(format: str, topic: str, partition: int, pending: PendingFile) -> bytes:
    """The contents of one archive file in ``format`` (one of FORMATS)."""
    if format == "parquet":
        return hdfs_parquet.encode_lines(topic, partition, pending.offsets, pending.lines)
    if format == "jsonl":
        return pending.data()
    raise ValueError(f"unknown archive format {format!r}: expected one of {', '.join(FORMATS)}")


def decode(file: ArchiveFile, data: bytes) -> tuple[list[dict[str, Any]], list[int] | None]:
    """The events of an archive file and their offsets (None: JSON Lines does not store them)."""
    if file.format == "jsonl":
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line], None
    events, offsets = [], []
    for (topic, partition, offset), event in hdfs_parquet.decode(data):
        if (topic, partition) != (file.topic, file.partition):
            raise ValueError(f"{file.name} holds a row of {topic}+{partition}, not of its own")
        events.append(event)
        offsets.append(offset)
    return events, offsets
