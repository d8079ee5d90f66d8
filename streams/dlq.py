"""Reading the dead-letter topic back: each record with its headers judged, filters, counts.

The DLQ is shared: each group dead-letters on its own (header clickfan.dlq.group).
A group's view of it starts where `clickfan dlq purge` left it: the committed
offsets of the consumer group ``<group>.dlq-purged`` (never joined, only
committed), so purging one group never hides another group's records, and
nothing is deleted from the shared topic.

A record whose clickfan headers are missing or malformed (written by something
else) is shown with what is wrong and is never re-driven.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from clickfan import kafka_client
from clickfan.errors import ClickfanError
from clickfan.streams import deadletter as dl

READ_TIMEOUT_S = 60.0
# a group with members (live, or killed and not yet timed out) refuses outside commits
_GROUP_BUSY = (
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
)
_REQUIRED = (dl.REASON, dl.GROUP, dl.SOURCE_TOPIC, dl.SOURCE_PARTITION, dl.SOURCE_OFFSET)


def purged_group(group: str) -> str:
    return f"{group}.dlq-purged"


def redrive_group(group: str) -> str:
    return f"{group}.redrive"


def round_group(group: str) -> str:
    """Committed offsets: where the current re-drive round of ``group`` ends."""
    return f"{group}.redrive-round"


@dataclass(frozen=True)
class Letter:
    """One DLQ record, its clickfan headers read (``problem`` says why they cannot be)."""

    partition: int
    offset: int
    timestamp_ms: int | None  # when it was dead-lettered
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    problem: str | None
    group: str | None = None
    reason: str | None = None
    message: str = ""
    source_topic: str = ""
    source_partition: int = -1
    source_offset: int = -1
    attempt: int = 1


def judge(
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: tuple[tuple[str, bytes], ...],
) -> Letter:
    """A DLQ record as a Letter; never raises for what the record holds."""
    base = Letter(partition, offset, timestamp_ms, key, value, headers, None)
    ours: dict[str, str] = {}
    for k, v in headers:
        if not k.startswith("clickfan."):
            continue
        if k in ours:
            return _bad(base, f"header {k} appears twice")
        try:
            ours[k] = v.decode("utf-8")
        except UnicodeDecodeError:
            return _bad(base, f"header {k} is not UTF-8")
    missing = [k for k in _REQUIRED if not ours.get(k)]
    if missing:
        return _bad(base, f"missing header(s) {', '.join(missing)}")
    try:
        source_partition = int(ours[dl.SOURCE_PARTITION])
        source_offset = int(ours[dl.SOURCE_OFFSET])
        attempt = int(ours.get(dl.ATTEMPT, "1"))
    except ValueError:
        return _bad(base, "a partition, offset or attempt header is not a number")
    if source_partition < 0 or source_offset < 0 or attempt < 1:
        return _bad(base, "a partition, offset or attempt header is out of range")
    return Letter(
        partition,
        offset,
        timestamp_ms,
        key,
        value,
        headers,
        None,
        group=ours[dl.GROUP],
        reason=ours[dl.REASON],
        message=ours.get(dl.MESSAGE, ""),
        source_topic=ours[dl.SOURCE_TOPIC],
        source_partition=source_partition,
        source_offset=source_offset,
        attempt=attempt,
    )


def _bad(base: Letter, problem: str) -> Letter:
    return Letter(
        base.partition,
        base.offset,
        base.timestamp_ms,
        base.key,
        base.value,
        base.headers,
        problem,
    )


@dataclass(frozen=True)
class Filter:
    group: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, letter: Letter) -> bool:
        """Whether a well-formed letter passes; a malformed one passes only unfiltered by
        group and reason (it has neither)."""
        if self.group is not None and letter.group != self.group:
            return False
        if self.reason is not None and letter.reason != self.reason:
            return False
        ts = letter.timestamp_ms
        if self.since_ms is not None and (ts is None or ts < self.since_ms):
            return False
        return not (self.until_ms is not None and (ts is None or ts >= self.until_ms))


# -- times ---------------------------------------------------------------------------

_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: datetime | None = None) -> int:
    """Epoch ms from ISO 8601 (UTC unless it says) or an age such as 90s, 15m, 2h, 3d, or now.

    Raises ValueError with a message for the user.
    """
    now = now or datetime.now(UTC)
    text = text.strip()
    if text == "now":
        return int(now.timestamp() * 1000)
    ago = _AGO.match(text)
    if ago:
        when = now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
        return int(when.timestamp() * 1000)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2026-11-28T10:00, UTC unless it says), "
            "an age (90s, 15m, 2h, 3d) or now"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def show_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


# -- previews ------------------------------------------------------------------------


def preview(data: bytes | None, limit: int = 200) -> str:
    """Bytes as one line safe for a terminal: invalid UTF-8 and control or format
    characters escaped (\\xNN, \\uNNNN), cut to ``limit`` characters."""
    if data is None:
        return "(null)"
    text = data.decode("utf-8", "backslashreplace")
    out: list[str] = []
    for c in text:
        if c == "\\" or unicodedata.category(c)[0] != "C":
            out.append(c)
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    shown = "".join(out)
    return shown if len(shown) <= limit else shown[:limit] + f"... ({len(data)} bytes)"


# -- reading -------------------------------------------------------------------------


class DlqReader:
    """Reads the DLQ with a plain consumer: assigned, never joined, never committing."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._consumer = Consumer(
            {
                **kafka_client.confluent(bootstrap_servers),
                "group.id": "clickfan-dlq-reader",  # assign() only: never joins or commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                # dead letters are written in transactions (streams.deadletter): an aborted
                # attempt is never shown, and the end is the last stable offset
                "isolation.level": "read_committed",
            }
        )

    def close(self) -> None:
        self._consumer.close()

    def partitions(self) -> list[int]:
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=15)
        except KafkaException as exc:
            raise ClickfanError(
                f"cannot reach Kafka at {self._bootstrap} ({exc.args[0].str()}); start the "
                "stack with `clickfan up`"
            ) from None
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise ClickfanError(f"the dead-letter topic {self._topic} does not exist")
        return sorted(topic.partitions)

    def ends(self) -> dict[int, tuple[int, int]]:
        """Partition -> (log start, end) now."""
        return {
            p: self._consumer.get_watermark_offsets(TopicPartition(self._topic, p), timeout=30)
            for p in self.partitions()
        }

    def committed(self, group: str, partitions: list[int]) -> dict[int, int]:
        """Partition -> ``group``'s committed offset on the DLQ (absent: none)."""
        reader = Consumer(
            {
                **kafka_client.confluent(self._bootstrap),
                "group.id": group,
                "enable.auto.commit": False,
            }
        )
        try:
            tps = [TopicPartition(self._topic, p) for p in partitions]
            return {tp.partition: tp.offset for tp in reader.committed(tps, 30) if tp.offset >= 0}
        finally:
            reader.close()

    def commit(self, group: str, offsets: dict[int, int], wait_s: float = 60.0) -> None:
        """Commit ``offsets`` for ``group`` without joining it. A member of it that was
        killed holds it until its session times out: waits for that, up to ``wait_s``."""
        writer = Consumer(
            {
                **kafka_client.confluent(self._bootstrap),
                "group.id": group,
                "enable.auto.commit": False,
            }
        )
        deadline = time.monotonic() + wait_s
        try:
            tps = [TopicPartition(self._topic, p, o) for p, o in offsets.items()]
            while True:
                try:
                    writer.commit(offsets=tps, asynchronous=False)
                    return
                except KafkaException as exc:
                    error = exc.args[0]
                    if error.code() not in _GROUP_BUSY or time.monotonic() > deadline:
                        raise ClickfanError(
                            f"cannot move {group}'s position on {self._topic}: {error.str()} "
                            "(is a re-drive of this group running?)"
                        ) from None
                time.sleep(1.0)
        finally:
            writer.close()

    def offset_at(self, partitions: list[int], ms: int) -> dict[int, int]:
        """Partition -> the first offset whose timestamp is at or after ``ms`` (or the end)."""
        tps = [TopicPartition(self._topic, p, ms) for p in partitions]
        found = self._consumer.offsets_for_times(tps, timeout=30)
        out = {}
        for tp in found:
            if tp.offset < 0:  # no record that late: the end
                tp.offset = self._consumer.get_watermark_offsets(tp, timeout=30)[1]
            out[tp.partition] = tp.offset
        return out

    def letters(self, starts: dict[int, int], ends: dict[int, int]) -> Iterator[Letter]:
        """Every record from starts[p] up to ends[p] (exclusive), partition by partition."""
        for p in sorted(starts):
            for message in self._records(p, starts[p], ends[p]):
                kind, ms = message.timestamp()
                yield judge(
                    p,
                    message.offset(),
                    ms if kind != 0 and ms >= 0 else None,
                    message.key(),
                    message.value(),
                    tuple((k, v or b"") for k, v in message.headers() or []),
                )

    def first_record(self, p: int, start: int, end: int) -> int | None:
        """The offset of the first record in start..end-1 of partition ``p``, or None when
        there is none: what lies there are transaction markers and aborted attempts."""
        for message in self._records(p, start, end):
            return message.offset()
        return None

    def _records(self, p: int, start: int, end: int) -> Iterator[Message]:
        """The records at offsets start..end-1 of partition ``p``, in order."""
        if start >= end:
            return
        self._consumer.assign([TopicPartition(self._topic, p, start)])
        try:
            deadline = time.monotonic() + READ_TIMEOUT_S
            while time.monotonic() < deadline:
                message = self._consumer.poll(1.0)
                if message is None:
                    continue
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        return
                    raise ClickfanError(f"reading {self._topic}[{p}]: {message.error()}")
                deadline = time.monotonic() + READ_TIMEOUT_S  # progress: wait anew
                if message.offset() >= end:
                    return
                yield message
                if message.offset() == end - 1:
                    return
            raise ClickfanError(f"reading {self._topic}[{p}] took over {READ_TIMEOUT_S:.0f}s")
        finally:
            self._consumer.unassign()


