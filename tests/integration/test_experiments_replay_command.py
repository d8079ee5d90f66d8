"""`clickfan replay` against the real cluster, checked against kafka-consumer-groups."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from clickfan.experiments.kafka_tools import reset_offsets_dry_run
from clickfan.experiments.offsets import GroupOffsets, parse_target
from clickfan.settings import Settings
from tests.support import clickfan, wait_for


def _produce(settings: Settings, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for i in range(n):
        p.produce(topic, key=f"user-{i % 37}".encode(), value=b"{}")
    assert p.flush(30) == 0


def _commit(settings: Settings, group: str, topic: str, offsets: dict[int, int]) -> None:
    c = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group})
    c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    c.close()


@pytest.fixture
def group_with_history(stack: Settings, names) -> tuple[str, str, int]:  # noqa: ANN001
    """A topic with two batches a second apart, a group committed part-way."""
    _produce(stack, names.topic, 300)
    time.sleep(1.5)
    middle_ms = int(time.time() * 1000)
    time.sleep(0.5)
    _produce(stack, names.topic, 300)
    _commit(stack, names.es_group, names.topic, {p: 20 + p for p in range(stack.partitions)})
    return names.es_group, names.topic, middle_ms


def _replay_json(*args: str) -> dict[tuple[str, int], int]:
    done = clickfan("replay", *args, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    return {(r["topic"], r["partition"]): r["new"] for r in data["partitions"]}


@pytest.mark.parametrize("kind", ["earliest", "datetime", "shift"])
def test_targets_equal_kafka_consumer_groups_dry_run(
    stack: Settings, group_with_history: tuple[str, str, int], kind: str
) -> None:
    group, topic, middle_ms = group_with_history
    args = {
        "earliest": ["--to", "earliest"],
        "datetime": ["--to", datetime.fromtimestamp(middle_ms / 1000, UTC).isoformat()],
        "shift": ["--shift", "-7"],
    }[kind]
    mine = _replay_json(group, "--topic", topic, "--dry-run", *args)
    target = parse_target(
        args[1] if args[0] == "--to" else None, int(args[1]) if args[0] == "--shift" else None
    )
    tool, theirs = reset_offsets_dry_run(stack, group, topic, target.kafka_args())
    assert theirs, f"no offsets parsed from {tool.command}:\n{tool.stdout}\n{tool.stderr}"
    assert mine == theirs
    if kind == "datetime":
        # the time lies between the batches: every partition's target is mid-log
        ends = GroupOffsets(stack.bootstrap_servers).log_end(sorted(mine))
        assert 0 < sum(mine.values()) < sum(ends.values())
    # a dry run changes nothing
    assert GroupOffsets(stack.bootstrap_servers).committed(group)[(topic, 0)] == 20


def test_replay_applies_the_reset(
    stack: Settings, group_with_history: tuple[str, str, int]
) -> None:
    group, topic, _ = group_with_history
    planned = _replay_json(group, "--to", "earliest")  # all topics the group has offsets for
    assert set(planned.values()) == {0}
    assert GroupOffsets(stack.bootstrap_servers).committed(group) == planned


def test_replay_refuses_while_the_group_has_an_active_member(
    stack: Settings, group_with_history: tuple[str, str, int]
) -> None:
    group, topic, _ = group_with_history
    member = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    assigned: list[TopicPartition] = []
    member.subscribe([topic], on_assign=lambda c, ps: assigned.extend(ps))
    try:

        def joined() -> bool:
            member.poll(0.2)
            return bool(assigned)

        wait_for("the member to join", joined, timeout=60, pause=0)
        done = clickfan("replay", group, "--topic", topic, "--to", "earliest")
        assert done.returncode == 3, done.stdout + done.stderr
        assert "active member" in done.stderr and "stop its consumers" in done.stderr
        offsets = GroupOffsets(stack.bootstrap_servers).committed(group)
        assert offsets[(topic, 0)] == 20  # untouched
    finally:
        member.close()
