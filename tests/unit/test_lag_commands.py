"""`clickfan lag evaluate` and the `lag` command group, without Kafka."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from clickfan.errors import ClickfanError
from clickfan.lagmon.commands import lag
from clickfan.lagmon.protocol import Status
from clickfan.lagmon.reader import GroupRow, PartitionRow
from clickfan.lagmon.render import render
from tests.support import clickfan

STALLED = {
    "commits": [
        {"offset": 1000, "timestamp_ms": 100000, "lag": 100},
        {"offset": 1000, "timestamp_ms": 200000, "lag": 150},
        {"offset": 1000, "timestamp_ms": 300000, "lag": 200},
    ],
    "broker_offsets": [1200, 1150],
    "current_lag": 200,
    "now_ms": 350000,
}


def evaluate(doc: Any) -> Result:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return CliRunner().invoke(lag, ["evaluate"], input=text)


def rejected(doc: Any) -> str:
    """The message of a window `lag evaluate` refuses; the CLI exits 2 with it."""
    result = evaluate(doc)
    assert isinstance(result.exception, ClickfanError), result.output
    assert result.exception.exit_code == 2
    return str(result.exception)


def with_commit(**fields: Any) -> dict[str, Any]:
    first = {**STALLED["commits"][0], **fields}
    return {**STALLED, "commits": [first, *STALLED["commits"][1:]]}


def test_evaluate_prints_the_long_status_name() -> None:
    result = evaluate(STALLED)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"status": "STALL"}
    growing = {**STALLED, "commits": [
        {"offset": 1000, "timestamp_ms": 100000, "lag": 100},
        {"offset": 1010, "timestamp_ms": 200000, "lag": None},
        {"offset": 1020, "timestamp_ms": 300000, "lag": 180},
    ]}  # fmt: skip
    assert json.loads(evaluate(growing).output) == {"status": "WARNING"}


def test_evaluate_an_array_keeps_the_order() -> None:
    caught_up = {**STALLED, "current_lag": 0}
    stopped = {**STALLED, "now_ms": 600000}
    lenient = {**STALLED, "allowed_lag": 200}
    result = evaluate([STALLED, caught_up, stopped, lenient])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"status": "STALL"}, {"status": "OK"}, {"status": "STOP"}, {"status": "OK"},
    ]  # fmt: skip


def test_evaluate_rewind() -> None:
    doc = {
        "commits": [
            {"offset": 30, "timestamp_ms": 1000, "lag": 0},
            {"offset": 0, "timestamp_ms": 2000, "lag": 40},
        ],
        "broker_offsets": [40],
        "current_lag": 40,
        "now_ms": 2500,
    }
    assert json.loads(evaluate(doc).output) == {"status": "REWIND"}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({**STALLED, "now_ms": "soon"}, "now_ms"),
        ({**STALLED, "current_lag": -1}, "current_lag"),
        ({**STALLED, "current_lag": True}, "current_lag"),
        ({k: v for k, v in STALLED.items() if k != "now_ms"}, "now_ms"),
        ({**STALLED, "commits": {"offset": 1}}, "commits"),
        ({**STALLED, "broker_offsets": [1, "x"]}, "broker_offsets[1]"),
        ({**STALLED, "allowed_lag": 1.5}, "allowed_lag"),
        ({**STALLED, "lag_allowed": 1}, "lag_allowed"),
        (with_commit(offset="1000"), "commits[0].offset"),
        (with_commit(lag=2.5), "commits[0].lag"),
        (with_commit(timestamp_ms=400000), "commits[1].timestamp_ms"),
        (with_commit(timestamp=1), "commits[0].timestamp"),
        ({**STALLED, "commits": [5]}, "commits[0]"),
        ([STALLED, {**STALLED, "now_ms": None}], "[1].now_ms"),
        (7, "window"),
    ],
)
def test_evaluate_names_the_bad_field(doc: Any, field: str) -> None:
    assert f"invalid window: {field}: " in rejected(doc)


def test_evaluate_refuses_what_is_not_json() -> None:
    assert "stdin is not JSON" in rejected("{commits: []")


def test_real_command_exits_2_naming_the_field() -> None:
    result = clickfan("lag", "evaluate", input=json.dumps(with_commit(offset=-5)), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "commits[0].offset" in result.stderr
    assert "Traceback" not in result.stderr


def test_lag_group_takes_a_group_name_or_a_subcommand() -> None:
    runner = CliRunner()
    # `lag G --cluster X` goes to `lag show`, which looks the cluster up before any Kafka call
    result = runner.invoke(lag, ["some-group", "--cluster", "nowhere"])
    assert isinstance(result.exception, ClickfanError)
    assert "no cluster named 'nowhere'" in str(result.exception)
    help_text = runner.invoke(lag, ["--help"]).output
    assert "evaluate" in help_text and "show" in help_text
    assert "Lag per partition of GROUP" in runner.invoke(lag, ["show", "--help"]).output


def test_render_one_group_and_all_groups() -> None:
    rows = [
        GroupRow("local", "es", Status.WARN, (
            PartitionRow("clicks", 0, 90, 100, Status.WARN),
            PartitionRow("clicks", 1, 100, 100, Status.OK),
        )),
        GroupRow("local", "hdfs", None, (PartitionRow("clicks", 0, 100, 100, None),)),
    ]  # fmt: skip
    one = render(rows[:1], one_group=True).splitlines()
    assert (
        one[0].split()
        == "cluster local group es status WARNING total lag 10 records-lag-max 10".split()
    )
    assert one[1].split() == ["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "STATUS"]
    assert one[2].split() == ["clicks", "0", "90", "100", "10", "WARNING"]
    every = render(rows, one_group=False).splitlines()
    assert [line.split() for line in every[1:]] == [
        ["es", "WARNING", "10", "10", "2"],
        ["hdfs", "-", "0", "0", "1"],
    ]
    assert rows[0].to_json()["partitions"][0] == {
        "topic": "clicks", "partition": 0, "committed_offset": 90, "log_end_offset": 100,
        "lag": 10, "status": "WARNING",
    }  # fmt: skip
    assert rows[1].to_json()["status"] is None


def test_a_partition_without_commits_shows_dash_and_the_whole_log() -> None:
    rows = [
        GroupRow("local", "new", Status.WARN, (
            PartitionRow("clicks", 0, None, 100, Status.WARN, log_start=40),
            PartitionRow("clicks", 1, 90, 100, Status.OK),
        )),
        GroupRow("local", "fresh", None, (PartitionRow("clicks", 0, None, 5, None),)),
    ]  # fmt: skip
    one = render(rows[:1], one_group=True).splitlines()
    assert "total lag 70" in one[0]
    assert "no commits yet on 1 of 2 partitions" in one[0]
    assert one[2].split() == ["clicks", "0", "-", "100", "60", "WARNING"]
    every = render(rows, one_group=False).splitlines()
    assert [line.split()[:3] for line in every[1:3]] == [
        ["new", "WARNING", "70"],
        ["fresh", "-", "5"],
    ]
    assert every[3].startswith("new: no commits yet on 1 of 2 partitions")
    assert every[4].startswith("fresh: no commits yet")
    doc = rows[0].to_json()
    assert (doc["totallag"], doc["note"]) == (70, "no commits yet on 1 of 2 partitions")
    assert doc["partitions"][0] == {
        "topic": "clicks", "partition": 0, "committed_offset": None, "log_end_offset": 100,
        "lag": 60, "status": "WARNING", "log_start_offset": 40, "note": "no commits yet",
    }  # fmt: skip
    assert "note" not in doc["partitions"][1]
    assert rows[1].to_json()["note"] == "no commits yet"
