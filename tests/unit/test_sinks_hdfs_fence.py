"""Owner folders' names and what a new owner does with what it fenced (pure)."""

from __future__ import annotations

import pytest

from clickfan.sinks.hdfs_fence import (
    TempFile,
    commit_name,
    data_name,
    parse_temp,
    partition_dir,
    plan_take_over,
)
from clickfan.sinks.hdfs_layout import ArchiveFile, Marker, Roll

TOPIC = "t1a2.click-logs"
HOUR = "dt=2026-01-31/hour=23"


def test_partition_dir_is_under_tmp() -> None:
    assert partition_dir(TOPIC, 4) == "_tmp/t1a2.click-logs+4"


def test_temp_names_round_trip_at_any_depth() -> None:
    final = ArchiveFile(TOPIC, 1, 500, 640).name
    name = data_name(500, 999, HOUR, final)
    assert "/" not in name  # flat: an owner never creates folders inside its own
    expected = TempFile(500, 999, dest=f"{HOUR}/{final}")
    assert parse_temp(name, TOPIC, 1) == expected
    # a fenced owner's folder moved into a newer owner's, itself moved again
    assert parse_temp(f"abc/def/{name}", TOPIC, 1) == expected
    assert parse_temp(commit_name(500, 999), TOPIC, 1) == TempFile(500, 999, dest=None)


def test_legacy_roll_folders_are_understood() -> None:
    final = ArchiveFile(TOPIC, 1, 0, 40).name
    relpath = f"{Roll(TOPIC, 1, 0, 99).name}/{HOUR}/{final}"
    assert parse_temp(relpath, TOPIC, 1) == TempFile(0, 99, dest=f"{HOUR}/{final}")
    assert parse_temp(relpath, TOPIC, 2) is None  # another partition's roll


@pytest.mark.parametrize(
    "relpath", ["junk", "1+x~commit", "1+2~", "1+2~x~", "a/b", "1~2~3", "1+2+3~commit"]
)
def test_unknown_files_are_not_temp_files(relpath: str) -> None:
    assert parse_temp(relpath, TOPIC, 0) is None


def test_nothing_committed_starts_from_kafka() -> None:
    files = [data_name(0, 99, HOUR, ArchiveFile(TOPIC, 0, 0, 99).name)]
    plan = plan_take_over(TOPIC, 0, [], files)
    assert plan.committed_end is None and plan.resume_offset is None
    assert plan.publish == [] and plan.dropped == {(0, 99)} and plan.finished == set()


def test_resumes_after_the_newest_marker_and_drops_older_ones() -> None:
    markers = [Marker(TOPIC, 2, end).name for end in (99, 499, 299)]
    plan = plan_take_over(TOPIC, 2, markers, [])
    assert plan.committed_end == 499 and plan.resume_offset == 500
    assert plan.stale_markers == [Marker(TOPIC, 2, 99), Marker(TOPIC, 2, 299)]


def test_committed_rolls_are_published_uncommitted_ones_dropped() -> None:
    # the zombie committed 500..999 and published one of its two files, then
    # wrote 1000..1200 and its temp marker but was fenced before the commit rename
    a = ArchiveFile(TOPIC, 1, 500, 700).name
    b = ArchiveFile(TOPIC, 1, 1000, 1200).name
    files = [
        f"zombie/{data_name(500, 999, HOUR, a)}",
        f"zombie/{data_name(1000, 1200, HOUR, b)}",
        f"zombie/{commit_name(1000, 1200)}",
    ]
    plan = plan_take_over(TOPIC, 1, [Marker(TOPIC, 1, 999).name], files)
    assert plan.publish == [(files[0], f"{HOUR}/{a}")]
    assert plan.finished == {(500, 999)} and plan.dropped == {(1000, 1200)}
    assert plan.resume_offset == 1000


def test_other_partitions_topics_and_junk_are_left_out() -> None:
    markers = [Marker(TOPIC, 1, 10).name, Marker("other", 0, 50).name]
    plan = plan_take_over(TOPIC, 0, markers, ["x/junk"])
    assert plan.committed_end is None and plan.stale_markers == []
    assert plan.publish == [] and plan.unknown == ["x/junk"]