class GroupViews:
    """Where each group's view of the DLQ starts (its purge position), asked once per group."""

    def __init__(self, reader: DlqReader, partitions: list[int]) -> None:
        self._reader = reader
        self._partitions = partitions
        self._purged: dict[str, dict[int, int]] = {}

    def purged(self, group: str) -> dict[int, int]:
        if group not in self._purged:
            self._purged[group] = self._reader.committed(purged_group(group), self._partitions)
        return self._purged[group]

    def visible(self, letter: Letter) -> bool:
        """Whether a letter is past its group's purge position (malformed ones always are)."""
        if letter.group is None:
            return True
        return letter.offset >= self.purged(letter.group).get(letter.partition, 0)


def read(
    bootstrap_servers: str,
    topic: str,
    wanted: Filter,
    starts: dict[int, int] | None = None,
    ends: dict[int, int] | None = None,
) -> Iterator[Letter]:
    """The letters that pass ``wanted`` and their group's purge position, up to the DLQ's end
    as of now; ``starts`` (partition -> offset) to begin later than the log start. ``ends``
    is filled with where this read stops (partition -> offset), to read on from there."""
    reader = DlqReader(bootstrap_servers, topic)
    try:
        marks = reader.ends()
        if ends is not None:
            ends.update({p: end for p, (_, end) in marks.items()})
        views = GroupViews(reader, sorted(marks))
        begin = {p: max(low, (starts or {}).get(p, low)) for p, (low, _) in marks.items()}
        for letter in reader.letters(begin, {p: end for p, (_, end) in marks.items()}):
            if views.visible(letter) and wanted.matches(letter):
                yield letter
    finally:
        reader.close()


