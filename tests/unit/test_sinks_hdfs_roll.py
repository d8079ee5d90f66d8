"""A partition's pending roll: offsets accounted, files by hour, when it is due."""

from __future__ import annotations

import pytest

from clickfan.sinks.hdfs_layout import ArchiveFile
from clickfan.sinks.hdfs_roll import PendingRoll

A, B = "dt=2026-01-01/hour=10", "dt=2026-01-01/hour=11"


def test_every_offset_counts_files_hold_their_own_records() -> None:
    roll = PendingRoll("t", 4)
    roll.add(10, now=0.0, bucket=A, line=b'{"a":1}')
    roll.add(11, now=0.1, bucket=B, line=b'{"b":1}')
    roll.add(12, now=0.2, bucket=None, line=None)  # dead-lettered
    roll.add(13, now=0.3, bucket=A, line=b'{"a":2}')
    assert (roll.start, roll.end, roll.offsets) == (10, 13, 4)
    files = roll.archive_files()
    assert [(b, f) for b, f, _ in files] == [
        (A, ArchiveFile("t", 4, 10, 13)),
        (B, ArchiveFile("t", 4, 11, 11)),
    ]
    assert files[0][2].data() == b'{"a":1}\n{"a":2}\n'


def test_only_dead_letters_make_a_roll_without_files() -> None:
    roll = PendingRoll("t", 0)
    roll.add(5, now=0.0, bucket=None, line=None)
    assert not roll.empty() and roll.archive_files() == []


def test_offsets_must_increase() -> None:
    roll = PendingRoll("t", 0)
    roll.add(5, now=0.0, bucket=A, line=b"x")
    with pytest.raises(ValueError):
        roll.add(5, now=0.0, bucket=A, line=b"x")


@pytest.mark.parametrize(
    ("records", "line", "now", "due"),
    [
        (2, b"x", 0.5, False),
        (3, b"x", 0.5, True),  # count
        (1, b"x" * 99, 0.5, True),  # bytes (line + newline)
        (1, b"x", 10.0, True),  # age
    ],
)
def test_due_by_count_size_or_age(records: int, line: bytes, now: float, due: bool) -> None:
    roll = PendingRoll("t", 0)
    for offset in range(records):
        roll.add(offset, now=0.0, bucket=A, line=line)
    assert roll.due(now, max_records=3, max_bytes=100, max_age_s=10.0) is due


def test_an_empty_roll_is_never_due() -> None:
    assert not PendingRoll("t", 0).due(1e9, 1, 1, 0.0)
