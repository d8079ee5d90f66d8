"""Holding the two answers side by side, and whether a difference means anything yet.

The live and batch answers must be equal once both groups have committed every
record of the topic. Before that, a difference is only lag: each group's lag
(log end minus committed offset, read as `kafka-consumer-groups --describe`
does) is reported instead of a disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clickfan.analysis.questions import Answer
from clickfan.errors import ClickfanError
from clickfan.settings import Settings

AGREE = "agree"
DISAGREE = "disagree"
BEHIND = "behind"  # different, but a group still has records to take: not comparable yet
UNKNOWN_LAG = "lag unknown"  # different, and the lag could not be read


@dataclass(frozen=True)
class Difference:
    only_in_a: list[tuple[Any, ...]]
    only_in_b: list[tuple[Any, ...]]

    @property
    def empty(self) -> bool:
        return not self.only_in_a and not self.only_in_b


def difference(a: Answer, b: Answer) -> Difference:
    """Rows of each answer the other does not have (order counts: ranked lists must
    rank alike, so a row at another place is a difference)."""
    if a.rows == b.rows:
        return Difference([], [])
    rows_b = list(b.rows)
    only_a = []
    for row in a.rows:
        if row in rows_b:
            rows_b.remove(row)
        else:
            only_a.append(row)
    if not only_a and not rows_b:  # the same rows in another order
        return Difference(list(a.rows), list(b.rows))
    return Difference(only_a, rows_b)


@dataclass
class GroupLag:
    """Each group's total lag on the topic, and the log ends they were measured at."""

    lags: dict[str, int] = field(default_factory=dict)
    log_end: dict[tuple[str, int], int] = field(default_factory=dict)
    error: str | None = None

    @property
    def caught_up(self) -> bool:
        return self.error is None and bool(self.lags) and all(v == 0 for v in self.lags.values())

    def describe(self) -> str:
        if self.error is not None:
            return f"lag unknown ({self.error})"
        return ", ".join(f"{group} lag {n}" for group, n in self.lags.items())

    def to_json(self) -> dict[str, Any]:
        return {"groups": self.lags, "error": self.error}


def read_lag(settings: Settings, topic: str, groups: tuple[str, ...]) -> GroupLag:
    """Lag of each group on ``topic`` (a partition without a commit: from the log start)."""
    from clickfan.experiments.offsets import GroupOffsets

    try:
        offsets = GroupOffsets(settings.bootstrap_servers, timeout_s=10)
        tps = offsets.topic_partitions(topic)
        ends = offsets.log_end(tps)
        starts = offsets.log_start(tps)
        lags = {}
        for group in groups:
            done = offsets.committed(group)
            lags[group] = sum(max(ends[tp] - done.get(tp, starts[tp]), 0) for tp in tps)
    except ClickfanError as exc:
        return GroupLag(error=str(exc))
    return GroupLag(lags, ends)


def verdict(a: Answer, b: Answer, before: GroupLag, after: GroupLag) -> str:
    """agree, disagree (both caught up and nothing arrived meanwhile), behind or lag unknown."""
    if difference(a, b).empty:
        return AGREE
    if before.error is not None or after.error is not None:
        return UNKNOWN_LAG
    settled = before.caught_up and after.caught_up and before.log_end == after.log_end
    return DISAGREE if settled else BEHIND
