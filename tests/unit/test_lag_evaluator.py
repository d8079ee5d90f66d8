"""The evaluator's rules, case by case, as Burrow's caching_test.go checks them.

Each case lists a window and what every single check returns on it, then the
status the rules give in order. Cases 0-11 are Burrow's table (timestamps in
ms, "now" converted from Burrow's seconds); case 7 follows Burrow's later
rewind-recovery rule. The cases after them cover the edges Burrow's table does
not: allowed lag, equal versus greater, commits without lag, rewinds that do
or do not recover, and STOP held off by a broker offset at the last commit.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from clickfan.lagmon.evaluator import (
    evaluate_group,
    evaluate_partition,
    lag_always_above,
    lag_not_decreasing,
    no_commits_status,
    offsets_stalled,
    offsets_stopped,
    partition_status,
    recent_lag_zero,
    rewind_index,
    rewind_recovered,
)
from clickfan.lagmon.protocol import ConsumerOffset, ConsumerPartition, Status


def window(*commits: tuple[int, int, int | None]) -> list[ConsumerOffset]:
    return [ConsumerOffset(offset, ts, lag) for offset, ts, lag in commits]


@dataclass(frozen=True)
class Case:
    name: str
    offsets: list[ConsumerOffset]
    broker_offsets: list[int]
    current_lag: int
    now_ms: int
    lag_always_above: bool
    rewind: int | None  # index where the offset goes down, if it does
    recovered: bool  # only meaningful with a rewind
    stopped: bool
    stalled: bool
    not_decreasing: bool
    recent_zero: bool
    status: Status
    allowed_lag: int = 0


BURROW_LAGS = window(
    (1000, 100000, 0), (2000, 200000, 50), (3000, 300000, 100), (4000, 400000, 150),
    (5000, 500000, 200),
)  # fmt: skip
BURROW_STALL = window(
    (1000, 100000, 100), (1000, 200000, 150), (1000, 300000, 200), (1000, 400000, 250),
    (1000, 500000, 300),
)  # fmt: skip
ACTIVE = window(*((792748079 + i, 1512224618356 + 1000 * i, 0) for i in range(15)))

CASES = [
    Case("0 zero lag in the window: OK though lag grows", BURROW_LAGS, [5200], 200, 600_000,
         False, None, False, False, False, True, False, Status.OK),
    Case("1 time since last commit equal to the window's span: not stopped", BURROW_LAGS,
         [5200], 200, 900_000, False, None, False, False, False, True, False, Status.OK),
    Case("2 time since last commit greater than the span: STOP despite an old zero lag",
         BURROW_LAGS, [5200], 200, 1_000_000, False, None, False, True, False, True, False,
         Status.STOP),
    Case("3 STOP with lag always above zero",
         window((1000, 100000, 50), (2000, 200000, 100), (3000, 300000, 150),
                (4000, 400000, 200), (5000, 500000, 250)),
         [5250], 250, 1_000_000, True, None, False, True, False, True, False, Status.STOP),
    Case("4 same offset but a zero lag in the window: OK",
         window((1000, 100000, 0), (1000, 200000, 50), (1000, 300000, 100),
                (1000, 400000, 150), (1000, 500000, 200)),
         [1200], 200, 600_000, False, None, False, False, True, True, False, Status.OK),
    Case("5 same offset and lag always above zero: STALL", BURROW_STALL, [1300], 300, 600_000,
         True, None, False, False, True, True, False, Status.STALL),
    Case("6 STALL also when the lag stays the same",
         window((1000, 100000, 100), (1000, 200000, 100), (1000, 300000, 100),
                (1000, 400000, 100), (1000, 500000, 100)),
         [1100], 100, 600_000, True, None, False, False, True, True, False, Status.STALL),
    Case("7 rewind that got back past where it rewound from: not REWIND",
         window((1000, 100000, 100), (2000, 200000, 150), (3000, 300000, 200),
                (2000, 400000, 1250), (4000, 500000, 300)),
         [4300], 300, 600_000, True, 3, True, False, False, False, False, Status.OK),
    Case("8 current lag zero: OK though the timestamps say stopped",
         window((1000, 100000, 50), (2000, 200000, 100), (3000, 300000, 150),
                (4000, 400000, 200), (5000, 500000, 250)),
         [5250], 0, 1_000_000, True, None, False, True, False, True, False, Status.OK),
    Case("9 new data after a zero-lag history and no commits since: STOP", ACTIVE,
         [792749024, 792749000, 792748800, 792748600, 792748500], 931, 1512224650_000,
         False, None, False, True, False, True, False, Status.STOP),
    Case("10 a recent broker offset at the last commit holds STOP off", ACTIVE,
         [792748094, 792748093, 792748093, 792748093], 1, 1512224650_000,
         False, None, False, True, False, True, True, Status.OK),
    Case("11 case 0 with commits that carry no lag: same result",
         window((1000, 100000, 0), (1500, 150000, None), (2000, 200000, 50),
                (2500, 250000, None), (3000, 300000, 100), (3500, 350000, None),
                (4000, 400000, 150), (4500, 450000, None), (5000, 500000, 200),
                (5500, 550000, None)),
         [5700], 200, 600_000, False, None, False, False, False, True, False, Status.OK),
    # -- beyond Burrow's table
    Case("lag grows between every commit while offsets advance: WARNING",
         window((1000, 100000, 10), (1100, 200000, 20), (1200, 300000, 30),
                (1300, 400000, 40)),
         [1340], 40, 450_000, True, None, False, False, False, True, False, Status.WARN),
    Case("equal lag between commits counts as not decreasing: WARNING",
         window((1000, 100000, 30), (1100, 200000, 30), (1200, 300000, 30)),
         [1230], 30, 350_000, True, None, False, False, False, True, False, Status.WARN),
    Case("one decrease anywhere makes it OK",
         window((1000, 100000, 10), (1100, 200000, 40), (1200, 300000, 30),
                (1300, 400000, 50)),
         [1350], 50, 450_000, True, None, False, False, False, False, False, Status.OK),
    Case("commits without lag are skipped when comparing lags: WARNING",
         window((1000, 100000, None), (1100, 200000, 20), (1200, 300000, None),
                (1300, 400000, 20)),
         [1320], 20, 450_000, True, None, False, False, False, True, False, Status.WARN),
    Case("a decrease across a commit without lag still counts: OK",
         window((1000, 100000, 40), (1100, 200000, None), (1200, 300000, 30)),
         [1230], 30, 350_000, True, None, False, False, False, False, False, Status.OK),
    Case("allowed lag: a commit with lag at the allowance counts as caught up",
         window((1000, 100000, 100), (1100, 200000, 150), (1200, 300000, 200)),
         [1400], 200, 350_000, False, None, False, False, False, True, False, Status.OK,
         allowed_lag=100),
    Case("allowed lag: every commit above it and growing: WARNING",
         window((1000, 100000, 101), (1100, 200000, 150), (1200, 300000, 200)),
         [1400], 200, 350_000, True, None, False, False, False, True, False, Status.WARN,
         allowed_lag=100),
    Case("allowed lag: current lag equal to it is OK even when stopped",
         window((1000, 100000, 101), (1000, 200000, 150), (1000, 300000, 200)),
         [1300], 100, 9_000_000, True, None, False, True, True, True, False, Status.OK,
         allowed_lag=100),
    Case("allowed lag: current lag one above it is judged: STOP",
         window((1000, 100000, 101), (1000, 200000, 150), (1000, 300000, 200)),
         [1301], 101, 9_000_000, True, None, False, True, True, True, False, Status.STOP,
         allowed_lag=100),
    Case("STOP: broker offsets all above the last commit",
         window((1000, 100000, 5), (1100, 200000, 5)),
         [1300, 1200, 1105], 200, 400_000, True, None, False, True, False, True, False,
         Status.STOP),
    Case("no STOP: a broker offset equal to the last commit (caught up lately)",
         window((1000, 100000, 5), (1100, 200000, 3)),
         [1300, 1200, 1100], 200, 400_000, True, None, False, True, False, False, True,
         Status.OK),
    Case("no STOP: a broker offset below the last commit",
         window((1000, 100000, 5), (1100, 200000, 3)),
         [1300, 1050], 200, 400_000, True, None, False, True, False, False, True, Status.OK),
    Case("REWIND not recovered",
         window((1000, 100000, 100), (2000, 200000, 150), (3000, 300000, 200),
                (500, 400000, 2700), (900, 500000, 2400)),
         [3300], 2400, 550_000, True, 3, False, False, False, False, False, Status.REWIND),
    Case("REWIND from zero lag (reset to earliest): still REWIND",
         window((10, 100000, 0), (20, 200000, 0), (30, 300000, 0), (20, 400000, 10)),
         [40], 20, 450_000, False, 3, False, False, False, True, False, Status.REWIND),
    Case("REWIND recovered by reaching exactly the earlier offset, zero lag before: OK",
         window((20, 200000, 0), (30, 300000, 0), (20, 400000, 10), (30, 500000, 15)),
         [45], 15, 550_000, False, 2, True, False, False, True, False, Status.OK),
    Case("a rewind that recovered, then lag growing on every commit: WARNING",
         window((1000, 100000, 10), (900, 200000, 120), (1000, 300000, 130),
                (1100, 400000, 140)),
         [1240], 140, 450_000, True, 1, True, False, False, True, False, Status.WARN),
    Case("a single commit, just made, with lag: STALL",
         window((1000, 100000, 50)),
         [1050], 50, 100_000, True, None, False, False, True, True, False, Status.STALL),
    Case("no commits at all: OK", [], [100], 100, 100_000,
         True, None, False, False, False, False, False, Status.OK),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rules(case: Case) -> None:
    offsets = case.offsets
    if offsets:
        assert lag_always_above(offsets, case.allowed_lag) is case.lag_always_above
        assert rewind_index(offsets) == case.rewind
        if case.rewind is not None:
            assert rewind_recovered(offsets, case.rewind) is case.recovered
        assert offsets_stopped(offsets, case.now_ms) is case.stopped
        assert offsets_stalled(offsets) is case.stalled
        assert lag_not_decreasing(offsets) is case.not_decreasing
        assert recent_lag_zero(offsets, case.broker_offsets) is case.recent_zero
    status = partition_status(
        offsets, case.broker_offsets, case.current_lag, case.now_ms, case.allowed_lag
    )
    assert status == case.status


def test_long_names() -> None:
    assert [s.long_name for s in Status] == [
        "NOTFOUND", "OK", "WARNING", "ERROR", "STOP", "STALL", "REWIND",
    ]  # fmt: skip


def partition(
    commits: list[ConsumerOffset], size: int, current_lag: int, brokers: tuple[int, ...] = ()
) -> ConsumerPartition:
    padding = (None,) * (size - len(commits)) if commits else ()
    return ConsumerPartition(padding + tuple(commits), brokers, current_lag, "/127.0.0.1", "c1")


STALLED = window((1000, 100000, 100), (1000, 200000, 150), (1000, 300000, 200))


def test_incomplete_window_is_judged_only_above_minimum_complete() -> None:
    p = partition(STALLED, size=6, current_lag=200)
    below = evaluate_partition("t", 0, p, 350_000, minimum_complete=0.75)
    assert (below.status, below.complete) == (Status.OK, 0.5)
    at = evaluate_partition("t", 0, p, 350_000, minimum_complete=0.5)
    assert at.status == Status.STALL
    assert (at.start, at.end) == (STALLED[0], STALLED[-1])
    assert (at.owner, at.client_id, at.current_lag) == ("/127.0.0.1", "c1", 200)


def test_partition_without_commits_is_ok_and_incomplete() -> None:
    p = evaluate_partition("t", 3, partition([], size=0, current_lag=0), 1)
    assert (p.status, p.complete, p.start, p.end) == (Status.OK, 0.0, None, None)


def test_group_takes_its_worst_partition_and_counts_stop_as_error() -> None:
    ok = partition(window((10, 100000, 0), (20, 200000, 0)), 2, 0)
    warn = partition(window((10, 100000, 10), (20, 200000, 20)), 2, 30)
    stop = partition(window((10, 100000, 10), (20, 200000, 20)), 2, 40, (60,))
    topics = {"b": [ok, warn], "a": [stop]}
    g = evaluate_group("local", "g", topics, 250_000)
    assert g.status == Status.WARN
    assert [(p.topic, p.partition, p.status) for p in g.partitions] == [
        ("a", 0, Status.WARN), ("b", 0, Status.OK), ("b", 1, Status.WARN),
    ]  # fmt: skip
    # Later, without new commits: the lagging partitions have stopped.
    g = evaluate_group("local", "g", topics, 400_000)
    assert [p.status for p in g.partitions] == [Status.STOP, Status.OK, Status.STOP]
    assert g.status == Status.ERR
    assert (g.totallag, g.partition_count, g.complete) == (70, 3, 1.0)
    assert g.maxlag is not None and (g.maxlag.topic, g.maxlag.current_lag) == ("a", 40)


def test_group_complete_is_the_share_of_full_partitions_and_maxlag_the_first_largest() -> None:
    full = partition(window((10, 100000, 0), (20, 200000, 5)), 2, 5)
    half = partition(window((20, 200000, 5)), 2, 5)
    g = evaluate_group("local", "g", {"t": [full, half]}, 200_000)
    assert g.complete == 0.5
    assert g.maxlag is not None and g.maxlag.partition == 0
    assert evaluate_group("local", "g", {}, 1).complete == 0.0


def test_group_json_is_burrows() -> None:
    warn = partition(window((10, 100000, 10), (20, 200000, 20)), 2, 30)
    ok = partition(window((10, 100000, 0), (20, 200000, 0)), 2, 0)
    g = evaluate_group("local", "g", {"t": [warn, ok]}, 250_000)
    body = g.to_json(show_all=False)
    assert list(body) == [
        "cluster", "group", "status", "complete", "partitions", "partition_count", "maxlag",
        "totallag",
    ]  # fmt: skip
    assert body["status"] == "WARN"
    assert [p["partition"] for p in body["partitions"]] == [0]  # only partitions not OK
    assert body["partition_count"] == 2
    assert list(body["partitions"][0]) == [
        "topic", "partition", "owner", "client_id", "status", "start", "end", "current_lag",
        "complete",
    ]  # fmt: skip
    # Burrow v3's ConsumerOffset: observedAt (when the monitor saw the commit) after timestamp
    end = body["partitions"][0]["end"]
    assert end == {"offset": 20, "timestamp": 200000, "observedAt": 0, "lag": 20}
    assert list(end) == ["offset", "timestamp", "observedAt", "lag"]
    assert len(g.to_json()["partitions"]) == 2


# --------------------------------------------------------------------------- no commits
# clickfan's rule, not Burrow's: a partition a member owns and never committed.


@pytest.mark.parametrize(
    ("current_lag", "allowed_lag", "status"),
    [
        (0, 0, Status.OK),  # empty log: nothing to commit yet
        (1, 0, Status.WARN),
        (500, 0, Status.WARN),
        (500, 500, Status.OK),
        (501, 500, Status.WARN),
    ],
)
def test_no_commits_rule(current_lag: int, allowed_lag: int, status: Status) -> None:
    assert no_commits_status(current_lag, allowed_lag) == status


def test_owned_partition_without_commits_is_warn_and_says_so() -> None:
    owned = ConsumerPartition((), (40,), 40, "/127.0.0.1", "c1", assigned=True)
    p = evaluate_partition("t", 0, owned, 1, minimum_complete=0.5)
    assert (p.status, p.start, p.end, p.current_lag) == (Status.WARN, None, None, 40)
    assert p.to_json()["note"] == "no commits yet"
    committed = evaluate_partition("t", 1, partition(STALLED, 3, 0), 350_000)
    assert "note" not in committed.to_json()
    # A group with a committed, caught-up partition and an owned one never committed.
    g = evaluate_group("local", "g", {"t": [owned, partition(STALLED, 3, 0)]}, 350_000)
    assert (g.status, g.totallag) == (Status.WARN, 40)
    assert [p.status for p in g.partitions] == [Status.WARN, Status.OK]
