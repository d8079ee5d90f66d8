"""The JSON the dashboard page reads, from given readings (no services)."""

from __future__ import annotations

from clickfan.app.dashboard.state import (
    ElasticInfo,
    GroupReading,
    HdfsInfo,
    History,
    PartitionInfo,
    ProcessInfo,
    Reading,
    build_state,
)
from clickfan.lagmon.evaluator import evaluate_group
from clickfan.lagmon.protocol import ConsumerOffset, ConsumerPartition, GroupStatus

TOPIC = "click-logs"


def _window(offsets: list[int], lags: list[int], end: int, t0: int = 1_000) -> ConsumerPartition:
    commits = tuple(
        ConsumerOffset(o, t0 + i * 1_000, lag)
        for i, (o, lag) in enumerate(zip(offsets, lags, strict=True))
    )
    return ConsumerPartition(commits, (end,), max(end - offsets[-1], 0))


def _indexer_status(now_ms: int) -> GroupStatus:
    """Partition 0 caught up; partition 1 has not committed for long while data arrived (STOP)."""
    topics = {
        TOPIC: [
            _window([10, 20, 30], [5, 3, 0], end=30),
            _window([5, 6, 7], [10, 20, 30], end=90),
        ],
        "other-topic": [_window([1, 2], [0, 0], end=2)],
    }
    return evaluate_group("local", "es-indexer", topics, now_ms)


def _reading(at_ms: int, ends: tuple[int, int], indexer: GroupStatus | None) -> Reading:
    return Reading(
        at_ms=at_ms,
        topic=TOPIC,
        dlq_topic=f"{TOPIC}.dlq",
        partitions=[
            PartitionInfo(0, 1, (1, 2, 3), (1, 2, 3), 0, ends[0]),
            PartitionInfo(1, 2, (2, 3, 1), (2, 3), 4, ends[1]),
        ],
        brokers={1: True, 2: True, 3: False},
        groups=[
            GroupReading("es-indexer", "indexer", indexer, {0: ("/10.0.0.1", "es-1")}),
            GroupReading(
                "hdfs-archiver",
                "archiver",
                None,
                {0: ("/10.0.0.2", "hdfs-1"), 1: ("/10.0.0.2", "hdfs-1")},
            ),
        ],
        elastic=ElasticInfo(25, (("clicks-2026.01.01", 20), ("clicks-2026.01.02", 5))),
        hdfs=HdfsInfo(3, 4096, "/clicklogs/dt=2026-01-02/hour=10/f.jsonl", 1_700),
        dead_letters={"es-indexer": 2, "hdfs-archiver": 3},
        dlq_records=5,
        processes=[ProcessInfo("producer", True, "running (pid 7)", "/tmp/p.log")],
        producer_rate=50.0,
        services={"elasticsearch": True, "kafka-3": False},
    )


def test_groups_show_the_evaluators_lag_and_status_per_partition() -> None:
    status = _indexer_status(now_ms=60_000)
    state = build_state(_reading(60_000, (30, 90), status))
    indexer, archiver = state["groups"]
    assert indexer["status"] == "ERR"  # STOP on partition 1 counts as ERR for the group
    assert [
        (p["partition"], p["committed"], p["lag"], p["status"]) for p in indexer["partitions"]
    ] == [
        (0, 30, 0, "OK"),
        (1, 7, 83, "STOP"),
    ]
    # the other topic's partitions are not this topic's
    assert indexer["totallag"] == 83
    assert indexer["members"] == [{"host": "/10.0.0.1", "client_id": "es-1", "partitions": [0]}]
    assert indexer["partitions"][1]["owner"] is None
    assert indexer["dead_letters"] == 2


def test_a_group_without_commits_shows_its_whole_log_and_no_status() -> None:
    state = build_state(_reading(60_000, (30, 90), None))
    archiver = state["groups"][1]
    assert archiver["status"] is None
    # log end minus log start: partition 1 starts at 4
    assert [p["lag"] for p in archiver["partitions"]] == [30, 86]
    assert archiver["totallag"] == 116
    assert archiver["members"] == [
        {"host": "/10.0.0.2", "client_id": "hdfs-1", "partitions": [0, 1]}
    ]


