"""Click events as Parquet: an explicit schema from the event contract, lossless both ways.

The columns, in this order (a batch engine sees the contract's own names):

- every field of clickfan.events.FIELDS, typed (str -> string, int -> int64,
  bool -> boolean; nullable as the contract says), except that ``event_time``
  is a ``timestamp[us, tz=UTC]``: the instant clickfan.events.event_time_utc
  reads, the one the hour folder and the Elasticsearch index are chosen by;
- ``event_time_text``: the original ``event_time`` string, only where the
  timestamp cannot give it back. The timestamp drops the producer's zone
  offset and digits beyond microseconds, so without it ``2026-01-02T19:00:00+09:00``
  would come back as ``2026-01-02T10:00:00.000Z``. It is null when the text is
  exactly the canonical rendering (:func:`canonical_time`, the form our own
  generator writes), so for ordinary traffic it costs next to nothing;
- ``extra``: the fields beyond the contract (a tolerant reader lets producers
  add them), as the JSON text of one object in clickfan.events.encode_event's
  form, null when there are none. They may nest and vary from event to event,
  so one text column keeps them all losslessly instead of a schema that would
  change with every producer;
- ``kafka_topic``, ``kafka_partition``, ``kafka_offset``: where the record came
  from. Each row of a JSON Lines file only has its file name to tell, and a
  batch job that compacts files loses names; the columns cost well under a
  byte per row (the topic and partition are constant per file, offsets are
  delta-encoded) and make every row checkable and replayable by offset.

Strings that repeat are dictionary-encoded (see DICTIONARY); the codec is
zstd (measured against snappy: see docs/archive.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from clickfan.events import FIELD_NAMES, FIELDS, encode_event, event_time_utc

EVENT_TIME = "event_time"
EVENT_TIME_TEXT = "event_time_text"
EXTRA = "extra"
KAFKA_TOPIC = "kafka_topic"
KAFKA_PARTITION = "kafka_partition"
KAFKA_OFFSET = "kafka_offset"

_TYPES: dict[type, pa.DataType] = {str: pa.string(), int: pa.int64(), bool: pa.bool_()}
TIMESTAMP = pa.timestamp("us", tz="UTC")
_FIELD_SET = frozenset(FIELD_NAMES)


def _contract_field(name: str, kind: type, nullable: bool) -> pa.Field:
    return pa.field(name, TIMESTAMP if name == EVENT_TIME else _TYPES[kind], nullable=nullable)


SCHEMA = pa.schema(
    [_contract_field(f.name, f.type, f.nullable) for f in FIELDS]
    + [
        pa.field(EVENT_TIME_TEXT, pa.string(), nullable=True),
        pa.field(EXTRA, pa.string(), nullable=True),
        pa.field(KAFKA_TOPIC, pa.string(), nullable=False),
        pa.field(KAFKA_PARTITION, pa.int32(), nullable=False),
        pa.field(KAFKA_OFFSET, pa.int64(), nullable=False),
    ],
    metadata={"clickfan.archive": "click events, one row per Kafka record"},
)

# Columns whose values repeat within a file (measured: each saves 0.1 to 5 bytes per
# event in a 1000-row file); event ids and times are unique per row, where a
# dictionary only adds its own pages, and constant columns compress to nothing anyway.
DICTIONARY = (
    "schema_version",
    "user_id",
    "session_id",
    "event_type",
    "page_url",
    "referrer",
    "element",
    "device",
    "os",
    "browser",
    "user_agent",
    "ip",
    "country",
    "city",
)
CODEC = "zstd"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def canonical_time(micros: int) -> str:
    """The text a timestamp gives back when ``event_time_text`` is null.

    UTC, milliseconds, ``Z``: the form clickfan's generator writes. A time with
    sub-millisecond digits renders truncated, so it never equals its original
    text and keeps that text.
    """
    t = _EPOCH + micros * _MICRO
    # not strftime: %Y gives "1", not "0001", for the year 1 on Linux
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}Z"
    )


def _micros(event_time: str) -> int:
    return (event_time_utc(event_time) - _EPOCH) // _MICRO


def encode(topic: str, partition: int, rows: Iterable[tuple[int, dict[str, Any]]]) -> bytes:
    """One Parquet file of (offset, valid event) rows, in the order given."""
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for offset, event in rows:
        for name in FIELD_NAMES:
            columns[name].append(event[name])
        text = event[EVENT_TIME]
        micros = _micros(text)
        columns[EVENT_TIME][-1] = micros
        columns[EVENT_TIME_TEXT].append(None if canonical_time(micros) == text else text)
        extra = {k: v for k, v in event.items() if k not in _FIELD_SET}
        columns[EXTRA].append(encode_event(extra).decode("utf-8") if extra else None)
        columns[KAFKA_TOPIC].append(topic)
        columns[KAFKA_PARTITION].append(partition)
        columns[KAFKA_OFFSET].append(offset)
    table = pa.Table.from_arrays(
        [pa.array(columns[f.name], type=f.type) for f in SCHEMA], schema=SCHEMA
    )
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=CODEC,
        use_dictionary=list(DICTIONARY),
        # contiguous offsets: a few bits per row instead of eight bytes
        column_encoding={KAFKA_OFFSET: "DELTA_BINARY_PACKED"},
        row_group_size=max(1, table.num_rows),  # a roll is one row group
    )
    return sink.getvalue().to_pybytes()


def encode_lines(topic: str, partition: int, offsets: list[int], lines: list[bytes]) -> bytes:
    """:func:`encode` of the archiver's pending lines (each an encode_event of a valid event)."""
    # orjson reads back exactly what encode_event wrote: valid events hold no value
    # (lone surrogate, NaN, integer beyond 64 bits) where the two could differ
    return encode(topic, partition, zip(offsets, map(orjson.loads, lines), strict=True))


def decode(data: bytes) -> Iterator[tuple[tuple[str, int, int], dict[str, Any]]]:
    """((topic, partition, offset), event) of each row of a file :func:`encode` wrote.

    The events equal the ones encoded (as dicts: key order aside).
    """
    table = pq.read_table(pa.BufferReader(data))
    names = set(table.column_names)
    missing = [n for n in SCHEMA.names if n not in names]
    if missing:
        raise ValueError(f"not a clickfan Parquet archive file: no column {', '.join(missing)}")
    columns = {n: table.column(n).to_pylist() for n in SCHEMA.names if n != EVENT_TIME}
    columns[EVENT_TIME] = table.column(EVENT_TIME).cast(pa.int64()).to_pylist()
    for i in range(table.num_rows):
        event = {name: columns[name][i] for name in FIELD_NAMES}
        text = columns[EVENT_TIME_TEXT][i]
        event[EVENT_TIME] = canonical_time(columns[EVENT_TIME][i]) if text is None else text
        extra = columns[EXTRA][i]
        if extra is not None:
            event.update(json.loads(extra))
        coords = (columns[KAFKA_TOPIC][i], columns[KAFKA_PARTITION][i], columns[KAFKA_OFFSET][i])
        yield coords, event
