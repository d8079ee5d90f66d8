"""Names in the HDFS archive."""

from __future__ import annotations

import pytest

from clickfan.sinks.hdfs_layout import ArchiveFile, Marker, Roll, bucket

TOPIC = "t1a2.click-logs"


def test_archive_file_name_round_trips() -> None:
    f = ArchiveFile(TOPIC, 3, 120, 4711)
    assert f.name == "t1a2.click-logs+3+120+4711.jsonl"
    assert ArchiveFile.parse(f.name) == f


@pytest.mark.parametrize(
    "name",
    ["x.jsonl", "t+1+2.jsonl", "t+a+1+2.jsonl", "t+1+2+3.json", "+1+2+3.jsonl", "t+1+2+3"],
)
def test_other_names_are_not_archive_files(name: str) -> None:
    assert ArchiveFile.parse(name) is None


def test_roll_and_marker_names_round_trip() -> None:
    assert Roll.parse(Roll(TOPIC, 0, 5, 9).name) == Roll(TOPIC, 0, 5, 9)
    assert Marker.parse(Marker(TOPIC, 5, 77).name) == Marker(TOPIC, 5, 77)
    assert Marker.parse("click-logs+5") is None


def test_bucket_is_the_utc_hour_of_the_event() -> None:
    assert bucket("2026-01-31T23:59:59.999Z") == "dt=2026-01-31/hour=23"
    # 01:30 at UTC+09:00 is 16:30 the day before in UTC
    assert bucket("2026-02-01T01:30:00+09:00") == "dt=2026-01-31/hour=16"
