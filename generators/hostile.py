"""Records a producer we never wrote could send: a fixed hostile corpus and a seeded mutator.

Each :class:`Hostile` record is a Kafka record (key, value, headers: any bytes)
with the outcome it must have, decided *by construction* and never by asking
clickfan.events: ``valid`` (both sinks must hold it) or ``invalid`` (each group
must dead-letter it once). Valid records start from a generated event and
change only what the schema allows (a null referrer, a non-ASCII city, an
unknown extra field, odd keys or headers, other JSON formatting); invalid ones
break exactly one thing. The schema is restated here (``REQUIRED``,
``NULLABLE``, ``TYPES``) so that this oracle stays independent of the
validator; a unit test checks that the two tables still agree.

Decisions where JSON or the schema leave room (the validator must agree):

- JSON is RFC 8259 text in UTF-8: a byte-order mark, UTF-16, NaN/Infinity, a
  number that overflows a double (1e400), an integer of thousands of digits,
  nesting deeper than 1000 levels (Elasticsearch's parser limit), a lone
  surrogate escape (``\\ud800``: not Unicode text, so no sink can write it as
  UTF-8) and duplicate object keys (parsers disagree on which one wins, and
  Elasticsearch refuses them) are all invalid, anywhere in the record, also in
  fields the schema does not know.
- ``event_time`` must name an instant that exists in UTC within years 1..9999:
  ``0001-01-01T00:00:00+14:00`` and ``9999-12-31T23:59:59-14:00`` do not.
- ``ip`` is an address without an IPv6 zone (``%eth0`` names an interface of
  the sender's machine, and Elasticsearch's ip type refuses it).
- ``event_id`` is a UUID, so a NUL makes it invalid; a NUL inside a free-text name
  (``user_id``, ``city``) is a character like any other: both sinks store it.
- Keys and headers are never judged: a valid value with a binary key, no key,
  non-UTF-8 header names or values, duplicated header names or headers that
  imitate the dead-letter headers is a valid event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickfan import kafka_client
from clickfan.errors import ClickfanError
from clickfan.generators.events import EventGenerator

VALID = "valid"
INVALID = "invalid"

# The contract restated (see the module docstring): every field is required,
# these two may be null, and types are exact (True is not an int).
TYPES: dict[str, type] = {
    "schema_version": int,
    "event_id": str,
    "event_time": str,
    "user_id": str,
    "session_id": str,
    "event_type": str,
    "page_url": str,
    "referrer": str,
    "element": str,
    "device": str,
    "os": str,
    "browser": str,
    "user_agent": str,
    "ip": str,
    "country": str,
    "city": str,
    "is_vip": bool,
}
REQUIRED = tuple(TYPES)
NULLABLE = frozenset({"referrer", "element"})

# Kafka's default largest record is about 1 MB; the "1 MB string" stays below it.
KAFKA_MAX_MESSAGE_BYTES = 1_000_000
_BIG_STRING = 990_000
HEAVY_CASES = frozenset({"user_agent:1mb"})  # left out of the soak's random mix
# A seed of its own, so hostile events never share ids with the producer's.
_EVENT_SEED_OFFSET = 900_001


@dataclass(frozen=True)
class Hostile:
    """One record and the outcome it must have."""

    name: str
    key: bytes | None
    value: bytes | None
    expected: str  # VALID | INVALID
    why: str
    headers: tuple[tuple[bytes, bytes | None], ...] = ()
    event_id: str | None = None  # of a valid record: the document id in Elasticsearch
    heavy: bool = False  # large (about 1 MB): one of HEAVY_CASES

    @property
    def raw_header_names(self) -> bool:
        """Some header name is not UTF-8 (most clients cannot even send it)."""
        return any(not _is_utf8(name) for name, _ in self.headers)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _dumps(obj: Any, **kwargs: Any) -> bytes:
    options: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":")}
    options.update(kwargs)
    return json.dumps(obj, **options).encode("utf-8")


def _with_raw(event: dict[str, Any], field: str, raw: str) -> bytes:
    """``event`` as JSON with ``field`` holding the literal JSON text ``raw``."""
    marker = "@@raw-json@@"
    text = json.dumps({**event, field: marker}, ensure_ascii=False, separators=(",", ":"))
    return text.replace(json.dumps(marker), raw, 1).encode("utf-8")


def _escaped(event: dict[str, Any]) -> bytes:
    """JSON with every non-ASCII character as a \\u escape (how lone surrogates travel)."""
    return json.dumps(event, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class _Maker:
    """Fresh base events (unique ids) and the rng the cases draw from."""

    def __init__(self, seed: int, start_time: datetime, max_event_bytes: int) -> None:
        self.rng = random.Random(f"hostile-{seed}")
        self.events = EventGenerator(
            seed + _EVENT_SEED_OFFSET, start_time=start_time, rate=100.0, users=500
        )
        self.max_event_bytes = max_event_bytes

    def event(self, **changes: Any) -> dict[str, Any]:
        return {**self.events.next_event(), **changes}

    def valid(
        self,
        name: str,
        why: str,
        event: dict[str, Any],
        value: bytes | None = None,
        key: bytes | None = b"hostile-key",
        headers: tuple[tuple[bytes, bytes | None], ...] = (),
    ) -> Hostile:
        value = _dumps(event) if value is None else value
        expected = VALID if len(value) <= self.max_event_bytes else INVALID
        return Hostile(name, key, value, expected, why, headers, event["event_id"])

    def invalid(
        self,
        name: str,
        why: str,
        value: bytes | None,
        key: bytes | None = b"hostile-key",
        headers: tuple[tuple[bytes, bytes | None], ...] = (),
        heavy: bool = False,
    ) -> Hostile:
        return Hostile(name, key, value, INVALID, why, headers, heavy=heavy)


Case = Callable[[_Maker], Hostile]
CASES: dict[str, Case] = {}


def _case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


def _field_case(name: str, field: str, value: Any, expected: str, why: str) -> None:
    """A generated event with ``field`` set to ``value``."""

    def build(m: _Maker) -> Hostile:
        event = m.event(**{field: value})
        if expected == VALID:
            return m.valid(name, why, event)
        return m.invalid(name, why, _dumps(event))

    CASES[name] = build


# -- the bytes themselves ---------------------------------------------------------------

_case("value:empty")(lambda m: m.invalid("value:empty", "no bytes at all", b""))
_case("value:none")(lambda m: m.invalid("value:none", "a tombstone (null value)", None))
_case("value:random-binary")(
    lambda m: m.invalid(
        "value:random-binary",
        "random bytes; 0xff is never UTF-8",
        b"\xff" + m.rng.randbytes(255),
        key=m.rng.randbytes(16),
    )
)
_case("value:nul-bytes")(lambda m: m.invalid("value:nul-bytes", "NUL bytes only", b"\x00" * 64))
_case("value:bom-then-json")(
    lambda m: m.invalid(
        "value:bom-then-json", "a UTF-8 BOM before valid JSON", b"\xef\xbb\xbf" + _dumps(m.event())
    )
)
_case("value:utf16")(
    lambda m: m.invalid(
        "value:utf16",
        "valid JSON in UTF-16",
        json.dumps(m.event(), ensure_ascii=False).encode("utf-16"),
    )
)
_case("value:latin1-city")(
    lambda m: m.invalid(
        "value:latin1-city",
        "a Latin-1 byte inside a string",
        _dumps(m.event(city="@@CITY@@")).replace(b"@@CITY@@", b"Z\xfcrich"),
    )
)
_case("value:overlong-utf8")(
    lambda m: m.invalid(
        "value:overlong-utf8",
        "an overlong encoding of '/' (0xc0 0xaf)",
        _dumps(m.event(city="@@CITY@@")).replace(b"@@CITY@@", b"a\xc0\xafb"),
    )
)
_case("value:cesu-surrogate")(
    lambda m: m.invalid(
        "value:cesu-surrogate",
        "a surrogate encoded as UTF-8 bytes (CESU-8)",
        _dumps(m.event(city="@@CITY@@")).replace(b"@@CITY@@", b"\xed\xa0\x80"),
    )
)
_case("value:truncated")(
    lambda m: m.invalid("value:truncated", "JSON cut off mid-record", _dumps(m.event())[:-7])
)
_case("value:trailing-garbage")(
    lambda m: m.invalid("value:trailing-garbage", "text after the object", _dumps(m.event()) + b"x")
)
_case("value:two-objects")(
    lambda m: m.invalid(
        "value:two-objects", "two JSON objects in one record", _dumps(m.event()) + _dumps(m.event())
    )
)

# -- JSON that is not an object ------------------------------------------------------------

for _name, _text in (
    ("array", "[]"),
    ("array-of-event", None),
    ("string", '"click"'),
    ("number", "42"),
    ("null", "null"),
    ("true", "true"),
    ("false", "false"),
    ("empty-object", "{}"),
):

    def _not_object(m: _Maker, name: str = f"json:{_name}", text: str | None = _text) -> Hostile:
        raw = ("[" + _dumps(m.event()).decode() + "]") if text is None else text
        return m.invalid(name, "JSON that is not a click-event object", raw.encode())

    CASES[f"json:{_name}"] = _not_object

_DEPTH = 10_000
_HUGE_INT = "1" + "0" * 5000  # 10**5000

_case("json:deep-array")(
    lambda m: m.invalid("json:deep-array", "10 000 nested arrays", b"[" * _DEPTH + b"]" * _DEPTH)
)
_case("json:deep-object")(
    lambda m: m.invalid(
        "json:deep-object", "10 000 nested objects", b'{"a":' * _DEPTH + b"1" + b"}" * _DEPTH
    )
)
_case("json:deep-extra-field")(
    lambda m: m.invalid(
        "json:deep-extra-field",
        "a valid event whose extra field nests 10 000 levels",
        _with_raw(m.event(), "extra", "[" * _DEPTH + "]" * _DEPTH),
    )
)
_case("json:huge-int")(
    lambda m: m.invalid("json:huge-int", "10**5000 as the whole record", _HUGE_INT.encode())
)
_case("json:huge-int-schema-version")(
    lambda m: m.invalid(
        "json:huge-int-schema-version",
        "schema_version 10**5000",
        _with_raw(m.event(), "schema_version", _HUGE_INT),
    )
)
_case("json:huge-int-extra-field")(
    lambda m: m.invalid(
        "json:huge-int-extra-field",
        "an extra field holding 10**5000",
        _with_raw(m.event(), "extra", _HUGE_INT),
    )
)
_case("json:float-overflow-extra-field")(
    lambda m: m.invalid(
        "json:float-overflow-extra-field",
        "1e400 overflows a double (it would be written back as Infinity)",
        _with_raw(m.event(), "extra", "1e400"),
    )
)
for _literal in ("NaN", "Infinity", "-Infinity"):
    CASES[f"json:{_literal}-extra-field"] = lambda m, lit=_literal: m.invalid(
        f"json:{lit}-extra-field", f"{lit} is not JSON", _with_raw(m.event(), "extra", lit)
    )
_case("json:NaN-is-vip")(
    lambda m: m.invalid("json:NaN-is-vip", "NaN as is_vip", _with_raw(m.event(), "is_vip", "NaN"))
)
_case("json:lone-surrogate-city")(
    lambda m: m.invalid(
        "json:lone-surrogate-city", "city holds \\ud800 alone", _escaped(m.event(city="a\ud800b"))
    )
)
_case("json:lone-low-surrogate-extra")(
    lambda m: m.invalid(
        "json:lone-low-surrogate-extra",
        "an extra field holds \\udfff alone",
        _escaped(m.event(extra="\udfff")),
    )
)
_case("json:reversed-surrogates")(
    lambda m: m.invalid(
        "json:reversed-surrogates",
        "a low surrogate before a high one",
        _escaped(m.event(user_agent="Mozilla/5.0 \ude00\ud83d")),
    )
)


def _duplicate(m: _Maker, field: str, name: str) -> Hostile:
    event = m.event()
    other = json.dumps(m.event()[field])
    text = _dumps(event)[:-1] + f',"{field}":{other}}}'.encode()
    return m.invalid(name, f"{field} twice in one object", text)


_case("json:duplicate-event-id")(lambda m: _duplicate(m, "event_id", "json:duplicate-event-id"))
_case("json:duplicate-event-time")(
    lambda m: _duplicate(m, "event_time", "json:duplicate-event-time")
)

# -- a valid-looking event with one field broken -----------------------------------------------

_BROKEN: tuple[tuple[str, str, Any, str], ...] = (
    ("page_url:unclosed-ipv6-x", "page_url", "http://[x", "urlsplit raises ValueError"),
    ("page_url:unclosed-ipv6", "page_url", "http://[::1", "an unclosed IPv6 literal"),
    ("page_url:bad-ipv6-literal", "page_url", "http://[zz::1]/", "not an IPv6 address"),
    ("page_url:javascript", "page_url", "javascript:alert(1)", "not http(s)"),
    ("page_url:no-host", "page_url", "http://", "no host"),
    ("page_url:empty", "page_url", "", "empty"),
    ("referrer:unclosed-bracket", "referrer", "https://[", "urlsplit raises ValueError"),
    ("ip:octet-999", "ip", "999.1.1.1", "an octet above 255"),
    ("ip:zone-id", "ip", "::ffff:1.2.3.4%eth0", "an IPv6 zone id"),
    ("ip:leading-zero", "ip", "01.2.3.4", "a leading zero (octal or decimal?)"),
    ("ip:trailing-space", "ip", "1.2.3.4 ", "a trailing space"),
    ("ip:hostname", "ip", "localhost", "a host name"),
    (
        "event_time:year-1-plus-14",
        "event_time",
        "0001-01-01T00:00:00+14:00",
        "before year 1 in UTC",
    ),
    (
        "event_time:year-9999-minus-14",
        "event_time",
        "9999-12-31T23:59:59-14:00",
        "after 9999 in UTC",
    ),
    ("event_time:feb-30", "event_time", "2024-02-30T00:00:00Z", "no such day"),
    ("event_time:month-13", "event_time", "2024-13-01T00:00:00Z", "no such month"),
    ("event_time:no-zone", "event_time", "2024-06-01T12:00:00", "no time zone"),
    ("event_time:offset-25h", "event_time", "2024-06-01T12:00:00+25:00", "an offset of 25 h"),
    ("event_time:words", "event_time", "yesterday", "not a time"),
    ("event_time:epoch-number", "event_time", 1717243200000, "epoch ms, not a string"),
    ("event_id:not-uuid", "event_id", "not-a-uuid", "not a UUID"),
    ("event_id:empty", "event_id", "", "empty"),
    ("event_id:braced", "event_id", "{12345678-1234-4234-8234-123456789abc}", "braces"),
    ("event_id:nul", "event_id", "12345678-1234-4234-8234-123456789ab\x00", "a NUL"),
    ("schema_version:2", "schema_version", 2, "an unknown version"),
    ("schema_version:0", "schema_version", 0, "an unknown version"),
    ("schema_version:float", "schema_version", 1.0, "a float"),
    ("schema_version:true", "schema_version", True, "a bool"),
    ("schema_version:1e30", "schema_version", 10**30, "an integer beyond any version"),
    ("schema_version:string", "schema_version", "1", "a string"),
    ("is_vip:1", "is_vip", 1, "an int, not a bool"),
    ("is_vip:0", "is_vip", 0, "an int, not a bool"),
    ("is_vip:string", "is_vip", "true", "a string, not a bool"),
    ("user_id:object", "user_id", {"id": "u1"}, "an object"),
    ("page_url:array", "page_url", ["https://a.example/"], "an array"),
    ("city:object", "city", {"name": "Seoul", "lat": 37.5}, "an object"),
    ("user_id:empty", "user_id", "", "empty"),
    ("os:null", "os", None, "null where a value is required"),
    ("event_type:upper", "event_type", "PAGE_VIEW", "not one of the event types"),
    ("device:phone", "device", "phone", "not one of the devices"),
    ("country:lower", "country", "kr", "not an ISO 3166 alpha-2 code"),
    ("country:alpha3", "country", "KOR", "not an ISO 3166 alpha-2 code"),
)
for _name, _field, _value, _why in _BROKEN:
    _field_case(_name, _field, _value, INVALID, _why)


def _missing(m: _Maker) -> Hostile:
    event = m.event()
    del event["event_type"]
    return m.invalid("missing:event_type", "a required field is absent", _dumps(event))


CASES["missing:event_type"] = _missing

_case("user_agent:1mb")(
    lambda m: m.invalid(
        "user_agent:1mb",
        "a 1 MB user_agent (larger than the event limit)",
        _dumps(m.event(user_agent="M" * _BIG_STRING)),
        heavy=True,
    )
)


def _sized(m: _Maker, name: str, extra: int) -> Hostile:
    """An event padded to exactly max_event_bytes + ``extra`` bytes."""
    event = m.event(padding="")
    base = len(_dumps(event))
    event["padding"] = "p" * (m.max_event_bytes + extra - base)
    value = _dumps(event)
    why = f"{len(value)} bytes against a limit of {m.max_event_bytes}"
    return m.valid(name, why, event, value)  # valid() judges the size


CASES["size:at-limit"] = lambda m: _sized(m, "size:at-limit", 0)
CASES["size:limit-plus-1"] = lambda m: _sized(m, "size:limit-plus-1", 1)

# -- valid, but unusual -------------------------------------------------------------------------

_UNUSUAL: tuple[tuple[str, str, Any, str], ...] = (
    ("city:non-ascii", "city", "São Paulo / 서울 / 東京 / Zürich", "non-ASCII city"),
    ("user_agent:emoji", "user_agent", "Mozilla/5.0 🦊🚀 (X11; Linux x86_64)", "emoji"),
    ("referrer:null", "referrer", None, "referrer may be null"),
    ("element:null", "element", None, "element may be null"),
    ("ip:ipv6", "ip", "2001:db8::7", "an IPv6 address"),
    ("ip:ipv4-mapped", "ip", "::ffff:1.2.3.4", "an IPv4-mapped IPv6 address"),
    ("page_url:ipv6-literal", "page_url", "http://[::1]:8080/p?q=1#f", "an IPv6 host"),
    ("page_url:idn", "page_url", "https://bücher.example/straße?q=ü", "an internationalised URL"),
    ("user_agent:quotes", "user_agent", 'Mozilla/5.0 "quoted" \\ back\tslash', "escapes"),
    # JSON can carry a NUL in a string, and both sinks store it as it is
    ("user_id:nul", "user_id", "u\x00123", "a NUL inside a name"),
    ("city:nul", "city", "Seo\x00ul", "a NUL inside a name"),
)
for _name, _field, _value, _why in _UNUSUAL:
    _field_case(_name, _field, _value, VALID, _why)

_case("extra:fields")(
    lambda m: m.valid(
        "extra:fields",
        "unknown extra fields of every JSON type",
        m.event(
            x_string="s",
            x_number=-0.5,
            x_int=2**62,
            x_bool=False,
            x_null=None,
            x_list=[1, "a", None],
            x_object={"a": {"b": [{"c": 1}]}},
        ),
    )
)


def _event_and(m: _Maker, name: str, why: str, build: Callable[[dict[str, Any]], bytes]) -> Hostile:
    event = m.event()
    return m.valid(name, why, event, build(event))


_case("format:pretty")(
    lambda m: _event_and(
        m, "format:pretty", "indented, with newlines", lambda e: _dumps(e, indent=2)
    )
)
_case("format:escaped")(
    lambda m: _event_and(m, "format:escaped", "every non-ASCII as \\u escapes", _escaped)
)
_case("format:reordered")(
    lambda m: _event_and(
        m,
        "format:reordered",
        "keys in reverse order",
        lambda e: _dumps(dict(reversed(list(e.items())))),
    )
)
_case("format:whitespace")(
    lambda m: _event_and(
        m,
        "format:whitespace",
        "whitespace around and a trailing newline",
        lambda e: b" \t\r\n" + _dumps(e, separators=(" , ", " : ")) + b"\n",
    )
)
_case("format:surrogate-pair")(
    lambda m: _event_and(
        m,
        "format:surrogate-pair",
        "an emoji as an escaped surrogate pair",
        lambda e: _escaped({**e, "user_agent": "Mozilla/5.0 \U0001f600"}),
    )
)

# -- keys and headers: never judged --------------------------------------------------------------

_case("key:none")(lambda m: m.valid("key:none", "no key", m.event(), key=None))
_case("key:empty")(lambda m: m.valid("key:empty", "an empty key", m.event(), key=b""))
_case("key:binary")(
    lambda m: m.valid(
        "key:binary", "a binary key", m.event(), key=b"\x00\xff\xfe" + m.rng.randbytes(29)
    )
)
_case("key:50kb")(lambda m: m.valid("key:50kb", "a 50 KB key", m.event(), key=b"k" * 50_000))
_case("key:none-invalid-value")(
    lambda m: m.invalid("key:none-invalid-value", "no key, not JSON", b"<click/>", key=None)
)
_case("headers:non-utf8-name")(
    lambda m: m.valid(
        "headers:non-utf8-name",
        "a header name that is not UTF-8",
        m.event(),
        headers=((b"trace\xff\xfe", b"1"),),
    )
)
_case("headers:non-utf8-value")(
    lambda m: m.valid(
        "headers:non-utf8-value",
        "header values that are not UTF-8, and a null one",
        m.event(),
        headers=((b"bin", b"\xff\x00\xfe"), (b"none", None)),
    )
)
_case("headers:duplicate-names")(
    lambda m: m.valid(
        "headers:duplicate-names",
        "the same header name three times",
        m.event(),
        headers=((b"trace", b"1"), (b"trace", b"2"), (b"trace", b"")),
    )
)
_SPOOFED = (
    (b"clickfan.error.reason", b"spoofed"),
    (b"clickfan.dlq.group", b"spoofed-group"),
    (b"clickfan.source.offset", b"-1"),
)
_case("headers:spoofed-dlq-valid")(
    lambda m: m.valid(
        "headers:spoofed-dlq-valid",
        "a valid event carrying our own dead-letter headers",
        m.event(),
        headers=_SPOOFED,
    )
)
_case("headers:spoofed-dlq-invalid")(
    lambda m: m.invalid(
        "headers:spoofed-dlq-invalid",
        "not JSON, carrying our own dead-letter headers",
        b"not json",
        headers=_SPOOFED,
    )
)
_case("headers:non-utf8-name-invalid")(
    lambda m: m.invalid(
        "headers:non-utf8-name-invalid",
        "not JSON, with a header name that is not UTF-8 and duplicated names",
        b"\x00garbage",
        headers=((b"\xc3\x28", b"x"), (b"dup", b"1"), (b"dup", b"2")),
    )
)


def corpus(
    seed: int = 0, start_time: datetime | None = None, max_event_bytes: int = 65536
) -> list[Hostile]:
    """Every case once, in a fixed order; the same arguments give the same records."""
    maker = _Maker(seed, start_time or datetime.now(UTC), max_event_bytes)
    return [build(maker) for build in CASES.values()]


# -- the soak's random mix -------------------------------------------------------------------------

_ALPHABET = "abcXYZ019 _-/.:?&=%\"\\'\t\n\x01é中🙂"
_NAME_ALPHABET = "abcxyz0189_"
# wrong-typed values per schema type (None is never among them: nullable fields take it)
_WRONG: dict[type, tuple[Any, ...]] = {
    str: (0, 3.5, True, [], {"v": "x"}),
    int: ("1", 1.5, False, [1]),
    bool: (1, 0, "true", None),
}


class HostileMutator:
    """A seeded stream of hostile records, each with its outcome decided by construction.

    Kinds: a random case of the corpus (heavy ones aside), random bytes, random
    JSON that is not an event, and mutations of generated events (cut short, a
    byte that is never UTF-8, a field of the wrong type, dropped or null, which
    are invalid; an unknown extra field or another formatting, which are valid).
    """

    def __init__(
        self,
        seed: int,
        start_time: datetime | None = None,
        max_event_bytes: int = 65536,
        exclude: Sequence[str] = (),
    ) -> None:
        """``exclude``: corpus cases left out of the mix, by name or name prefix."""
        self._m = _Maker(seed, start_time or datetime.now(UTC), max_event_bytes)
        self._rng = random.Random(f"mutator-{seed}")
        unknown = [e for e in exclude if not any(name.startswith(e) for name in CASES)]
        if unknown:
            raise ValueError(f"no hostile case is named {', '.join(unknown)}")
        self._cases = [
            name
            for name in CASES
            if not any(name.startswith(e) for e in exclude) and name not in HEAVY_CASES
        ]
        self._kinds: tuple[Callable[[], Hostile], ...] = (
            self._corpus,
            self._corpus,
            self._random_bytes,
            self._random_json,
            self._truncated,
            self._bad_utf8,
            self._wrong_type,
            self._dropped,
            self._null,
            self._extra_field,
            self._reformatted,
        )

    def __iter__(self) -> Iterator[Hostile]:
        return self

    def __next__(self) -> Hostile:
        return self._rng.choice(self._kinds)()

    def _corpus(self) -> Hostile:
        return CASES[self._rng.choice(self._cases)](self._m)

    def _random_bytes(self) -> Hostile:
        data = b"\xfe" + self._rng.randbytes(self._rng.randint(0, 300))
        return self._m.invalid("random:bytes", "random bytes (0xfe is never UTF-8)", data)

    def _random_text(self, alphabet: str = _ALPHABET) -> str:
        return "".join(self._rng.choice(alphabet) for _ in range(self._rng.randint(0, 12)))

    def _random_value(self, depth: int, key: Callable[[], str]) -> Any:
        """Random JSON (finite numbers within 64 bits, no lone surrogates); ``key`` names."""
        kind = self._rng.randrange(7 if depth > 0 else 5)
        if kind == 0:
            return None
        if kind == 1:
            return self._rng.random() < 0.5
        if kind == 2:
            return self._rng.randint(-(2**63), 2**63 - 1)
        if kind == 3:
            return self._rng.uniform(-1e300, 1e300)
        if kind == 4:
            return self._random_text()
        if kind == 5:
            return [self._random_value(depth - 1, key) for _ in range(self._rng.randint(0, 4))]
        return {key(): self._random_value(depth - 1, key) for _ in range(self._rng.randint(0, 4))}

    def _safe_name(self) -> str:
        # a field name every reader takes (Elasticsearch refuses dots at the ends, blanks, ...)
        return "x_" + self._random_text(_NAME_ALPHABET)

    def _random_json(self) -> Hostile:
        # object keys all start with "x", so no required field is ever present
        value = _dumps(
            self._random_value(self._rng.randint(0, 4), lambda: "x" + self._random_text())
        )
        return self._m.invalid("random:json", "random JSON, not a click event", value)

    def _truncated(self) -> Hostile:
        data = _dumps(self._m.event())
        cut = data[: self._rng.randint(1, len(data) - 1)]
        return self._m.invalid("mutated:truncated", "a proper prefix of an object", cut)

    def _bad_utf8(self) -> Hostile:
        data = _dumps(self._m.event())
        at = self._rng.randint(0, len(data))
        bad = self._rng.choice((b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80"))
        return self._m.invalid(
            "mutated:bad-utf8", "bytes that are never UTF-8", data[:at] + bad + data[at:]
        )

    def _wrong_type(self) -> Hostile:
        event = self._m.event()
        field = self._rng.choice(REQUIRED)
        event[field] = self._rng.choice(
            [v for v in _WRONG[TYPES[field]] if v is not None or field not in NULLABLE]
        )
        return self._m.invalid("mutated:wrong-type", f"{field} of the wrong type", _dumps(event))

    def _dropped(self) -> Hostile:
        event = self._m.event()
        field = self._rng.choice(REQUIRED)
        del event[field]
        return self._m.invalid("mutated:dropped", f"{field} absent", _dumps(event))

    def _null(self) -> Hostile:
        field = self._rng.choice([f for f in REQUIRED if f not in NULLABLE])
        event = self._m.event(**{field: None})
        return self._m.invalid("mutated:null", f"{field} null", _dumps(event))

    def _extra_field(self) -> Hostile:
        event = self._m.event()
        event[self._safe_name()] = self._random_value(3, self._safe_name)
        return self._m.valid("mutated:extra-field", "an unknown extra field", event)

    def _reformatted(self) -> Hostile:
        event = self._m.event()
        items = list(event.items())
        self._rng.shuffle(items)
        value = _dumps(
            dict(items),
            ensure_ascii=self._rng.random() < 0.5,
            indent=self._rng.choice((None, 0, 1, 4)),
        )
        return self._m.valid("mutated:reformatted", "keys shuffled, other spacing", event, value)


# -- sending them as they are -----------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """Where the brokers put a hostile record."""

    record: Hostile
    partition: int
    offset: int


_quiet_log = logging.getLogger(f"{__name__}.librdkafka")
_quiet_log.addHandler(logging.NullHandler())
_quiet_log.propagate = False


class HostileSender:
    """Produce hostile records byte for byte (acks=all); remember where each one landed.

    librdkafka can only send UTF-8 header names (it writes ``str(name)`` for
    bytes), so a record with another header name goes in a produce request of
    its own, its batch written by aiokafka's pure-Python builder (synchronous).
    Delivery reports arrive in :meth:`poll` and :meth:`flush`, on the caller's thread.
    """

    _RAW_ATTEMPTS = 5

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Producer

        self.bootstrap = bootstrap
        self.topic = topic
        self.placed: list[Placed] = []
        self.failed: list[tuple[Hostile, str]] = []
        self._producer = Producer(
            {
                **kafka_client.confluent(bootstrap),
                "acks": "all",
                "enable.idempotence": True,
                "compression.type": "none",
                "linger.ms": 5,
                "allow.auto.create.topics": False,
                # a broker going away is reported through the delivery reports
                "logger": _quiet_log,
            }
        )

    def produce(self, record: Hostile) -> None:
        if record.raw_header_names:
            self._produce_raw(record)
            return
        headers = [(name.decode("utf-8"), value) for name, value in record.headers] or None
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=record.value,
                    key=record.key,
                    headers=headers,
                    on_delivery=lambda err, msg, r=record: self._delivered(r, err, msg),
                )
                return
            except BufferError:
                self._producer.poll(0.1)

    def _delivered(self, record: Hostile, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed.append((record, err.str()))
        else:
            self.placed.append(Placed(record, msg.partition(), msg.offset()))

    def poll(self, timeout_s: float = 0) -> None:
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 120) -> int:
        """Wait for every delivery report; how many are still outstanding."""
        return self._producer.flush(timeout_s)

    def _produce_raw(self, record: Hostile) -> None:
        problem = ""
        for attempt in range(self._RAW_ATTEMPTS):
            try:
                placed = asyncio.run(_send_raw(self.bootstrap, self.topic, record, attempt))
            except Exception as exc:  # a broker away, a leader moving: try again shortly
                problem = f"{type(exc).__name__}: {exc}"
                time.sleep(1.0)
                continue
            self.placed.append(placed)
            return
        self.failed.append((record, problem))


def send(bootstrap: str, topic: str, records: Sequence[Hostile]) -> list[Placed]:
    """Produce ``records``; ClickfanError unless every one is acknowledged."""
    sender = HostileSender(bootstrap, topic)
    for r in records:
        sender.produce(r)
        sender.poll(0)
    left = sender.flush(120)
    if sender.failed or left:
        raise ClickfanError(
            f"hostile records not acknowledged on {topic}: "
            f"{[f'{r.name}: {why}' for r, why in sender.failed][:5]} ({left} pending)"
        )
    return sender.placed


class _RawName(str):
    """A header name that encodes to the given bytes (aiokafka's pure-Python batch writer
    calls ``name.encode("utf-8")``)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawName:
        name = super().__new__(cls, raw.decode("utf-8", "backslashreplace"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


async def _send_raw(bootstrap: str, topic: str, record: Hostile, spread: int) -> Placed:
    """One produce request (acks=all) holding ``record``; partition chosen by ``spread``."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.produce import ProduceRequest
    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
    from aiokafka.structs import TopicPartition

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap.split(","), **kafka_client.active().aiokafka()
    )
    await client.bootstrap()
    try:
        await client._wait_on_metadata(topic)
        partitions = sorted(client.cluster.partitions_for_topic(topic) or [])
        partition = partitions[(zlib.crc32(record.value or b"") + spread) % len(partitions)]
        builder = _DefaultRecordBatchBuilderPy(
            magic=2,
            compression_type=0,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=KAFKA_MAX_MESSAGE_BYTES,
        )
        headers = [(_RawName(name), value) for name, value in record.headers]
        builder.append(0, timestamp=None, key=record.key, value=record.value, headers=headers)
        request = ProduceRequest(
            transactional_id=None,
            required_acks=-1,
            timeout=30_000,
            topics=[(topic, [(partition, bytes(builder.build()))])],
        )
        leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        if leader is None or leader < 0:
            raise ClickfanError(f"no leader for {topic}-{partition}")
        response = await client.send(leader, request)
        _, error_code, offset, *_ = response.topics[0][1][0]
        if error_code != 0:
            raise ClickfanError(f"{record.name} refused by the broker: error code {error_code}")
        return Placed(record, partition, offset)
    finally:
        await client.close()
