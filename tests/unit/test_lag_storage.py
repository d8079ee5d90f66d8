"""Sliding windows in storage: what is kept, what is dropped, how lag is computed."""

from __future__ import annotations

from clickfan.lagmon.protocol import ConsumerOffset
from clickfan.lagmon.storage import Storage


def storage(window: int = 3, min_distance_ms: int = 0) -> Storage:
    s = Storage(window, min_distance_ms)
    s.add_cluster("local")
    return s


def test_commit_is_dropped_until_the_partitions_log_end_offset_is_known() -> None:
    s = storage()
    assert not s.add_commit("local", "g", "t", 0, 5, 1000)
    s.set_topic_offsets("local", {"t": [10]})
    assert not s.add_commit("local", "g", "t", 1, 5, 1000)  # no such partition yet
    assert s.add_commit("local", "g", "t", 0, 5, 1000)
    assert not s.add_commit("elsewhere", "g", "t", 0, 5, 1000)
    assert s.groups("local") == ["g"]


def test_lag_is_computed_when_committed_against_the_newest_broker_offset() -> None:
    s = storage()
    s.set_topic_offsets("local", {"t": [10, 20]})
    s.add_commit("local", "g", "t", 0, 4, 1000)
    s.set_topic_offsets("local", {"t": [15, 20]})
    s.add_commit("local", "g", "t", 0, 16, 2000)  # ahead of the last read: lag 0
    topics = s.consumer("local", "g")
    assert topics is not None
    p0, p1 = topics["t"]
    assert p0.offsets == (None, ConsumerOffset(4, 1000, 6), ConsumerOffset(16, 2000, 0))
    assert p0.broker_offsets == (15, 10)  # newest first
    assert p0.current_lag == 0
    # A partition the group never committed is listed with an empty window, as in Burrow.
    assert (p1.offsets, p1.current_lag) == ((), 0)


def test_window_keeps_the_last_commits_and_current_lag_follows_the_brokers() -> None:
    s = storage(window=3)
    s.set_topic_offsets("local", {"t": [100]})
    for i in range(5):
        s.add_commit("local", "g", "t", 0, i * 10, 1000 * i)
    s.set_topic_offsets("local", {"t": [130]})
    (p,) = s.consumer("local", "g")["t"]  # type: ignore[index]
    assert [o.offset for o in p.offsets] == [20, 30, 40]
    assert p.current_lag == 90
    assert s.topic_offsets("local", "t") == [130]


def test_broker_offsets_keep_one_window_of_reads() -> None:
    s = storage(window=2)
    for end in (1, 2, 3):
        s.set_topic_offsets("local", {"t": [end]})
    s.add_commit("local", "g", "t", 0, 0, 1)
    assert s.consumer("local", "g")["t"][0].broker_offsets == (3, 2)  # type: ignore[index]


def test_commits_closer_than_min_distance_replace_the_previous_and_keep_its_time() -> None:
    s = storage(window=5, min_distance_ms=1000)
    s.set_topic_offsets("local", {"t": [100]})
    s.add_commit("local", "g", "t", 0, 10, 10_000)
    s.add_commit("local", "g", "t", 0, 11, 10_400)
    s.add_commit("local", "g", "t", 0, 12, 10_900)
    s.add_commit("local", "g", "t", 0, 13, 11_000)
    offsets = [o for o in s.consumer("local", "g")["t"][0].offsets if o]  # type: ignore[index]
    assert [(o.offset, o.timestamp) for o in offsets] == [(12, 10_000), (13, 11_000)]


def test_deleted_commits_and_topics_disappear() -> None:
    s = storage()
    s.set_topic_offsets("local", {"t": [10, 10], "u": [5]})
    s.add_commit("local", "g", "t", 0, 1, 1)
    s.add_commit("local", "g", "t", 1, 1, 1)
    s.add_commit("local", "h", "u", 0, 1, 1)
    assert s.consumers_of_topic("local", "u") == ["h"]
    s.delete_commit("local", "g", "t", 0)
    assert s.consumer("local", "g")["t"][0].offsets == ()  # type: ignore[index]
    s.delete_commit("local", "g", "t", 1)
    assert s.consumer("local", "g") is None
    s.set_topic_offsets("local", {"t": [10, 10]})  # topic u deleted
    assert s.topics("local") == ["t"]
    assert s.groups("local") == ["h"]
    assert s.consumer("local", "h") == {}


