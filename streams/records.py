"""From fetched Kafka messages to sink records: judge each record, set the bad ones aside.

Nothing here may raise for what a record holds: a producer we never saw can
send any key, value and headers, and one record that raised would stop the
agent and every partition behind it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from faust.types import Message

from clickfan.events import InvalidEvent, decode_event
from clickfan.sinks.base import Rejection, SinkRecord


def _as_bytes(value: object) -> bytes | None:
    """A key or value as bytes (what the raw serializer gives); None stays None."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    # another serializer's output: keep it, in a form the dead-letter topic can carry
    text = value if isinstance(value, str) else repr(value)
    return text.encode("utf-8", "surrogatepass")


def _as_text(value: object) -> str:
    """A header key as text any producer can write back (the dead-letter topic's)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            # a key that was not UTF-8 on the wire arrives with its bytes as surrogate
            # escapes (see faust_compat.read_any_header_keys): show those bytes escaped
            raw = value.encode("utf-8", "surrogateescape") if _escapes_only(value) else None
            if raw is None:
                return value.encode("utf-8", "backslashreplace").decode("utf-8")
            return raw.decode("utf-8", "backslashreplace")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return repr(value)


def _escapes_only(text: str) -> bool:
    """Whether every lone surrogate in text is a surrogateescape of one byte."""
    return all(not "\ud800" <= c <= "\udfff" or "\udc80" <= c <= "\udcff" for c in text)


def _headers(raw: object) -> tuple[tuple[str, bytes], ...]:
    """Headers as (str, bytes) pairs, whatever shape they came in."""
    items: Sequence[object]
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list | tuple):
        items = raw
    else:  # None, or a shape no client gives
        return ()
    pairs = []
    for item in items:
        # a header is a (key, value) pair; anything else carries no header
        if isinstance(item, tuple | list) and len(item) == 2:
            key, value = item
            pairs.append((_as_text(key), _as_bytes(value) or b""))
    return tuple(pairs)


def _timestamp_ms(timestamp: object) -> int | None:
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        ms = timestamp * 1000
        if math.isfinite(ms):
            return round(ms)
    return None


def to_sink_records(
    messages: Sequence[Message],
    max_event_bytes: int,
    select: Callable[[SinkRecord], bool] | None = None,
) -> tuple[list[SinkRecord], list[Rejection]]:
    """Every message as a SinkRecord (``event`` None when invalid) and the invalid ones' reasons.

    ``select``: when given, a record it declines is passed on as handled (``event``
    None, no rejection): a re-drive's way of leaving other groups' dead letters alone.
    """
    records: list[SinkRecord] = []
    rejections: list[Rejection] = []
    for m in messages:
        value = _as_bytes(m.value)
        fields = (
            m.topic,
            m.partition,
            m.offset,
            _as_bytes(m.key),
            value,
            _timestamp_ms(m.timestamp),
            _headers(m.headers),
        )
        if select is not None:
            bare = SinkRecord(*fields, event=None)
            if not select(bare):
                records.append(bare)
                continue
        try:
            # one SinkRecord per record, built once (dataclasses.replace cost a fifth here)
            records.append(SinkRecord(*fields, event=decode_event(value, max_event_bytes)))
        except InvalidEvent as exc:
            record = SinkRecord(*fields, event=None)
            rejections.append(Rejection(record, exc.reason, "; ".join(exc.problems)))
            records.append(record)
    return records, rejections
