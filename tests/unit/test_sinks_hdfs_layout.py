"""Names in the HDFS archive and how a partition recovers from what HDFS holds."""

from __future__ import annotations

import pytest

from clickfan.sinks.hdfs_layout import ArchiveFile, Marker, Roll, bucket, plan_recovery

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


def test_nothing_committed_starts_from_kafka() -> None:
    plan = plan_recovery(TOPIC, 0, [], [Roll(TOPIC, 0, 0, 99).name])
    assert plan.committed_end is None and plan.resume_offset is None
    assert plan.discard == [Roll(TOPIC, 0, 0, 99)] and plan.finish == []


def test_resumes_after_the_newest_marker_and_drops_older_ones() -> None:
    markers = [Marker(TOPIC, 2, end).name for end in (99, 499, 299)]
    plan = plan_recovery(TOPIC, 2, markers, [])
    assert plan.committed_end == 499 and plan.resume_offset == 500
    assert plan.stale_markers == [Marker(TOPIC, 2, 99), Marker(TOPIC, 2, 299)]


def test_committed_rolls_are_finished_partial_ones_deleted() -> None:
    # killed after committing 500..999 but before all its renames, and while
    # writing 1000..1200: the first is complete, the second may be partial
    tmp = [Roll(TOPIC, 1, 500, 999).name, Roll(TOPIC, 1, 1000, 1200).name]
    plan = plan_recovery(TOPIC, 1, [Marker(TOPIC, 1, 999).name], tmp)
    assert plan.finish == [Roll(TOPIC, 1, 500, 999)]
    assert plan.discard == [Roll(TOPIC, 1, 1000, 1200)]
    assert plan.resume_offset == 1000


def test_other_partitions_and_topics_are_left_alone() -> None:
    markers = [Marker(TOPIC, 1, 10).name, Marker("other", 0, 50).name]
    tmp = [Roll(TOPIC, 1, 11, 20).name, Roll("other", 0, 51, 60).name, "junk"]
    plan = plan_recovery(TOPIC, 0, markers, tmp)
    assert plan.committed_end is None
    assert plan.finish == [] and plan.discard == [] and plan.stale_markers == []
