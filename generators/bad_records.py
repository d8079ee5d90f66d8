"""Malformed records, for demos of the dead-letter path and for tests.

Each bad record is made from a real generated event, so it looks like traffic
and only the one defect of its kind sets it apart. The producer marks bad
records with the ``clickfan-bad-kind`` header for test bookkeeping only:
consumers must judge the payload (clickfan.events.decode_event), never the
header.
"""

from __future__ import annotations

import random
from typing import Any

from clickfan.events import FIELDS, encode_event

BAD_KIND_HEADER = "clickfan-bad-kind"
# Each kind is the reason (clickfan.events.REASONS) the consumers give for it.
BAD_KINDS = (
    "not_json",
    "wrong_types",
    "missing_fields",
    "invalid_utf8",
    "empty",
    "oversized",
    "invalid_values",
    "not_interoperable",
)

# A value of the wrong type for each field type (bool is checked exactly, so 1 is wrong).
_WRONG_VALUES: dict[type, tuple[Any, ...]] = {
    str: (12345, 3.5, True, ["a", "b"], {"value": "x"}),
    bool: ("true", 1, "yes", 0),
    int: ("1", 1.0, True),
}
# Broker and librdkafka default message.max.bytes is about 1 MB; a bigger
# record would be refused by Kafka and never reach a consumer.
KAFKA_MAX_MESSAGE_BYTES = 1_000_000


class BadRecordMaker:
    """Turn good events into records that are not valid click events."""

    def __init__(self, rng: random.Random, max_event_bytes: int, oversized_bytes: int) -> None:
        if not max_event_bytes < oversized_bytes < KAFKA_MAX_MESSAGE_BYTES:
            raise ValueError(
                f"oversized records ({oversized_bytes} bytes) must be larger than the event "
                f"limit ({max_event_bytes}) and smaller than Kafka's {KAFKA_MAX_MESSAGE_BYTES}"
            )
        self._rng = rng
        self.oversized_bytes = oversized_bytes

    def random_kind(self) -> str:
        return self._rng.choice(BAD_KINDS)

    def make(self, kind: str, event: dict[str, Any]) -> bytes:
        """The bytes of a ``kind`` bad record made from ``event`` (left unchanged)."""
        maker = getattr(self, f"_{kind}", None)
        if kind not in BAD_KINDS or maker is None:
            raise ValueError(f"unknown bad record kind {kind!r}; known: {', '.join(BAD_KINDS)}")
        return maker(dict(event))

    def _not_json(self, event: dict[str, Any]) -> bytes:
        choice = self._rng.randrange(3)
        if choice == 0:  # cut off mid-record, as by a crashed writer
            # cut characters, not bytes, so the defect stays "not JSON" and not "not UTF-8"
            text = encode_event(event).decode("utf-8")
            return text[: self._rng.randrange(1, len(text) - 1)].encode("utf-8")
        if choice == 1:  # a log line instead of JSON
            return (
                f"{event['event_time']} {event['event_type']} user={event['user_id']} "
                f"url={event['page_url']}"
            ).encode()
        # JavaScript-ish object literal: single quotes are not JSON
        return repr(event).encode()

    def _wrong_types(self, event: dict[str, Any]) -> bytes:
        for f in self._rng.sample(FIELDS, self._rng.randint(1, 3)):
            event[f.name] = self._rng.choice(_WRONG_VALUES[f.type])
        return encode_event(event)

    def _missing_fields(self, event: dict[str, Any]) -> bytes:
        for f in self._rng.sample(FIELDS, self._rng.randint(1, 3)):
            del event[f.name]
        return encode_event(event)

    def _invalid_utf8(self, event: dict[str, Any]) -> bytes:
        # valid JSON structure, but a string holds bytes that are not UTF-8
        # (a Latin-1 writer, or a multi-byte character cut in half)
        encoded = encode_event({**event, "city": "\x00CITY\x00"})
        garbage = self._rng.choice((b"S\xe3o Paulo", b"\xff\xfe", b"\xea\xb0", b"Z\xfcrich"))
        return encoded.replace(b"\\u0000CITY\\u0000", garbage)

    def _invalid_values(self, event: dict[str, Any]) -> bytes:
        # well-typed values that parsers choke on; the first stopped both workers once
        field, value = self._rng.choice(
            (
                ("page_url", "http://[x"),
                ("referrer", "https://[::1/"),
                ("event_time", "0001-01-01T00:30:00+01:00"),  # before the year 1 in UTC
                ("event_time", "9999-12-31T23:30:00-05:00"),  # after the year 9999 in UTC
                ("ip", "10.0.0.1\x00"),
                ("_id", event["event_id"]),  # an extra field Elasticsearch cannot take
            )
        )
        event[field] = value
        return encode_event(event)

    def _not_interoperable(self, event: dict[str, Any]) -> bytes:
        # JSON that readers disagree on (RFC 7493)
        head = encode_event(event)[:-1]
        choice = self._rng.randrange(4)
        if choice == 0:  # the same key twice
            return head + b',"city":"Elsewhere"}'
        if choice == 1:  # an escaped lone surrogate: no UTF-8 encoding exists
            return head + b',"note":"\\ud800"}'
        if choice == 2:  # a number no double holds
            return head + b',"score":1e400}'
        return head + b',"nested":' + b"[" * 64 + b"]" * 64 + b"}"

    def _empty(self, event: dict[str, Any]) -> bytes:
        return b""

    def _oversized(self, event: dict[str, Any]) -> bytes:
        # a valid event with a huge extra field: only its size is wrong
        base = len(encode_event({**event, "padding": ""}))
        event["padding"] = "x" * max(0, self.oversized_bytes - base)
        return encode_event(event)
