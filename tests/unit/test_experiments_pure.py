"""Pure helpers of the experiments: sticky runs, archive coverage, Kafka tool parsing."""

from __future__ import annotations

from clickfan.experiments.fanout import gaps_and_overlaps, offsets_covered
from clickfan.experiments.partitioner import percentile, runs
from clickfan.sinks.hdfs_layout import ArchiveFile


def test_runs_are_consecutive_records_on_one_partition() -> None:
    assert runs([]) == []
    assert runs([0, 0, 0, 3, 3, 1, 0, 0]) == [(0, 3), (3, 2), (1, 1), (0, 2)]


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0


def test_archive_coverage_finds_gaps_and_overlaps() -> None:
    assert gaps_and_overlaps([(0, 9), (10, 19)], 20) == (0, 0)
    assert gaps_and_overlaps([(0, 9), (12, 19)], 20) == (2, 0)
    assert gaps_and_overlaps([(0, 9), (5, 19)], 20) == (0, 5)
    assert gaps_and_overlaps([(0, 9)], 15) == (5, 0)
    assert gaps_and_overlaps([], 0) == (0, 0)


def test_offsets_covered_groups_file_names_by_partition() -> None:
    files = [ArchiveFile("t", 1, 10, 19), ArchiveFile("t", 1, 0, 9), ArchiveFile("t", 0, 0, 4)]
    assert offsets_covered(files) == {0: [(0, 4)], 1: [(0, 9), (10, 19)]}
