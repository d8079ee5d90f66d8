"""What a click event is: its fields, its encoding, and how a record is judged.

The producer builds events that follow FIELDS; the consumers call
:func:`decode_event` (bytes from Kafka) or :func:`validate_event` (an already
parsed object) to decide whether a record is a click event or a dead letter.
Both sides read the same table, so they cannot drift apart.

Judging is total: for any bytes and any parsed JSON, :func:`decode_event`
returns an event or raises :class:`InvalidEvent`, and :func:`validate_event`
returns the problems; nothing else escapes. An event that passes is also one
both sinks can take as it is: its JSON encodes and decodes back to itself (no
lone surrogates, no NaN, integers within 64 bits, at most MAX_DEPTH levels),
its time has a UTC day and hour (:func:`event_time_utc`, which the
Elasticsearch index name and the HDFS folder both use), its strings fit a
keyword field, and its extra field names are ones Elasticsearch accepts.
Whatever cannot be placed is refused here, for the dead-letter topic, rather
than clamped or put in a fallback bucket: a made-up day would hide the
producer's bug in the data.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

EVENT_TYPES = (
    "page_view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "search",
    "login",
    "logout",
)
DEVICES = ("desktop", "mobile", "tablet")

# Why a record is not a click event, in the order they are checked. The first
# six are also the kinds of malformed records generators.bad_records makes.
REASONS = (
    "empty",
    "oversized",
    "invalid_utf8",
    "not_json",  # not JSON text: syntax, NaN/Infinity, a byte order mark
    # JSON that readers disagree on (RFC 7493, I-JSON): duplicate keys, lone
    # surrogates, numbers beyond 64-bit integers or doubles; or nested deeper
    # than MAX_DEPTH
    "not_interoperable",
    "not_object",
    "unsupported_schema_version",
    "missing_fields",
    "wrong_types",
    "invalid_values",
)

# Our events are flat; extra fields may nest, up to this many levels in all.
MAX_DEPTH = 20
# Elasticsearch long, Spark/Hive bigint, Java long: what readers of both sinks hold.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# A keyword term above 32766 UTF-8 bytes is refused by Lucene; 8191 characters
# of up to 4 bytes always fit.
MAX_KEYWORD_CHARS = 8191
# Offsets beyond this are refused by Elasticsearch (java.time.ZoneOffset).
MAX_OFFSET = timedelta(hours=18)


class InvalidEvent(ValueError):
    """A record that is not a valid click event.

    ``reason`` is one of REASONS (short, for a dead-letter header); ``problems``
    says what exactly is wrong.
    """

    def __init__(self, reason: str, problems: list[str]) -> None:
        super().__init__(f"{reason}: {'; '.join(problems)}")
        self.reason = reason
        self.problems = problems


# -- the event's time: one definition for validation and both sinks ------------

# RFC 3339 with seconds and a zone; the subset that Elasticsearch's
# strict_date_optional_time also reads (upper-case T and Z, up to 9 fraction
# digits, ±HH:MM). re.ASCII: \d would otherwise match any script's digits.
_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d\d):(\d\d))",
    re.ASCII,
)


def _utc(value: str) -> datetime | None:
    match = _TIME.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, oh, om = match.groups()
    if zulu:
        offset = timedelta(0)
    else:
        offset = timedelta(hours=int(oh), minutes=int(om))
        if int(om) >= 60 or offset > MAX_OFFSET:
            return None
        offset = -offset if sign == "-" else offset
    micros = int((fraction or "0")[:6].ljust(6, "0"))  # Elasticsearch keeps milliseconds anyway
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros,
            tzinfo=timezone(offset),
        )  # fmt: skip
        return local.astimezone(UTC)
    except (ValueError, OverflowError):  # 2026-02-30; year 1 or 9999 pushed over by the offset
        return None


def event_time_utc(event_time: str) -> datetime:
    """The UTC time of a valid event's ``event_time``: what both sinks place it by.

    Raises InvalidEvent for a string that validation refuses (never for a
    valid event's own time).
    """
    utc = _utc(event_time)
    if utc is None:
        raise InvalidEvent("invalid_values", [f"event_time should be {_TIME_EXPECTED}"])
    return utc


_TIME_EXPECTED = (
    "an RFC 3339 time with seconds and a zone (Z or ±HH:MM, at most 18:00) "
    "that falls in the years 0001..9999 in UTC"
)


# -- value checks: each returns a bool for any str, never raises ----------------

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_COUNTRY = re.compile(r"[A-Z]{2}")


def _is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


def _is_timestamp(value: str) -> bool:
    return _utc(value) is not None


def _is_ip(value: str) -> bool:
    # an IPv6 zone (fe80::1%eth0) names an interface of the sender's machine, and
    # Elasticsearch's ip type refuses it: the two groups would disagree
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_url(value: str) -> bool:
    try:
        # raises ValueError for "http://[x" (a bracket not closed) and for
        # host names that change under NFKC normalisation
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_country(value: str) -> bool:
    return _COUNTRY.fullmatch(value) is not None


def _non_empty(value: str) -> bool:
    return value != ""


@dataclass(frozen=True)
class Field:
    name: str
    type: type
    nullable: bool = False
    check: Callable[[Any], bool] | None = None  # a value check beyond the type; total
    expected: str = ""  # what check wants, for the message
    max_chars: int | None = None  # for str fields: longer is invalid


# The schema of version 1. Order is the order of keys in an encoded event.
FIELDS: tuple[Field, ...] = (
    Field("schema_version", int),
    Field("event_id", str, check=_is_uuid, expected="a UUID"),
    Field("event_time", str, check=_is_timestamp, expected=_TIME_EXPECTED),
    Field("user_id", str, check=_non_empty, expected="non-empty", max_chars=256),
    Field("session_id", str, check=_non_empty, expected="non-empty", max_chars=256),
    Field("event_type", str, check=EVENT_TYPES.__contains__, expected=f"one of {EVENT_TYPES}"),
    Field("page_url", str, check=_is_url, expected="an http(s) URL", max_chars=8192),
    Field("referrer", str, nullable=True, check=_is_url, expected="an http(s) URL", max_chars=8192),
    Field("element", str, nullable=True, check=_non_empty, expected="non-empty", max_chars=1024),
    Field("device", str, check=DEVICES.__contains__, expected=f"one of {DEVICES}"),
    Field("os", str, check=_non_empty, expected="non-empty", max_chars=256),
    Field("browser", str, check=_non_empty, expected="non-empty", max_chars=256),
    Field("user_agent", str, check=_non_empty, expected="non-empty", max_chars=2048),
    Field("ip", str, check=_is_ip, expected="an IP address", max_chars=64),
    Field("country", str, check=_is_country, expected="an ISO 3166 alpha-2 code"),
    Field("city", str, check=_non_empty, expected="non-empty", max_chars=256),
    Field("is_vip", bool),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
_FIELD_SET = frozenset(FIELD_NAMES)

# An extra field's name must be one Elasticsearch takes at the top of a
# document: dot-separated parts of letters, digits, '_' and '-', the first
# starting with a letter or digit (so never a metadata field like _id, never
# empty or blank), and not reaching into one of our fields (event_time.x).
_EXTRA_NAME = re.compile(r"[^\W_][\w-]*(?:\.[\w-]+)*")
MAX_EXTRA_NAME = 255


def _extra_name_problem(name: str) -> str | None:
    if len(name) <= MAX_EXTRA_NAME and _EXTRA_NAME.fullmatch(name):
        if name.split(".", 1)[0] not in _FIELD_SET:
            return None
    return (
        f"extra field name {name!r:.60} cannot name an Elasticsearch field: use up to "
        f"{MAX_EXTRA_NAME} letters, digits, '_' or '-' in dot-separated parts, starting with a "
        "letter or digit, not inside one of the event's own fields"
    )


# -- JSON that both sinks and their readers see the same way ------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotInteroperable(Exception):
    """Raised from json.loads hooks; never leaves this module."""


def _path(parts: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") or "$"


def _lone_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _interop_problem(obj: Any) -> str | None:
    """Why ``obj`` is not JSON every reader sees the same way, or None (iterative: any depth)."""
    # a quick pass over the values first; paths are only worked out to explain a problem
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if type(value) is str:
            if _lone_surrogate(value):
                break
        elif value is None or type(value) is bool:
            continue
        elif isinstance(value, dict):
            if depth > MAX_DEPTH:
                break
            for key, v in value.items():
                if not isinstance(key, str) or _lone_surrogate(key):
                    return _explain(obj)
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                break
            stack.extend((v, depth + 1) for v in value)
        elif _scalar_problem(value) is not None:
            break
    else:
        return None
    return _explain(obj)


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return (
            "holds a lone surrogate, which UTF-8 cannot encode" if _lone_surrogate(value) else None
        )
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if INT_MIN <= value <= INT_MAX else "is an integer beyond 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value}, which JSON cannot hold"
    return f"is a {type(value).__name__}, not a JSON value"


def _explain(obj: Any) -> str:
    """The first problem of ``obj``, with the path to it."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(obj, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list):
            if len(path) >= MAX_DEPTH:
                return f"{_path(path[:MAX_DEPTH])} is nested deeper than {MAX_DEPTH} levels"
            if isinstance(value, list):
                stack.extend((v, (*path, i)) for i, v in enumerate(value))
                continue
            for key, v in value.items():
                if not isinstance(key, str):
                    return f"{_path(path)} has a key of type {type(key).__name__}, not a string"
                if _lone_surrogate(key):
                    return f"{_path(path)} has a key with a lone surrogate"
                stack.append((v, (*path, key)))
        else:
            problem = _scalar_problem(value)
            if problem is not None:
                return f"{_path(path)} {problem}"
    return "a value JSON readers disagree on"  # unreachable: only called after a problem


def _parse_int(text: str) -> int:
    # Length first: int() of more than 4300 digits raises ValueError by itself.
    if len(text) > 20:
        raise _NotInteroperable(f"the integer {text:.24}... has more digits than 64 bits hold")
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise _NotInteroperable(f"the integer {text} is beyond 64 bits")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 is valid JSON but no double
        raise _NotInteroperable(f"the number {text:.40} is beyond a 64-bit float")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Python keeps the last, Elasticsearch refuses the document, others keep the first
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NotInteroperable(f"the key {key!r:.60} appears more than once")
            seen.add(key)
    return obj


# -- judging -----------------------------------------------------------------


def _field_problems(obj: dict[str, Any]) -> tuple[str, list[str]] | None:
    version = obj.get("schema_version")
    # another version may have other fields, so its fields are not judged by these
    if type(version) is int and version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = sorted(SUPPORTED_SCHEMA_VERSIONS)
        return "unsupported_schema_version", [f"schema_version {version} is not one of {supported}"]
    missing, wrong, invalid = [], [], []
    for f in FIELDS:
        if f.name not in obj:
            missing.append(f"missing field {f.name}")
            continue
        value = obj[f.name]
        if value is None:
            if not f.nullable:
                wrong.append(f"{f.name} is null")
            continue
        # exact type: True is not an int, 1 is not a bool
        if type(value) is not f.type:
            wrong.append(
                f"{f.name} should be {f.type.__name__}, got {type(value).__name__} {value!r:.40}"
            )
            continue
        if f.max_chars is not None and len(value) > f.max_chars:
            invalid.append(f"{f.name} should be at most {f.max_chars} characters, got {len(value)}")
        elif f.check is not None and not f.check(value):
            invalid.append(f"{f.name} should be {f.expected}, got {value!r:.60}")
    for name in obj:
        if name not in _FIELD_SET:
            problem = _extra_name_problem(name)
            if problem is not None:
                invalid.append(problem)
    for reason, problems in (
        ("missing_fields", missing),
        ("wrong_types", wrong),
        ("invalid_values", invalid),
    ):
        if problems:
            return reason, missing + wrong + invalid
    return None


def _problems(obj: Any) -> tuple[str, list[str]] | None:
    """The reason and the problems of a parsed record, or None when it is valid."""
    problem = _interop_problem(obj)
    if problem is not None:
        return "not_interoperable", [problem]
    if not isinstance(obj, dict):
        return "not_object", [f"expected a JSON object, got {type(obj).__name__}"]
    return _field_problems(obj)


def validate_event(obj: Any) -> list[str]:
    """What is wrong with a parsed record as a click event; empty when it is valid.

    Fields not in the schema are allowed (a tolerant reader), if their names
    and values are ones both sinks can hold.
    """
    found = _problems(obj)
    return [] if found is None else found[1]


def decode_event(payload: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Parse and check one Kafka record value; raise InvalidEvent when it is not an event."""
    if payload is None or payload == b"":
        raise InvalidEvent("empty", ["the record has no value"])
    if not isinstance(payload, bytes):
        raise InvalidEvent("not_json", [f"the record value is a {type(payload).__name__}"])
    if len(payload) > max_bytes:
        raise InvalidEvent("oversized", [f"{len(payload)} bytes, the limit is {max_bytes}"])
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("invalid_utf8", [str(exc)]) from None
    try:
        obj = json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=_parse_int,
            parse_float=_parse_float,
            # NaN and Infinity are Python extensions, not JSON
            parse_constant=_reject_constant,
        )
    except _NotInteroperable as exc:
        raise InvalidEvent("not_interoperable", [str(exc)]) from None
    except RecursionError:
        raise InvalidEvent(
            "not_interoperable", [f"nested far deeper than the {MAX_DEPTH} levels allowed"]
        ) from None
    except ValueError as exc:  # JSONDecodeError, including a leading byte order mark
        raise InvalidEvent("not_json", [str(exc)]) from None
    found = _problems(obj)
    if found is not None:
        raise InvalidEvent(*found)
    return obj


def encode_event(event: dict[str, Any]) -> bytes:
    """The wire form, and the HDFS line: compact UTF-8 JSON on one line (city names
    are not ASCII everywhere; control characters are escaped, so no raw newline)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
