"""The lag monitor on the real stack: Burrow's statuses reached by real commits.

Commits are what a consumer's commit sends (an OffsetCommit to the group
coordinator, written to __consumer_offsets), made per partition with explicit
offsets so that every partition of a scenario behaves the same. Before each
commit the test waits until the monitor has read the partitions' new log-end
offsets, so a commit's lag is exactly what the scenario means it to be. The
monitor runs in-process with a short interval and window to keep this cheap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
import requests
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from clickfan.lagmon import config as lagconfig
from clickfan.lagmon import httpserver
from clickfan.lagmon.monitor import Monitor
from clickfan.settings import Settings
from tests.support import CLICKFAN, clickfan, free_port, wait_for

INTERVAL_S = 0.5
WINDOW = 5
STEP_PAUSE_S = 1.0  # between commits, so a window spans a few seconds


@dataclass
class Api:
    url: str

    def get(self, path: str, expect: int = 200) -> dict[str, Any]:
        response = requests.get(f"{self.url}{path}", timeout=10)
        assert response.status_code == expect, response.text
        return response.json()

    def topic_offsets(self, topic: str) -> list[int] | None:
        """The monitor's newest log-end offsets of a topic; None before it has read them."""
        response = requests.get(f"{self.url}/v3/kafka/local/topic/{topic}", timeout=10)
        return response.json()["offsets"] if response.status_code == 200 else None

    def lag(self, group: str) -> dict[str, Any] | None:
        response = requests.get(f"{self.url}/v3/kafka/local/consumer/{group}/lag", timeout=10)
        return response.json()["status"] if response.status_code == 200 else None