@dataclass
class Tally:
    count: int = 0
    oldest_ms: int | None = None
    newest_ms: int | None = None

    def add(self, ms: int | None) -> None:
        self.count += 1
        if ms is not None:
            self.oldest_ms = ms if self.oldest_ms is None else min(self.oldest_ms, ms)
            self.newest_ms = ms if self.newest_ms is None else max(self.newest_ms, ms)


def summarize(
    letters: Iterator[Letter], into: dict[str, dict[str, Tally]] | None = None
) -> dict[str, dict[str, Tally]]:
    """group -> reason -> tally ("(malformed headers)" as both for the ones without);
    ``into``: a summary to add the letters to (the dashboard reads only what is new)."""
    out: dict[str, dict[str, Tally]] = {} if into is None else into
    for letter in letters:
        group = letter.group or "(malformed headers)"
        reason = letter.reason or "(malformed headers)"
        out.setdefault(group, {}).setdefault(reason, Tally()).add(letter.timestamp_ms)
    return out


def summary_json(summary: dict[str, dict[str, Tally]]) -> dict[str, dict[str, dict[str, Any]]]:
    """`clickfan dlq --json` (and the dashboard's panel): group -> reason -> count, times."""
    return {
        g: {
            r: {
                "count": t.count,
                "oldest": show_time(t.oldest_ms),
                "newest": show_time(t.newest_ms),
            }
            for r, t in reasons.items()
        }
        for g, reasons in summary.items()
    }
