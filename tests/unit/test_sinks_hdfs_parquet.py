"""The archive's Parquet encoding (pure): the schema follows the contract; nothing is lost."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clickfan.events import FIELDS, decode_event, encode_event, event_time_utc, validate_event
from clickfan.generators.events import EventGenerator
from clickfan.settings import Settings
from clickfan.sinks import hdfs_formats, hdfs_parquet
from clickfan.sinks.base import SinkRecord
from clickfan.sinks.clients import WebHdfsConnection
from clickfan.sinks.hdfs_fence import TempFile, data_name, parse_temp
from clickfan.sinks.hdfs_layout import FORMATS, ArchiveFile
from clickfan.sinks.hdfs_roll import PendingRoll
from clickfan.sinks.hdfs_sink import HdfsConfig, HdfsSink, RollLimits
from clickfan.sinks.retry import RetryPolicy
from clickfan.streams import commands, configs
from tests.event_strategies import BASE_EVENTS, edge_events

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOPIC = "t.click-logs"


def _events(n: int, seed: int = 5) -> list[dict[str, Any]]:
    return EventGenerator(seed, start_time=datetime(2026, 3, 1, tzinfo=UTC), users=200).take(n)


def _round_trip(events: list[dict[str, Any]], first: int = 0) -> list[Any]:
    lines = [encode_event(e) for e in events]
    offsets = list(range(first, first + len(events)))
    return list(hdfs_parquet.decode(hdfs_parquet.encode_lines(TOPIC, 2, offsets, lines)))


def test_schema_is_the_contract_with_typed_columns() -> None:
    schema = hdfs_parquet.SCHEMA
    assert schema.names[: len(FIELDS)] == [f.name for f in FIELDS]
    for f in FIELDS:
        column = schema.field(f.name)
        assert column.nullable == f.nullable, f.name
        expected = {str: pa.string(), int: pa.int64(), bool: pa.bool_()}[f.type]
        if f.name == "event_time":
            expected = pa.timestamp("us", tz="UTC")
        assert column.type == expected, f.name


def test_a_file_holds_the_schema_the_codec_and_dictionaries() -> None:
    data = hdfs_parquet.encode_lines(TOPIC, 2, [7, 8, 9], [encode_event(e) for e in _events(3)])
    parquet = pq.ParquetFile(pa.BufferReader(data))
    assert parquet.schema_arrow.remove_metadata() == hdfs_parquet.SCHEMA.remove_metadata()
    columns = parquet.metadata.row_group(0)
    by_name = {columns.column(i).path_in_schema: columns.column(i) for i in range(len(FIELDS))}
    assert by_name["event_type"].compression.lower() == hdfs_parquet.CODEC
    assert "RLE_DICTIONARY" in by_name["event_type"].encodings
    assert "RLE_DICTIONARY" not in by_name["event_id"].encodings


def test_generated_events_round_trip_with_their_coordinates() -> None:
    events = _events(500)
    rows = _round_trip(events, first=40)
    assert [e for _, e in rows] == events
    assert [c for c, _ in rows] == [(TOPIC, 2, 40 + i) for i in range(500)]


def test_generated_times_need_no_text_column_and_others_keep_their_text() -> None:
    events = _events(3)
    events[1]["event_time"] = "2026-01-02T19:00:00+09:00"
    events[2]["event_time"] = "2026-01-02T10:00:00.123456789Z"
    data = hdfs_parquet.encode_lines(TOPIC, 0, [0, 1, 2], [encode_event(e) for e in events])
    table = pq.read_table(pa.BufferReader(data))
    assert table.column("event_time_text").to_pylist() == [
        None,
        *[e["event_time"] for e in events[1:]],
    ]
    assert table.column("event_time").to_pylist() == [
        event_time_utc(e["event_time"]) for e in events
    ]
    assert [e for _, e in hdfs_parquet.decode(data)] == events


def test_extra_fields_are_kept_as_json_text() -> None:
    events = _events(2)
    events[1].update({"campaign": {"id": 3, "tags": ["a", None, 2.5]}, "ab.test": "B é 中"})
    data = hdfs_parquet.encode_lines(TOPIC, 0, [0, 1], [encode_event(e) for e in events])
    extra = pq.read_table(pa.BufferReader(data)).column("extra").to_pylist()
    assert extra[0] is None
    assert extra[1] is not None
    assert json.loads(extra[1]) == {
        "campaign": {"id": 3, "tags": ["a", None, 2.5]},
        "ab.test": "B é 中",
    }
    assert [e for _, e in hdfs_parquet.decode(data)] == events


@PROPERTY
@given(st.lists(edge_events(), min_size=1, max_size=5))
def test_valid_events_at_the_edges_round_trip(objs: list[dict[str, Any]]) -> None:
    assume(all(validate_event(o) == [] for o in objs))
    # what the archiver gets: the event as the consumer decoded it from Kafka
    events = [decode_event(encode_event(o), 10**7) for o in objs]
    assert [e for _, e in _round_trip(events)] == events


def test_a_roll_encodes_each_hour_file_in_either_format() -> None:
    roll = PendingRoll(TOPIC, 1)
    events = BASE_EVENTS[:4]
    for offset, e in enumerate(events):
        roll.add(offset, 0.0, "dt=2026-03-01/hour=00", encode_event(e))
    roll.add(4, 0.0, None, None)  # dead-lettered: counted, not archived
    [(_, name, pending)] = roll.archive_files("parquet")
    assert name == ArchiveFile(TOPIC, 1, 0, 3, "parquet")
    assert name.name.endswith("+0+3.parquet")
    for fmt in FORMATS:
        data = hdfs_formats.encode(fmt, TOPIC, 1, pending)
        got, offsets = hdfs_formats.decode(ArchiveFile(TOPIC, 1, 0, 3, fmt), data)
        assert got == events
        assert offsets == (None if fmt == "jsonl" else [0, 1, 2, 3])
    assert hdfs_formats.encode("jsonl", TOPIC, 1, pending) == pending.data()
    with pytest.raises(ValueError, match="unknown archive format 'avro'"):
        hdfs_formats.encode("avro", TOPIC, 1, pending)


def test_a_parquet_file_of_another_partition_is_refused() -> None:
    data = hdfs_parquet.encode_lines(TOPIC, 2, [0], [encode_event(BASE_EVENTS[0])])
    with pytest.raises(ValueError, match="not of its own"):
        hdfs_formats.decode(ArchiveFile(TOPIC, 3, 0, 0, "parquet"), data)


def test_archive_names_of_both_formats_parse_and_recover() -> None:
    for fmt in FORMATS:
        f = ArchiveFile(TOPIC, 3, 120, 4711, fmt)
        assert ArchiveFile.parse(f.name) == f
        temp = data_name(100, 5000, "dt=2026-01-31/hour=23", f.name)
        assert parse_temp(temp, TOPIC, 3) == TempFile(100, 5000, f"dt=2026-01-31/hour=23/{f.name}")
    assert ArchiveFile.parse("t+1+2+3.parq") is None


def test_the_setting_and_the_flag_offer_the_formats_the_sink_writes() -> None:
    allowed = next(
        f.metadata["allowed"]
        for f in Settings.__dataclass_fields__.values()
        if f.name == "hdfs_format"
    )
    assert allowed.choices == FORMATS == commands._FORMATS
    assert Settings().hdfs_format == hdfs_formats.DEFAULT == "jsonl"


def test_archivers_and_the_redrive_write_the_format_of_the_settings() -> None:
    # streams.hdfs_archiver and streams.redrive both build their sink from configs.hdfs
    for fmt in FORMATS:
        assert configs.hdfs(Settings(hdfs_format=fmt)).format == fmt


def test_a_parquet_roll_is_encoded_off_the_event_loop_and_committed_as_encoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the sink on an in-memory NameNode (the zombie tests' fake, HDFS's rules for its calls)
    from tests.unit.test_sinks_hdfs_zombie import ROOT, FakeClient, FakeNameNode

    encoded_on: list[int] = []

    def encode(*args: Any) -> bytes:
        encoded_on.append(threading.get_ident())
        return hdfs_formats_encode(*args)

    hdfs_formats_encode = hdfs_formats.encode
    monkeypatch.setattr(hdfs_formats, "encode", encode)
    nn = FakeNameNode()
    connection = WebHdfsConnection(("http://fake",), "u", request_timeout_s=1.0)
    config = HdfsConfig(connection, ROOT, RollLimits(10_000, 1 << 30, 3600.0), "parquet")
    sink = HdfsSink(config, RetryPolicy(0.001, 0.001, 60.0), TOPIC, asyncio.Event())
    sink._client = FakeClient(nn)  # type: ignore[assignment]
    events = _events(300)
    records = [SinkRecord(TOPIC, 0, o, None, None, None, (), e) for o, e in enumerate(events)]

    async def roll() -> tuple[int, dict[int, int]]:
        await sink.open({0})
        await sink.put(records)
        return threading.get_ident(), await sink.flush(force=True)

    loop_thread, safe = asyncio.run(roll())
    assert safe == {0: len(events)}
    assert encoded_on and loop_thread not in encoded_on
    archived = {
        path: data
        for path, data in nn.entries.items()
        if path.endswith(".parquet") and "/_tmp/" not in path
    }
    got = []
    for path, data in sorted(archived.items()):
        events_read, offsets = hdfs_formats.decode(ArchiveFile.parse(path.rsplit("/", 1)[1]), data)
        got += list(zip(offsets, events_read, strict=True))
    assert sorted(got, key=lambda row: row[0]) == list(enumerate(events))
