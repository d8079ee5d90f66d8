"""Resetting a consumer group's offsets, as `kafka-consumer-groups --reset-offsets` does.

The target of each partition is computed the way Kafka's ConsumerGroupCommand
computes it:

- ``earliest`` / ``latest``: the partition's log start / log end offset;
- a date-time: the first offset whose timestamp is at or after it, or the log
  end offset when no record is that recent;
- an offset: that offset, clamped into ``[log start, log end]``;
- a shift by N: the committed offset plus N, clamped the same way (a
  partition without a committed offset cannot be shifted).

Like Kafka's tool, a group with active members is refused: their next commit
would overwrite the reset.

:func:`plan_reset` is pure (unit-tested); :class:`GroupOffsets` talks to Kafka.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from clickfan import kafka_client
from clickfan.errors import ClickfanError

TopicPartition = tuple[str, int]

EXIT_ACTIVE_MEMBERS = 3  # exit code when the group is in use


@dataclass(frozen=True)
class Target:
    """What to reset to: exactly one of the kinds."""

    kind: str  # earliest | latest | datetime | offset | shift
    value: int = 0  # the offset, the shift, or the timestamp in ms

    def describe(self) -> str:
        if self.kind in ("earliest", "latest"):
            return self.kind
        if self.kind == "datetime":
            when = datetime.fromtimestamp(self.value / 1000, UTC)
            return f"datetime {when.isoformat(timespec='milliseconds')}"
        if self.kind == "shift":
            return f"shift by {self.value:+d}"
        return f"offset {self.value}"

    def kafka_args(self) -> list[str]:
        """The same request as `kafka-consumer-groups --reset-offsets` arguments."""
        if self.kind == "earliest":
            return ["--to-earliest"]
        if self.kind == "latest":
            return ["--to-latest"]
        if self.kind == "shift":
            return ["--shift-by", str(self.value)]
        if self.kind == "offset":
            return ["--to-offset", str(self.value)]
        when = datetime.fromtimestamp(self.value / 1000, UTC)
        # Kafka's tool reads yyyy-MM-dd'T'HH:mm:ss.SSS with an optional zone
        return ["--to-datetime", when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when:%f}"[:3] + "Z"]


_INT = re.compile(r"[+-]?\d+")


def parse_datetime(text: str) -> datetime:
    """ISO-8601; without a zone it is local time, as Kafka's tool reads it."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ClickfanError(
            f"{text!r} is not earliest, latest, an offset or an ISO-8601 date-time "
            "(e.g. 2025-01-31T12:00:00Z)",
            exit_code=2,
        ) from None
    return parsed if parsed.tzinfo else parsed.astimezone()


def parse_target(to: str | None, shift: int | None) -> Target:
    if (to is None) == (shift is None):
        raise ClickfanError("give exactly one of --to and --shift", exit_code=2)
    if shift is not None:
        return Target("shift", shift)
    assert to is not None
    word = to.strip().lower()
    if word in ("earliest", "latest"):
        return Target(word)
    if _INT.fullmatch(word):
        offset = int(word)
        if offset < 0:
            raise ClickfanError(f"an offset cannot be negative: {to}", exit_code=2)
        return Target("offset", offset)
    return Target("datetime", round(parse_datetime(to.strip()).timestamp() * 1000))


def clamp(offset: int, start: int, end: int) -> int:
    """Kafka's checkOffsetsRange: below the log start -> start, past the end -> end."""
    return max(start, min(offset, end))


@dataclass(frozen=True)
class PartitionReset:
    topic: str
    partition: int
    current: int | None  # committed offset; None when the group has none
    new: int
    log_start: int
    log_end: int

    @property
    def lag_after(self) -> int:
        return self.log_end - self.new


def plan_reset(
    target: Target,
    partitions: list[TopicPartition],
    committed: dict[TopicPartition, int],
    log_start: dict[TopicPartition, int],
    log_end: dict[TopicPartition, int],
    by_time: dict[TopicPartition, int] | None = None,
) -> list[PartitionReset]:
    """The new offset of each partition. ``by_time``: offset for the timestamp, -1 if none."""
    plan = []
    for tp in sorted(partitions):
        start, end = log_start[tp], log_end[tp]
        current = committed.get(tp)
        if target.kind == "earliest":
            new = start
        elif target.kind == "latest":
            new = end
        elif target.kind == "offset":
            new = clamp(target.value, start, end)
        elif target.kind == "shift":
            if current is None:
                raise ClickfanError(
                    f"cannot shift {tp[0]}:{tp[1]}: the group has no committed offset there "
                    "(reset it to earliest, latest, a time or an offset first)",
                    exit_code=2,
                )
            new = clamp(current + target.value, start, end)
        elif target.kind == "datetime":
            found = (by_time or {}).get(tp, -1)
            # no record at or after the time: the log end, as Kafka's tool does
            new = found if found is not None and found >= 0 else end
        else:  # pragma: no cover - Target is built by parse_target
            raise ValueError(target.kind)
        plan.append(PartitionReset(tp[0], tp[1], current, new, start, end))
    return plan


