"""Reset targets as Kafka's ConsumerGroupCommand computes them (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clickfan.errors import ClickfanError
from clickfan.experiments.kafka_tools import parse_get_offsets, parse_reset_offsets
from clickfan.experiments.offsets import Target, clamp, parse_target, plan_reset

T = "clicks"
PARTS = [(T, 0), (T, 1), (T, 2)]
START = {(T, 0): 0, (T, 1): 10, (T, 2): 5}
END = {(T, 0): 100, (T, 1): 50, (T, 2): 5}
COMMITTED = {(T, 0): 40, (T, 1): 12}


def new_offsets(target: Target, by_time: dict | None = None) -> list[int]:
    return [r.new for r in plan_reset(target, PARTS, COMMITTED, START, END, by_time)]


def test_earliest_and_latest_are_the_log_start_and_end() -> None:
    assert new_offsets(Target("earliest")) == [0, 10, 5]
    assert new_offsets(Target("latest")) == [100, 50, 5]


def test_an_offset_is_clamped_into_the_log() -> None:
    assert new_offsets(Target("offset", 30)) == [30, 30, 5]
    assert new_offsets(Target("offset", 0)) == [0, 10, 5]
    assert clamp(7, 10, 50) == 10 and clamp(70, 10, 50) == 50 and clamp(20, 10, 50) == 20


def test_a_shift_moves_the_committed_offset_and_is_clamped() -> None:
    plan = plan_reset(Target("shift", -5), PARTS[:2], COMMITTED, START, END)
    assert [r.new for r in plan] == [35, 10]  # 12 - 5 = 7 is below the log start 10
    assert [r.current for r in plan] == [40, 12]
    plan = plan_reset(Target("shift", 1000), PARTS[:2], COMMITTED, START, END)
    assert [r.new for r in plan] == [100, 50]


def test_a_shift_needs_a_committed_offset() -> None:
    with pytest.raises(ClickfanError, match="no committed offset"):
        plan_reset(Target("shift", 1), PARTS, COMMITTED, START, END)


def test_a_time_without_a_later_record_resets_to_the_log_end() -> None:
    by_time = {(T, 0): 60, (T, 1): -1, (T, 2): -1}
    assert new_offsets(Target("datetime", 1), by_time) == [60, 50, 5]


def test_parse_target() -> None:
    assert parse_target("earliest", None) == Target("earliest")
    assert parse_target("LATEST", None) == Target("latest")
    assert parse_target("42", None) == Target("offset", 42)
    assert parse_target(None, -3) == Target("shift", -3)
    when = parse_target("2025-01-31T12:00:00Z", None)
    assert when == Target("datetime", int(datetime(2025, 1, 31, 12, tzinfo=UTC).timestamp() * 1000))
    for bad in [("yesterday", None), (None, None), ("earliest", 1), ("-1", None)]:
        with pytest.raises(ClickfanError):
            parse_target(*bad)


def test_kafka_arguments_for_the_same_request() -> None:
    assert Target("earliest").kafka_args() == ["--to-earliest"]
    assert Target("shift", -2).kafka_args() == ["--shift-by", "-2"]
    assert Target("offset", 9).kafka_args() == ["--to-offset", "9"]
    ms = int(datetime(2025, 1, 31, 12, 0, 1, 250000, tzinfo=UTC).timestamp() * 1000)
    assert Target("datetime", ms).kafka_args() == ["--to-datetime", "2025-01-31T12:00:01.250Z"]


def test_parse_kafka_tool_output() -> None:
    reset = """
GROUP                          TOPIC                          PARTITION  NEW-OFFSET
g1                             my.topic                       0          12
g1                             my.topic                       1          0
"""
    assert parse_reset_offsets(reset) == {("my.topic", 0): 12, ("my.topic", 1): 0}
    assert parse_get_offsets("a.b:0:5\na.b:1:17\n") == {("a.b", 0): 5, ("a.b", 1): 17}