def test_topic_brokers_sinks_and_dead_letters() -> None:
    state = build_state(_reading(60_000, (30, 90), None))
    topic = state["topic"]
    assert topic["records"] == 30 + 86 and topic["produced"] == 120
    assert [p["under_replicated"] for p in topic["partitions"]] == [False, True]
    assert topic["partitions"][1] == {
        "partition": 1,
        "leader": 2,
        "replicas": [2, 3, 1],
        "isr": [2, 3],
        "under_replicated": True,
        "log_start": 4,
        "log_end": 90,
    }
    assert state["brokers"] == [
        {"id": 1, "up": True},
        {"id": 2, "up": True},
        {"id": 3, "up": False},
    ]
    assert state["elasticsearch"]["documents"] == 25
    assert state["elasticsearch"]["indices"][1] == {"name": "clicks-2026.01.02", "documents": 5}
    assert state["hdfs"] == {
        "files": 3,
        "bytes": 4096,
        "newest": "/clicklogs/dt=2026-01-02/hour=10/f.jsonl",
        "newest_mtime": 1_700,
    }
    assert state["dlq"] == {
        "topic": "click-logs.dlq",
        "records": 5,
        "by_group": {"es-indexer": 2, "hdfs-archiver": 3},
    }
    assert state["producer"] == {"managed": True, "rate": 50.0}
    assert state["services"] == [
        {"name": "elasticsearch", "running": True},
        {"name": "kafka-3", "running": False},
    ]


def test_unreachable_services_are_null_not_zero() -> None:
    r = _reading(60_000, (30, 90), None)
    r.partitions, r.elastic, r.hdfs, r.dlq_records, r.services = None, None, None, None, None
    r.errors = ["Elasticsearch: not reachable"]
    state = build_state(r)
    assert state["topic"]["readable"] is False and state["topic"]["partitions"] == []
    assert state["elasticsearch"] is None and state["hdfs"] is None
    assert state["dlq"]["records"] is None and state["services"] is None
    assert state["errors"] == ["Elasticsearch: not reachable"]


def test_history_rates_in_and_out_and_a_replay_counts_zero_out() -> None:
    history = History(window_s=3, interval_s=1)
    first = _reading(60_000, (30, 90), _indexer_status(60_000))
    assert history.add(first, build_state(first)) == {"in": 0.0, "out": {}}
    # two seconds later: 20 more records appended, the indexer committed 10 more
    topics = {
        TOPIC: [
            _window([10, 20, 40], [5, 3, 0], end=40),
            _window([5, 6, 7], [10, 20, 30], end=100),
        ]
    }
    second = _reading(62_000, (40, 100), evaluate_group("local", "es-indexer", topics, 62_000))
    rates = history.add(second, build_state(second))
    assert rates == {"in": 10.0, "out": {"es-indexer": 5.0}}
    state = build_state(second, rates)
    assert state["groups"][0]["rate_in"] == 10.0 and state["groups"][0]["rate_out"] == 5.0
    assert state["groups"][1]["rate_out"] == 0.0  # no commits: nothing out
    point = history.points[-1]
    assert point == {
        "t": 62_000,
        "lag": {"es-indexer": 93, "hdfs-archiver": 40 + 96},
        "in": 10.0,
        "out": {"es-indexer": 5.0},
    }
    # a replay moves the commits back: 0 out, never negative
    replayed = {TOPIC: [_window([40, 0], [0, 40], end=40), _window([7, 4], [93, 96], end=100)]}
    third = _reading(63_000, (40, 100), evaluate_group("local", "es-indexer", replayed, 63_000))
    assert history.add(third, build_state(third))["out"] == {"es-indexer": 0.0}
    # the window keeps window_s / interval_s points
    fourth = _reading(64_000, (40, 100), None)
    history.add(fourth, build_state(fourth))
    assert [p["t"] for p in history.points] == [62_000, 63_000, 64_000]
