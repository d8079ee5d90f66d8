"""What a click event is: its fields, its encoding, and how a record is judged.

The producer builds events that follow FIELDS; the consumers call
:func:`decode_event` (bytes from Kafka) or :func:`validate_event` (an already
parsed object) to decide whether a record is a click event or a dead letter.
Both sides read the same table, so they cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
    "not_json",
    "not_object",
    "unsupported_schema_version",
    "missing_fields",
    "wrong_types",
    "invalid_values",
)


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except ValueError:
        return False


def _is_timestamp(value: str) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


_COUNTRY = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True)
class Field:
    name: str
    type: type
    nullable: bool = False
    check: Callable[[Any], object] | None = None  # a value check beyond the type
    expected: str = ""  # what check wants, for the message


# The schema of version 1. Order is the order of keys in an encoded event.
FIELDS: tuple[Field, ...] = (
    Field("schema_version", int),
    Field("event_id", str, check=_is_uuid, expected="a UUID"),
    Field("event_time", str, check=_is_timestamp, expected="an ISO-8601 time with a zone"),
    Field("user_id", str, check=bool, expected="non-empty"),
    Field("session_id", str, check=bool, expected="non-empty"),
    Field("event_type", str, check=EVENT_TYPES.__contains__, expected=f"one of {EVENT_TYPES}"),
    Field("page_url", str, check=_is_url, expected="an http(s) URL"),
    Field("referrer", str, nullable=True, check=_is_url, expected="an http(s) URL"),
    Field("element", str, nullable=True, check=bool, expected="non-empty"),
    Field("device", str, check=DEVICES.__contains__, expected=f"one of {DEVICES}"),
    Field("os", str, check=bool, expected="non-empty"),
    Field("browser", str, check=bool, expected="non-empty"),
    Field("user_agent", str, check=bool, expected="non-empty"),
    Field("ip", str, check=_is_ip, expected="an IP address"),
    Field("country", str, check=_COUNTRY.fullmatch, expected="an ISO 3166 alpha-2 code"),
    Field("city", str, check=bool, expected="non-empty"),
    Field("is_vip", bool),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)


class InvalidEvent(ValueError):
    """A record that is not a valid click event.

    ``reason`` is one of REASONS (short, for a dead-letter header); ``problems``
    says what exactly is wrong.
    """

    def __init__(self, reason: str, problems: list[str]) -> None:
        super().__init__(f"{reason}: {'; '.join(problems)}")
        self.reason = reason
        self.problems = problems


def _problems(obj: Any) -> tuple[str, list[str]] | None:
    """The reason and the problems of a parsed record, or None when it is valid."""
    if not isinstance(obj, dict):
        return "not_object", [f"expected a JSON object, got {type(obj).__name__}"]
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
        if f.check is not None and not f.check(value):
            invalid.append(f"{f.name} should be {f.expected}, got {value!r:.60}")
    for reason, problems in (
        ("missing_fields", missing),
        ("wrong_types", wrong),
        ("invalid_values", invalid),
    ):
        if problems:
            return reason, missing + wrong + invalid
    return None


def validate_event(obj: Any) -> list[str]:
    """What is wrong with a parsed record as a click event; empty when it is valid.

    Fields not in the schema are allowed (a tolerant reader).
    """
    found = _problems(obj)
    return [] if found is None else found[1]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_event(payload: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Parse and check one Kafka record value; raise InvalidEvent when it is not an event."""
    if not payload:
        raise InvalidEvent("empty", ["the record has no value"])
    if len(payload) > max_bytes:
        raise InvalidEvent("oversized", [f"{len(payload)} bytes, the limit is {max_bytes}"])
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("invalid_utf8", [str(exc)]) from None
    try:
        # NaN and Infinity are Python extensions, not JSON
        obj = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise InvalidEvent("not_json", [str(exc)]) from None
    found = _problems(obj)
    if found is not None:
        raise InvalidEvent(*found)
    return obj


def encode_event(event: dict[str, Any]) -> bytes:
    """The wire form: compact UTF-8 JSON (city names are not ASCII everywhere)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