def serve(config: lagconfig.MonitorConfig) -> Iterator[Api]:
    """Run a monitor and its HTTP server (on a free port) until the generator is closed."""
    mon = Monitor(config)
    loop = asyncio.new_event_loop()
    app = httpserver.make_app(mon.storage, mon.evaluator, config)
    runner = loop.run_until_complete(httpserver.start(app, config.host, 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    mon.start()
    try:
        yield Api(f"http://{config.host}:{runner.addresses[0][1]}")
    finally:
        mon.stop()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def monitor_config(stack: Settings, *clusters: lagconfig.ClusterConfig) -> lagconfig.MonitorConfig:
    return dataclasses.replace(
        lagconfig.load(stack),
        interval_s=INTERVAL_S,
        window=WINDOW,
        **({"clusters": clusters} if clusters else {}),
    )


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[Api]:
    yield from serve(monitor_config(stack))


class Scenario:
    """One topic's partitions, all produced to and committed alike."""

    def __init__(self, stack: Settings, api: Api, topic: str, group: str) -> None:
        self.api, self.topic, self.group = api, topic, group
        self.partitions = list(range(stack.partitions))
        self.ends = [0] * len(self.partitions)
        self.committed: list[int] = []
        self._producer = Producer({"bootstrap.servers": stack.bootstrap_servers})
        # Never subscribes: it commits explicit offsets, as a consumer does after processing.
        self._consumer = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": group})

    def close(self) -> None:
        self._consumer.close()

    def produce(self, per_partition: int | list[int]) -> None:
        counts = (
            per_partition if isinstance(per_partition, list) else [per_partition] * len(self.ends)
        )
        for p, count in zip(self.partitions, counts, strict=True):
            for i in range(count):
                self._producer.produce(self.topic, value=b"click %d" % i, partition=p)
            self.ends[p] += count
        assert self._producer.flush(30) == 0
        wait_for(
            f"the monitor to read log-end offsets {self.ends}",
            lambda: self.api.topic_offsets(self.topic) == self.ends,
            timeout=60,
            pause=0.1,
        )

    def commit(self, offsets: int | list[int] | None) -> None:
        """Commit offsets on every partition; None commits the log-end offsets (caught up)."""
        before = self._ends_of_window()
        if offsets is None:
            targets = list(self.ends)
        else:
            targets = offsets if isinstance(offsets, list) else [offsets] * len(self.ends)
        self._consumer.commit(
            offsets=[
                TopicPartition(self.topic, p, o)
                for p, o in zip(self.partitions, targets, strict=True)
            ],
            asynchronous=False,
        )
        self.committed = targets
        # The reader sees each commit in __consumer_offsets; wait until every window has it.
        wait_for(
            f"the monitor to store the commit of {targets}",
            lambda: all(
                end is not None and end != old and end["offset"] == o
                for end, old, o in zip(self._ends_of_window(), before, targets, strict=True)
            ),
            timeout=60,
            pause=0.1,
        )

    def _ends_of_window(self) -> list[dict[str, Any] | None]:
        status = self.api.lag(self.group)
        if status is None:
            return [None] * len(self.partitions)
        return [p["end"] for p in sorted(status["partitions"], key=lambda p: p["partition"])]

    def status(self) -> tuple[str, set[str]]:
        status = self.api.lag(self.group)
        assert status is not None
        return status["status"], {p["status"] for p in status["partitions"]}

    def step(self, produce: int, commit: int | list[int] | None) -> tuple[str, set[str]]:
        time.sleep(STEP_PAUSE_S)
        self.produce(produce)
        self.commit(commit)
        return self.status()


@pytest.fixture
def scenario(stack: Settings, api: Api, names: Any) -> Iterator[Scenario]:
    s = Scenario(stack, api, names.topic, f"{names.prefix}.lag")
    yield s
    s.close()


def run_until(
    scenario: Scenario, wanted: tuple[str, set[str]], steps: list[tuple[int, int]]
) -> list[tuple[str, set[str]]]:
    """Apply steps until the group and all its partitions reach `wanted`; the statuses seen.

    At least three commits first, so that the status judges a trend, not one commit.
    """
    seen = []
    for produce, commit in steps:
        seen.append(scenario.step(produce, commit))
        if len(seen) >= 3 and seen[-1] == wanted:
            return seen
    raise AssertionError(f"never reached {wanted}; statuses after each commit: {seen}")


def test_consumer_that_keeps_up_is_ok(scenario: Scenario) -> None:
    for _ in range(WINDOW):
        assert scenario.step(produce=10, commit=None) == ("OK", {"OK"})
    status = scenario.api.lag(scenario.group)
    assert status is not None
    assert status["totallag"] == 0
    assert status["complete"] == 1.0
    assert all(p["end"]["lag"] == 0 for p in status["partitions"])


def test_consumer_slower_than_the_producer_is_warning(scenario: Scenario) -> None:
    # 20 records in and 5 processed per step: lag 15, 30, 45, ... on every partition
    steps = [(20, 5 * (i + 1)) for i in range(8)]
    seen = run_until(scenario, ("WARN", {"WARN"}), steps)
    status = scenario.api.lag(scenario.group)
    assert status is not None
    lags = [p["current_lag"] for p in status["partitions"]]
    assert lags == [15 * len(seen)] * len(scenario.partitions)
    assert status["maxlag"]["current_lag"] == 15 * len(seen)


def test_consumer_committing_the_same_offset_while_lag_grows_stalls(scenario: Scenario) -> None:
    scenario.produce(5)
    run_until(scenario, ("ERR", {"STALL"}), [(10, 5)] * 8)
    status = scenario.api.lag(scenario.group)
    assert status is not None
    assert {p["end"]["offset"] for p in status["partitions"]} == {5}
    assert all(p["current_lag"] > p["start"]["lag"] > 0 for p in status["partitions"])


def test_consumer_that_stopped_while_data_arrives_is_stop_and_the_group_err(
    scenario: Scenario,
) -> None:
    for i in range(3):
        scenario.step(produce=10, commit=10 * (i + 1))
    scenario.produce(10)  # arrives after the last commit
    wait_for(
        "STOP on every partition and ERR for the group",
        lambda: scenario.status() == ("ERR", {"STOP"}),
        timeout=60,
    )


def test_group_reset_to_earliest_is_rewind_then_ok_once_past_the_old_position(
    scenario: Scenario,
) -> None:
    for _ in range(3):
        assert scenario.step(produce=10, commit=None) == ("OK", {"OK"})
    old_position = scenario.committed[0]
    # What `kafka-consumer-groups --reset-offsets --to-earliest` commits.
    scenario.commit(0)
    assert scenario.status() == ("ERR", {"REWIND"})
    scenario.produce(10)
    scenario.commit(old_position + 5)  # past the old position, with lag left
    assert scenario.status() == ("OK", {"OK"})


# --------------------------------------------------------------------------- agreement


def consumer_groups_describe(
    stack: Settings, group: str
) -> dict[tuple[str, int], tuple[int, int, int]]:
    """(topic, partition) -> (current offset, log-end offset, lag) from Kafka's own tool."""
    result = clickfan(
        "kafka", "kafka-consumer-groups", "--bootstrap-server", stack.bootstrap_servers,
        "--describe", "--group", group,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        cells = line.split()
        if len(cells) >= 6 and cells[0] == group and cells[2].isdigit():
            rows[(cells[1], int(cells[2]))] = (int(cells[3]), int(cells[4]), int(cells[5]))
    assert rows, result.stdout
    return rows


def test_lag_of_an_idle_group_equals_kafka_consumer_groups(
    stack: Settings, scenario: Scenario
) -> None:
    scenario.produce([3 + 7 * p for p in scenario.partitions])
    scenario.commit([p * 2 for p in scenario.partitions])
    expected = consumer_groups_describe(stack, scenario.group)
    assert len(expected) == len(scenario.partitions)

    status = scenario.api.lag(scenario.group)
    assert status is not None
    api = {
        (p["topic"], p["partition"]): (p["end"]["offset"], p["current_lag"])
        for p in status["partitions"]
    }
    assert api == {tp: (current, lag) for tp, (current, _, lag) in expected.items()}
    assert status["totallag"] == sum(lag for _, _, lag in expected.values())

    shown = clickfan("lag", scenario.group, "--json", "--monitor-url", scenario.api.url)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    cli = {
        (p["topic"], p["partition"]): (p["committed_offset"], p["log_end_offset"], p["lag"])
        for p in view["partitions"]
    }
    assert cli == expected
    assert view["totallag"] == status["totallag"]
    assert view["records_lag_max"] == max(lag for _, _, lag in expected.values())
    # One commit, behind the log end, then nothing: Burrow calls that stopped or stalled.
    assert view["status"] == "ERROR"


def test_lag_with_no_group_lists_every_group_on_one_line_each(
    stack: Settings, scenario: Scenario
) -> None:
    scenario.produce(4)
    scenario.commit(1)
    shown = clickfan("lag", "--monitor-url", scenario.api.url)
    assert shown.returncode == 0, shown.stderr
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert lines[0] == ["GROUP", "STATUS", "TOTAL-LAG", "RECORDS-LAG-MAX", "PARTITIONS"]
    mine = [cells for cells in lines if cells[0] == scenario.group]
    # one commit behind the log end and nothing since: STALL or STOP, so ERROR
    assert mine == [[scenario.group, "ERROR", "18", "3", "6"]]


def describe_rows(stack: Settings, group: str) -> dict[tuple[str, int], tuple[str, str, str]]:
    """(topic, partition) -> (CURRENT-OFFSET, LOG-END-OFFSET, LAG) as Kafka's tool prints them."""
    result = clickfan(
        "kafka", "kafka-consumer-groups", "--bootstrap-server", stack.bootstrap_servers,
        "--describe", "--group", group,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {
        (cells[1], int(cells[2])): (cells[3], cells[4], cells[5])
        for cells in (line.split() for line in result.stdout.splitlines())
        if len(cells) >= 6 and cells[0] == group and cells[2].isdigit()
    }


def test_a_group_that_joins_and_never_commits_is_not_lag_0(
    stack: Settings, api: Api, names: Any
) -> None:
    group = f"{names.prefix}.silent"
    counts = [3 + p for p in range(stack.partitions)]
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers})
    for p, count in enumerate(counts):
        for i in range(count):
            producer.produce(names.topic, value=b"click %d" % i, partition=p)
    assert producer.flush(30) == 0
    # A member that owns every partition and never commits (a worker whose agent died).
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([names.topic])
    try:

        def owns_all() -> bool:
            consumer.poll(0.2)  # joins the group; what it reads is never committed
            return len(consumer.assignment()) == stack.partitions

        wait_for("the member to own every partition", owns_all, timeout=60, pause=0)

        def seen_owning_all() -> dict[str, Any] | None:
            status = api.lag(group)
            owned = [p for p in (status or {}).get("partitions", []) if p.get("note")]
            return status if len(owned) == stack.partitions else None

        status = wait_for("the monitor to see the member own every partition", seen_owning_all)
        assert status["status"] == "WARN"  # not OK: the rule for no commits
        assert status["totallag"] == sum(counts)  # the whole log, not 0
        assert {
            p["partition"]: (p["status"], p["current_lag"], p["end"], p["note"])
            for p in status["partitions"]
        } == {p: ("WARN", count, None, "no commits yet") for p, count in enumerate(counts)}

        described = describe_rows(stack, group)
        assert described == {
            (names.topic, p): ("-", str(count), "-") for p, count in enumerate(counts)
        }
        shown = clickfan("lag", group, "--json", "--monitor-url", api.url)
        assert shown.returncode == 0, shown.stderr
        view = json.loads(shown.stdout)
        assert (view["status"], view["note"], view["totallag"]) == (
            "WARNING",
            "no commits yet",
            sum(counts),
        )
        assert [
            (p["partition"], p["committed_offset"], p["log_start_offset"], p["lag"], p["note"])
            for p in view["partitions"]
        ] == [(p, None, 0, count, "no commits yet") for p, count in enumerate(counts)]
        text = clickfan("lag", group, "--monitor-url", api.url)
        assert text.returncode == 0, text.stderr
        assert "no commits yet" in text.stdout.splitlines()[0]

        # One commit on partition 0: its lag agrees with Kafka's tool, the rest stay "-".
        consumer.commit(offsets=[TopicPartition(names.topic, 0, 2)], asynchronous=False)
        wait_for(
            "the monitor to store the commit",
            lambda: any(
                p["partition"] == 0 and p["end"] and p["end"]["offset"] == 2
                for p in (api.lag(group) or {"partitions": []})["partitions"]
            ),
            timeout=60,
            pause=0.1,
        )
        described = describe_rows(stack, group)
        assert described[(names.topic, 0)] == ("2", str(counts[0]), str(counts[0] - 2))
        assert all(described[(names.topic, p)][::2] == ("-", "-") for p in range(1, len(counts)))
        view = json.loads(clickfan("lag", group, "--json", "--monitor-url", api.url).stdout)
        cli = {
            (names.topic, p["partition"]): (
                "-" if p["committed_offset"] is None else str(p["committed_offset"]),
                str(p["log_end_offset"]),
                "-" if p["committed_offset"] is None else str(p["lag"]),
            )
            for p in view["partitions"]
        }
        assert cli == described
        assert view["note"] == f"no commits yet on {len(counts) - 1} of {len(counts)} partitions"
        assert view["totallag"] == counts[0] - 2 + sum(counts[1:])
        assert view["status"] in ("WARNING", "ERROR")  # the committed partition may be STOP
    finally:
        consumer.close()


# --------------------------------------------------------------------------- API and server


def test_unknown_names_are_404_and_bad_names_400(api: Api) -> None:
    assert api.get("/v3/kafka/no-such-cluster", expect=404)["error"] is True
    assert api.get("/v3/kafka/local/consumer/no-such-group/status", expect=404)["error"] is True
    assert api.get("/v3/kafka/local/topic/no-such-topic", expect=404)["error"] is True
    assert api.get("/v3/kafka/bad%20cluster/consumer", expect=400)["error"] is True
    assert api.get("/v3/kafka/local/topic/bad%24topic", expect=400)["error"] is True
    assert requests.get(f"{api.url}/burrow/admin", timeout=10).text == "GOOD"


def test_real_monitor_command_binds_only_to_loopback(stack: Settings) -> None:
    port = free_port()
    process = subprocess.Popen(
        [CLICKFAN, "monitor", "--port", str(port), "--interval", str(INTERVAL_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            "clickfan monitor to answer",
            lambda: _answers(f"http://127.0.0.1:{port}/burrow/admin"),
            timeout=60,
        )
        listening = [
            c.laddr
            for c in psutil.Process(process.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", port)]
        clusters = requests.get(f"http://127.0.0.1:{port}/v3/kafka", timeout=10).json()
        assert clusters["clusters"] == ["local"]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert re.search(r"lag monitor on http://127\.0\.0\.1:\d+", stderr)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).text == "GOOD"
    except requests.RequestException:
        return False


# --------------------------------------------------------------------------- two clusters


def test_two_clusters_each_with_its_own_groups(stack: Settings, names: Any) -> None:
    local = lagconfig.load(stack).cluster("local")
    extra = lagconfig.extra_cluster(stack)
    extra_admin = AdminClient({"bootstrap.servers": extra.bootstrap_servers, "log_level": 0})
    try:
        extra_admin.list_topics(timeout=10)
    except KafkaException:
        pytest.skip("the extra cluster (`clickfan up --extra-cluster`) is not running")
    topic = names.topic  # on local made by the fixture; on extra made here
    for future in extra_admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    groups = {"local": f"{names.prefix}.on-local", "extra": f"{names.prefix}.on-extra"}
    for cluster in (local, extra):
        consumer = Consumer(
            {"bootstrap.servers": cluster.bootstrap_servers, "group.id": groups[cluster.name]}
        )
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        consumer.close()

    monitor = serve(monitor_config(stack, local, extra))
    api = next(monitor)
    try:
        assert api.get("/v3/kafka")["clusters"] == ["extra", "local"]
        for cluster, group in groups.items():
            wait_for(
                f"group {group} on cluster {cluster}",
                lambda c=cluster, g=group: g in api.get(f"/v3/kafka/{c}/consumer")["consumers"],
                timeout=60,
            )
        assert groups["extra"] not in api.get("/v3/kafka/local/consumer")["consumers"]
        assert groups["local"] not in api.get("/v3/kafka/extra/consumer")["consumers"]
        assert api.get("/v3/kafka/extra")["module"]["servers"] == list(extra.servers)
    finally:
        monitor.close()
        for future in extra_admin.delete_topics([topic]).values():
            future.result()