def test_owners_are_replaced_as_a_whole() -> None:
    s = storage()
    s.set_topic_offsets("local", {"t": [10, 10]})
    s.add_commit("local", "g", "t", 0, 1, 1)
    s.add_commit("local", "g", "t", 1, 1, 1)
    s.set_owners("local", "g", {("t", 0): ("/127.0.0.1", "c0"), ("t", 1): ("/127.0.0.1", "c1")})
    s.set_owners("local", "g", {("t", 1): ("/127.0.0.2", "c2")})
    p0, p1 = s.consumer("local", "g")["t"]  # type: ignore[index]
    assert (p0.owner, p0.client_id) == ("", "")
    assert (p1.owner, p1.client_id) == ("/127.0.0.2", "c2")


def test_unknown_cluster_and_group() -> None:
    s = storage()
    assert s.clusters() == ["local"]
    assert s.groups("nope") is None
    assert s.topics("nope") is None
    assert s.consumer("local", "nope") is None
    assert s.topic_offsets("local", "nope") is None


def test_a_group_with_members_and_no_commits_is_kept_with_the_whole_log_as_lag() -> None:
    s = storage()
    s.set_topic_offsets("local", {"t": [50, 30], "u": [7]}, starts={"t": [10, 0]})
    s.set_members("local", {"g": {("t", 0): ("/127.0.0.1", "c0"), ("t", 1): ("/127.0.0.1", "c1")}})
    assert s.groups("local") == ["g"]
    p0, p1 = s.consumer("local", "g")["t"]  # type: ignore[index]
    assert (p0.offsets, p0.current_lag, p0.assigned, p0.no_commits) == ((), 40, True, True)
    assert (p1.current_lag, p1.owner, p1.client_id) == (30, "/127.0.0.1", "c1")
    # The first commit: lag from the commit on, the window fills as usual.
    s.add_commit("local", "g", "t", 0, 45, 1000)
    p0, p1 = s.consumer("local", "g")["t"]  # type: ignore[index]
    assert (p0.current_lag, p0.no_commits, p1.current_lag) == (5, False, 30)
    # Members gone: the partition never committed goes, the committed one stays.
    s.set_members("local", {})
    (p0, p1) = s.consumer("local", "g")["t"]  # type: ignore[index]
    assert (p0.current_lag, p0.assigned, p1.offsets, p1.current_lag) == (5, False, (), 0)


def test_a_group_that_leaves_without_committing_is_gone() -> None:
    s = storage()
    s.set_topic_offsets("local", {"t": [5]})
    s.set_members("local", {"g": {("t", 0): ("/h", "c")}, "h": {("nope", 0): ("/h", "c")}})
    assert s.groups("local") == ["g"]  # h owns a topic whose offsets are not read yet
    s.set_members("local", {"g": {}})
    assert s.groups("local") == []


def test_each_commit_records_when_it_was_observed() -> None:
    seen = iter([111, 222])
    s = Storage(3, clock=lambda: next(seen))
    s.add_cluster("local")
    s.set_topic_offsets("local", {"t": [10]})
    s.add_commit("local", "g", "t", 0, 1, 5)
    s.add_commit("local", "g", "t", 0, 2, 6)
    offsets = s.consumer("local", "g")["t"][0].offsets  # type: ignore[index]
    assert [(o.timestamp, o.observed_at) for o in offsets if o] == [(5, 111), (6, 222)]
    assert offsets[-1].to_json() == {"offset": 2, "timestamp": 6, "observedAt": 222, "lag": 8}  # type: ignore[union-attr]
