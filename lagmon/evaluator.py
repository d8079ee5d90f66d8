"""Burrow's evaluation rules: one partition's window in, one status out.

The rules are pure functions (``partition_status`` and the checks it applies in
order), as in Burrow's ``core/internal/evaluator/caching.go``, including the
later additions there: allowed lag, STOP held off while recent broker offsets
show the consumer caught up, and REWIND only until the window gets back to the
offset it rewound from. ``Evaluator`` fetches a group from storage and rolls its
partitions up into a group status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from clickfan.lagmon.protocol import (
    ConsumerOffset,
    ConsumerPartition,
    ConsumerTopics,
    GroupStatus,
    PartitionStatus,
    Status,
)
from clickfan.lagmon.storage import Storage


def partition_status(
    offsets: Sequence[ConsumerOffset],
    broker_offsets: Sequence[int],
    current_lag: int,
    now_ms: int,
    allowed_lag: int = 0,
) -> Status:
    """The status of one partition's window (oldest commit first)."""
    # A partition at or below the allowed lag is never in trouble, whatever its history.
    if current_lag <= allowed_lag or not offsets:
        return Status.OK
    # STOP comes first: a window can hold a zero lag from long ago.
    if offsets_stopped(offsets, now_ms) and not recent_lag_zero(offsets, broker_offsets):
        return Status.STOP
    # Before the zero-lag test: a consumer often rewinds from zero lag.
    rewind = rewind_index(offsets)
    if rewind is not None and not rewind_recovered(offsets, rewind):
        return Status.REWIND
    if lag_always_above(offsets, allowed_lag):
        if offsets_stalled(offsets):
            return Status.STALL
        if lag_not_decreasing(offsets):
            return Status.WARN
    return Status.OK


def lag_always_above(offsets: Sequence[ConsumerOffset], allowed_lag: int) -> bool:
    """No commit in the window was caught up (commits without a lag don't count)."""
    return all(o.lag is None or o.lag > allowed_lag for o in offsets)


def rewind_index(offsets: Sequence[ConsumerOffset]) -> int | None:
    """Index of the first commit lower than the one before it, if any."""
    for i in range(1, len(offsets)):
        if offsets[i].offset < offsets[i - 1].offset:
            return i
    return None


def rewind_recovered(offsets: Sequence[ConsumerOffset], rewind: int) -> bool:
    """Whether a commit from the rewind on got back to the offset rewound from."""
    before = offsets[rewind - 1].offset
    return any(o.offset >= before for o in offsets[rewind:])


def offsets_stopped(offsets: Sequence[ConsumerOffset], now_ms: int) -> bool:
    """The time since the last commit is greater than the time the window spans."""
    first, last = offsets[0].timestamp, offsets[-1].timestamp
    return now_ms - last > last - first


def offsets_stalled(offsets: Sequence[ConsumerOffset]) -> bool:
    """Every commit in the window is at the same offset."""
    return all(o.offset == offsets[0].offset for o in offsets)


def lag_not_decreasing(offsets: Sequence[ConsumerOffset]) -> bool:
    """The lag never went down between consecutive commits that carry one."""
    lags = [o.lag for o in offsets if o.lag is not None]
    return all(b >= a for a, b in zip(lags, lags[1:], strict=False))


def recent_lag_zero(offsets: Sequence[ConsumerOffset], broker_offsets: Sequence[int]) -> bool:
    """A recent log-end offset was at or below the last commit: it was caught up lately."""
    last = offsets[-1].offset
    return any(b <= last for b in broker_offsets)


def no_commits_status(current_lag: int, allowed_lag: int = 0) -> Status:
    """A partition a member owns and has never committed (clickfan's rule; Burrow has none).

    Its lag is the whole log. Past the allowed lag that is WARN, not OK: the
    group is behind and nothing shows it moving, which is what Burrow's WARN
    says. Not ERR: Burrow's ERR statuses (STOP, STALL, REWIND) are judged on a
    window of commits over time, and there is none; a consumer that has just
    joined is in this state for a moment too. An empty log (nothing to commit
    yet) is OK.
    """
    return Status.WARN if current_lag > allowed_lag else Status.OK


def evaluate_partition(
    topic: str,
    number: int,
    partition: ConsumerPartition,
    now_ms: int,
    allowed_lag: int = 0,
    minimum_complete: float = 0.0,
) -> PartitionStatus:
    """Status, completeness and window ends of one partition."""
    filled = [o for o in partition.offsets if o is not None]
    size = len(partition.offsets)
    complete = len(filled) / size if size else 0.0
    status = Status.OK
    if partition.no_commits:
        status = no_commits_status(partition.current_lag, allowed_lag)
    # A window less filled than minimum_complete is reported as OK, as Burrow does.
    elif filled and complete >= minimum_complete:
        status = partition_status(
            filled, partition.broker_offsets, partition.current_lag, now_ms, allowed_lag
        )
    return PartitionStatus(
        topic=topic,
        partition=number,
        owner=partition.owner,
        client_id=partition.client_id,
        status=status,
        start=filled[0] if filled else None,
        end=filled[-1] if filled else None,
        current_lag=partition.current_lag,
        complete=complete,
        no_commits=partition.no_commits,
    )


def evaluate_group(
    cluster: str,
    group: str,
    topics: ConsumerTopics,
    now_ms: int,
    allowed_lag: int = 0,
    minimum_complete: float = 0.0,
) -> GroupStatus:
    """The group is as bad as its worst partition; STOP, STALL and REWIND count as ERR."""
    partitions = tuple(
        evaluate_partition(topic, number, p, now_ms, allowed_lag, minimum_complete)
        for topic in sorted(topics)
        for number, p in enumerate(topics[topic])
    )
    status = Status.OK
    maxlag: PartitionStatus | None = None
    for p in partitions:
        status = max(status, min(p.status, Status.ERR))
        if maxlag is None or p.current_lag > maxlag.current_lag:
            maxlag = p
    whole = sum(1 for p in partitions if p.complete == 1.0)
    return GroupStatus(
        cluster=cluster,
        group=group,
        status=status,
        complete=whole / len(partitions) if partitions else 0.0,
        partitions=partitions,
        partition_count=len(partitions),
        maxlag=maxlag,
        totallag=sum(p.current_lag for p in partitions),
    )


def now_ms() -> int:
    return int(time.time() * 1000)


class Evaluator:
    """Evaluates groups held in storage with one set of evaluation settings."""

    def __init__(
        self,
        storage: Storage,
        allowed_lag: int = 0,
        minimum_complete: float = 0.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.storage = storage
        self.allowed_lag = allowed_lag
        self.minimum_complete = minimum_complete
        self.clock = clock

    def group_status(self, cluster: str, group: str) -> GroupStatus:
        topics = self.storage.consumer(cluster, group)
        if topics is None:
            return GroupStatus.not_found(cluster, group)
        return evaluate_group(
            cluster, group, topics, self.clock(), self.allowed_lag, self.minimum_complete
        )