class GroupOffsets:
    """A consumer group's offsets on one cluster, read and reset via the admin API."""

    def __init__(self, bootstrap_servers: str, timeout_s: float = 15.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self.admin = AdminClient(
            {
                **kafka_client.confluent(bootstrap_servers),
                "client.id": "clickfan-replay",
                "log_level": 0,
            }
        )

    def _fail(self, what: str, exc: Exception) -> ClickfanError:
        detail = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
        return ClickfanError(
            f"{what} failed on {self.bootstrap_servers}: {detail}. Is Kafka up (`clickfan status`)?"
        )

    def active_members(self, group: str) -> tuple[str, list[str]]:
        """The group's state and its members' client ids (empty for an unknown group)."""
        try:
            description = self.admin.describe_consumer_groups(
                [group], request_timeout=self.timeout_s
            )[group].result()
        except KafkaException as exc:
            raise self._fail(f"describing group {group!r}", exc) from None
        members = [f"{m.client_id} ({m.host})" for m in description.members]
        return description.state.name, members

    def committed(self, group: str) -> dict[TopicPartition, int]:
        try:
            result = self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=self.timeout_s
            )[group].result()
        except KafkaException as exc:
            raise self._fail(f"reading group {group!r}'s offsets", exc) from None
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions
            if tp.error is None and tp.offset >= 0
        }

    def topic_partitions(self, topic: str) -> list[TopicPartition]:
        metadata = self.admin.list_topics(topic, timeout=self.timeout_s)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise ClickfanError(f"topic {topic!r} does not exist on {self.bootstrap_servers}")
        return [(topic, p) for p in sorted(found.partitions)]

    def list_offsets(self, partitions: list[TopicPartition], spec: OffsetSpec) -> dict:
        if not partitions:
            return {}
        request = {KafkaTopicPartition(t, p): spec for t, p in partitions}
        try:
            futures = self.admin.list_offsets(request, request_timeout=self.timeout_s)
            return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            raise self._fail("listing offsets", exc) from None

    def log_start(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return self.list_offsets(partitions, OffsetSpec.earliest())

    def log_end(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return self.list_offsets(partitions, OffsetSpec.latest())

    def plan(self, group: str, target: Target, topic: str | None = None) -> list[PartitionReset]:
        committed = self.committed(group)
        if topic is not None:
            partitions = self.topic_partitions(topic)
        else:
            # as --all-topics: every partition the group has an offset for
            partitions = sorted(committed)
            if not partitions:
                raise ClickfanError(
                    f"group {group!r} has no committed offsets; name the topic with --topic",
                    exit_code=2,
                )
        by_time = None
        if target.kind == "datetime":
            by_time = self.list_offsets(partitions, OffsetSpec.for_timestamp(target.value))
        return plan_reset(
            target,
            partitions,
            committed,
            self.log_start(partitions),
            self.log_end(partitions),
            by_time,
        )

    def refuse_if_active(self, group: str) -> None:
        state, members = self.active_members(group)
        if members or state not in ("EMPTY", "DEAD", "UNKNOWN"):
            raise ClickfanError(
                f"group {group!r} is {state.lower()} with {len(members)} active member(s): "
                f"{', '.join(members) or '-'}. Offsets can only be reset while the group is "
                "inactive (as kafka-consumer-groups --reset-offsets insists): stop its "
                "consumers first, then run this again.",
                exit_code=EXIT_ACTIVE_MEMBERS,
            )

    def apply(self, group: str, plan: list[PartitionReset]) -> None:
        request = ConsumerGroupTopicPartitions(
            group, [KafkaTopicPartition(r.topic, r.partition, r.new) for r in plan]
        )
        try:
            result = self.admin.alter_consumer_group_offsets(
                [request], request_timeout=self.timeout_s
            )[group].result()
        except KafkaException as exc:
            error = exc.args[0]
            if error.name() in ("UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS"):
                raise ClickfanError(
                    f"group {group!r} became active while resetting: stop its consumers first",
                    exit_code=EXIT_ACTIVE_MEMBERS,
                ) from None
            raise self._fail(f"resetting group {group!r}", exc) from None
        failed = [tp for tp in result.topic_partitions if tp.error is not None]
        if failed:
            raise ClickfanError(
                "Kafka refused some resets: "
                + ", ".join(f"{tp.topic}:{tp.partition} {tp.error.str()}" for tp in failed)
            )

    def reset(
        self, group: str, target: Target, topic: str | None = None, dry_run: bool = False
    ) -> list[PartitionReset]:
        """Plan and (unless dry_run) apply; refuses while the group has active members."""
        self.refuse_if_active(group)
        plan = self.plan(group, target, topic)
        if not dry_run:
            self.apply(group, plan)
        return plan


def plan_json(group: str, target: Target, plan: list[PartitionReset], dry_run: bool) -> dict:
    return {
        "group": group,
        "target": target.describe(),
        "dry_run": dry_run,
        "partitions": [asdict(r) for r in plan],
    }
