"""From Faust events to sink records: judge each record, set the bad ones aside."""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT

from clickfan.events import InvalidEvent, decode_event
from clickfan.sinks.base import Rejection, SinkRecord


def _headers(raw: object) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple((str(k), bytes(v or b"")) for k, v in items)  # type: ignore[union-attr]


def to_sink_records(
    events: Sequence[EventT], max_event_bytes: int
) -> tuple[list[SinkRecord], list[Rejection]]:
    """Every event as a SinkRecord (``event`` None when invalid) and the invalid ones' reasons."""
    records: list[SinkRecord] = []
    rejections: list[Rejection] = []
    for e in events:
        m = e.message
        value = m.value
        try:
            event = decode_event(value, max_event_bytes)
            reason = None
        except InvalidEvent as exc:
            event, reason = None, exc
        record = SinkRecord(
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            key=m.key,
            value=value,
            timestamp_ms=None if m.timestamp is None else round(m.timestamp * 1000),
            headers=_headers(m.headers),
            event=event,
        )
        records.append(record)
        if reason is not None:
            rejections.append(Rejection(record, reason.reason, "; ".join(reason.problems)))
    return records, rejections
