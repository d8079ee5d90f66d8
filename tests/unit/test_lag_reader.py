"""lagmon.reader's topic_lag (the demo's and the benchmark's lag) and the demo's lag line."""

from __future__ import annotations

from rich.console import Console

from clickfan.app.demo import PipelineView, Sample
from clickfan.lagmon.reader import TopicLag, topic_lag
from clickfan.settings import Settings


class FakeKafka:
    """The four reads topic_lag makes, answered from dicts."""

    def __init__(self, committed: dict, starts: dict, ends: dict) -> None:
        self._committed, self._starts, self._ends = committed, starts, ends

    def partitions(self, topic: str) -> list[int]:
        return sorted(p for t, p in self._ends if t == topic)

    def committed(self, group: str) -> dict:
        return self._committed

    def log_end_offsets(self, partitions: object) -> dict:
        return {tp: self._ends[tp] for tp in partitions}  # type: ignore[attr-defined]

    def log_start_offsets(self, partitions: object) -> dict:
        return {tp: self._starts[tp] for tp in partitions}  # type: ignore[attr-defined]


def test_topic_lag_counts_the_whole_log_of_partitions_without_a_commit() -> None:
    ends = {("t", 0): 100, ("t", 1): 50, ("t", 2): 30, ("other", 0): 9}
    starts = {("t", 0): 0, ("t", 1): 20, ("t", 2): 0}
    kafka = FakeKafka({("t", 0): 90, ("other", 0): 1}, starts, ends)
    found = topic_lag(kafka, "g", "t")  # type: ignore[arg-type]
    assert found == TopicLag(lag=10 + 30 + 30, partitions=3, uncommitted=2)
    assert found.note == "no commits yet on 2 of 3 partitions"
    none = topic_lag(FakeKafka({}, starts, ends), "g", "t")  # type: ignore[arg-type]
    assert (none.lag, none.note) == (100 + 30 + 30, "no commits yet")
    all_in = FakeKafka({("t", 0): 100, ("t", 1): 50, ("t", 2): 30}, starts, ends)
    assert topic_lag(all_in, "g", "t").note is None  # type: ignore[arg-type]


def test_the_demo_says_no_commits_yet() -> None:
    settings = Settings()
    view = PipelineView(settings)  # no call to Kafka until sample()
    sample = Sample(at=0.0, lag={settings.es_group: TopicLag(120, 6, 6)})
    console = Console(record=True, width=140)
    console.print(view.render(sample, []))
    lines = console.export_text().splitlines()
    es = next(line for line in lines if f"group {settings.es_group}" in line)
    assert "lag 120" in es and "no commits yet" in es
    hdfs = next(line for line in lines if f"group {settings.hdfs_group}" in line)
    assert "-" in hdfs and "no commits" not in hdfs


def test_the_demos_plain_line_says_no_commits_yet() -> None:
    settings = Settings()
    view = PipelineView(settings)
    sample = Sample(at=0.0, lag={settings.es_group: TopicLag(120, 6, 6)})
    line = view.line(sample)
    assert f"lag {settings.es_group} 120 (no commits yet)" in line
    assert f"lag {settings.hdfs_group} -" in line
