"""`clickfan dlq`'s pure parts: judging dead letters, previews, times, filters, the
attempt header, the re-drive's selection and its rounds."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from clickfan.sinks.base import Rejection, SinkRecord
from clickfan.streams import deadletter as dl
from clickfan.streams import dlq as dlqs
from clickfan.streams.dlq_commands import _round
from clickfan.streams.records import to_sink_records
from clickfan.streams.redrive import Selection

GOOD = (
    ("trace", b"abc"),
    (dl.REASON, b"not_json"),
    (dl.MESSAGE, b"Expecting value"),
    (dl.SOURCE_TOPIC, b"click-logs"),
    (dl.SOURCE_PARTITION, b"3"),
    (dl.SOURCE_OFFSET, b"42"),
    (dl.SOURCE_TIMESTAMP, b"1767261600123"),
    (dl.GROUP, b"es-indexer"),
)


def _letter(headers: tuple[tuple[str, bytes], ...] = GOOD, ts: int | None = 1000) -> dlqs.Letter:
    return dlqs.judge(0, 5, ts, b"k", b"{", headers)


def test_a_well_formed_dead_letter_is_read_whole() -> None:
    letter = _letter()
    assert letter.problem is None
    assert (letter.group, letter.reason, letter.message) == (
        "es-indexer",
        "not_json",
        GOOD[2][1].decode(),
    )
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "click-logs",
        3,
        42,
    )
    assert letter.attempt == 1  # written before the attempt header existed
    assert _letter((*GOOD, (dl.ATTEMPT, b"3"))).attempt == 3


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ((), "missing header(s) clickfan.error.reason"),
        (GOOD[:-1], "missing header(s) clickfan.dlq.group"),
        ((*GOOD, (dl.GROUP, b"hdfs-archiver")), "header clickfan.dlq.group appears twice"),
        ((*GOOD[:-1], (dl.GROUP, b"\xff")), "header clickfan.dlq.group is not UTF-8"),
        ((*GOOD[:4], (dl.SOURCE_PARTITION, b"x"), *GOOD[5:]), "not a number"),
        ((*GOOD, (dl.ATTEMPT, b"0")), "out of range"),
    ],
)
def test_missing_or_malformed_headers_are_named(
    headers: tuple[tuple[str, bytes], ...], problem: str
) -> None:
    letter = _letter(headers)
    assert letter.problem is not None and problem in letter.problem
    assert letter.group is None and letter.reason is None


def test_previews_never_put_raw_control_bytes_on_the_terminal() -> None:
    shown = dlqs.preview(b"\x1b[31mred\x00\xff\xe2\x80\xaeevil\\n\t")
    assert shown == "\\x1b[31mred\\x00\\xff\\u202eevil\\n\\x09"
    assert all(c.isprintable() for c in shown)
    assert dlqs.preview(None) == "(null)"
    assert dlqs.preview("é".encode()) == "é"
    assert dlqs.preview(b"x" * 500, limit=10) == "x" * 10 + "... (500 bytes)"


def test_times_in_iso_8601_or_as_an_age() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    at = int(now.timestamp() * 1000)
    assert dlqs.parse_time("now", now) == at
    assert dlqs.parse_time("2h", now) == at - 2 * 3600 * 1000
    assert dlqs.parse_time("90s", now) == at - 90_000
    assert dlqs.parse_time("2026-11-28T12:00", now) == at  # UTC unless it says
    assert dlqs.parse_time("2026-11-28T21:00+09:00", now) == at
    for wrong in ("yesterday", "2x", "", "-3h"):
        with pytest.raises(ValueError, match="is not a time"):
            dlqs.parse_time(wrong, now)
    assert dlqs.show_time(at) == "2026-11-28T12:00:00.000Z"


def test_filters() -> None:
    letter = _letter(ts=1000)
    assert dlqs.Filter().matches(letter)
    assert dlqs.Filter(group="es-indexer", reason="not_json", since_ms=1000).matches(letter)
    assert not dlqs.Filter(group="hdfs-archiver").matches(letter)
    assert not dlqs.Filter(reason="empty").matches(letter)
    assert not dlqs.Filter(since_ms=1001).matches(letter)
    assert not dlqs.Filter(until_ms=1000).matches(letter)
    assert not dlqs.Filter(group="es-indexer").matches(_letter(()))  # malformed: no group


def _record(offset: int, headers: tuple[tuple[str, bytes], ...], value: bytes = b"{") -> SinkRecord:
    return SinkRecord("click-logs.dlq", 0, offset, b"k", value, 1000, headers, None)


def test_a_first_dead_letter_is_attempt_1() -> None:
    record = SinkRecord("click-logs", 3, 42, b"k", b"{", 5, (("trace", b"abc"),), None)
    headers = dict(dl.headers(Rejection(record, "not_json", "bad"), "es-indexer"))
    assert headers[dl.ATTEMPT] == b"1"
    assert dl.REDRIVE_OFFSET not in headers


def test_a_redriven_dead_letter_failing_again_keeps_its_source_and_counts_up() -> None:
    record = _record(17, (*GOOD, (dl.ATTEMPT, b"1")))
    headers = dl.headers(Rejection(record, "not_json", "still bad"), "es-indexer", redriving=True)
    as_dict = dict(headers)
    assert len(as_dict) == len(headers), "each header once"
    assert as_dict[dl.ATTEMPT] == b"2"
    assert (as_dict[dl.SOURCE_TOPIC], as_dict[dl.SOURCE_PARTITION], as_dict[dl.SOURCE_OFFSET]) == (
        b"click-logs",
        b"3",
        b"42",
    )
    assert as_dict[dl.SOURCE_TIMESTAMP] == b"1767261600123"
    assert (as_dict[dl.REDRIVE_TOPIC], as_dict[dl.REDRIVE_OFFSET]) == (b"click-logs.dlq", b"17")
    assert as_dict[dl.MESSAGE] == b"still bad" and as_dict[dl.GROUP] == b"es-indexer"
    assert as_dict["trace"] == b"abc"


def _event(offset: int, value: bytes, headers: Any) -> Any:
    message = SimpleNamespace(
        topic="click-logs.dlq",
        partition=0,
        offset=offset,
        key=b"k",
        value=value,
        timestamp=1.0,
        headers=list(headers),
        tp=TP("click-logs.dlq", 0),
    )
    return message


def test_the_redrive_hands_the_sink_only_what_it_selects() -> None:
    other = tuple((k, b"hdfs-archiver" if k == dl.GROUP else v) for k, v in GOOD)
    selection = Selection(
        dlqs.Filter(group="es-indexer"), purged={0: 1}, starts={0: 0}, ends={0: 5}
    )
    events = [
        _event(0, b"{", GOOD),  # purged
        _event(1, b"{", GOOD),  # ours, still malformed: dead-lettered again
        _event(2, b"{", other),  # another group's
        _event(3, b"{", (("x", b"y"),)),  # headers not ours: never re-driven
        _event(4, b"", GOOD),  # ours
        _event(5, b"{", GOOD),  # past the round's end: the next round's
    ]
    records, rejections = to_sink_records(events, 65536, selection)
    assert [r.offset for r in records] == [0, 1, 2, 3, 4, 5]
    assert all(r.event is None for r in records)
    assert [(r.record.offset, r.reason) for r in rejections] == [(1, "not_json"), (4, "empty")]
    assert (selection.redriven, selection.skipped, selection.malformed) == (2, 2, 1)
    assert selection.seen == {0: 5}


class _Reader:
    """The DLQ's committed offsets, and its records (every offset one, unless ``markers``:
    offsets that hold a transaction marker, no record)."""

    def __init__(
        self, committed: dict[str, dict[int, int]], markers: set[tuple[int, int]] = frozenset()
    ) -> None:
        self._committed = committed
        self._markers = markers

    def committed(self, group: str, partitions: list[int]) -> dict[int, int]:
        return self._committed.get(group, {})

    def first_record(self, p: int, start: int, end: int) -> int | None:
        return next((o for o in range(start, end) if (p, o) not in self._markers), None)


def test_rounds_a_new_one_starts_where_the_last_ended() -> None:
    marks = {0: (0, 50), 1: (0, 30)}
    # the last run passed over records past its round's end (0: 40): back to the end
    reader = _Reader({"g.redrive": {0: 45, 1: 30}, "g.redrive-round": {0: 40, 1: 30}})
    assert _round(reader, "g", marks) == ({0: 40, 1: 30}, {0: 50, 1: 30}, False)  # type: ignore[arg-type]


def test_rounds_an_interrupted_one_is_finished_first() -> None:
    marks = {0: (0, 50), 1: (0, 30)}
    reader = _Reader({"g.redrive": {0: 12, 1: 30}, "g.redrive-round": {0: 40, 1: 30}})
    assert _round(reader, "g", marks) == ({0: 12, 1: 30}, {0: 40, 1: 30}, True)  # type: ignore[arg-type]


def test_rounds_one_that_left_only_transaction_markers_is_over() -> None:
    marks = {0: (0, 50), 1: (0, 30)}
    # the run committed up to its last record, 38; 38 and 39 are commit markers
    reader = _Reader(
        {"g.redrive": {0: 38, 1: 30}, "g.redrive-round": {0: 40, 1: 30}}, {(0, 38), (0, 39)}
    )
    assert _round(reader, "g", marks) == ({0: 40, 1: 30}, {0: 50, 1: 30}, False)  # type: ignore[arg-type]


def test_a_redrive_is_finished_once_only_markers_are_left_before_the_end() -> None:
    selection = Selection(dlqs.Filter(group="g"), purged={}, starts={0: 0, 1: 7}, ends={0: 5, 1: 9})
    reader = _Reader({}, {(0, 4), (1, 8)})
    assert not selection.finished(reader)  # type: ignore[arg-type]
    selection.seen[0] = 4  # seen up to 3; 4 is a marker
    assert not selection.finished(reader)  # type: ignore[arg-type]  # 7 on partition 1 is left
    selection.seen[1] = 8
    assert selection.finished(reader)  # type: ignore[arg-type]


def test_rounds_start_no_earlier_than_the_purge_or_the_log_start() -> None:
    marks = {0: (5, 50), 1: (0, 30)}
    reader = _Reader({"g.dlq-purged": {1: 20}})
    assert _round(reader, "g", marks) == ({0: 5, 1: 20}, {0: 50, 1: 30}, False)  # type: ignore[arg-type]
    # an interrupted round whose rest was purged is over
    reader = _Reader(
        {"g.redrive": {0: 10, 1: 30}, "g.redrive-round": {0: 40, 1: 30}, "g.dlq-purged": {0: 40}}
    )
    assert _round(reader, "g", marks)[2] is False  # type: ignore[arg-type]
