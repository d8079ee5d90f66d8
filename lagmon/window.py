"""`clickfan lag evaluate`'s input: bytes in, checked windows judged by Burrow's rules.

Any input ends in a result or in one ClickfanError (exit code 2) whose one-line
message names what is wrong: not UTF-8, not JSON, an integer too long to parse,
nesting deeper than a window has, or the field that breaks the window's schema.
Values quoted in a message are shortened and ASCII-escaped, so that neither a
huge value nor a lone surrogate can break the message itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

from clickfan.errors import ClickfanError
from clickfan.lagmon.evaluator import partition_status
from clickfan.lagmon.protocol import ConsumerOffset, Status

# An array of windows is 4 levels deep ([{"commits": [{...}]}]); anything much
# deeper is not a window, and Python's JSON parser would hit its recursion limit.
MAX_DEPTH = 16
_QUOTE_CHARS = 60
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,40}")

_WINDOW_KEYS = {"commits", "broker_offsets", "current_lag", "now_ms", "allowed_lag"}
_COMMIT_KEYS = {"offset", "timestamp_ms", "lag"}


def _invalid(message: str) -> ClickfanError:
    return ClickfanError(message, exit_code=2)


def _bad(path: str, why: str) -> ClickfanError:
    return _invalid(f"invalid window: {path}: {why}")


def _too_deep() -> ClickfanError:
    return _invalid(f"stdin is nested too deeply (a window is {MAX_DEPTH} levels at most)")


def _quote(value: Any) -> str:
    """A value for a message: JSON, ASCII only, shortened."""
    text = json.dumps(value)
    return text if len(text) <= _QUOTE_CHARS else f"{text[: _QUOTE_CHARS - 3]}..."


def _key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) else _quote(key)


def _depth(doc: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse(data: bytes) -> Any:
    """JSON from stdin's bytes (a UTF-8 byte order mark is allowed)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid(f"stdin is not UTF-8 text: invalid byte at position {exc.start}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(f"stdin is not JSON: {exc}") from None
    except ValueError:
        # Python refuses to convert integers of more than sys.get_int_max_str_digits()
        # digits (CVE-2020-10735); no offset or time is that long.
        raise _invalid("stdin holds an integer too long to be an offset or a time") from None
    except RecursionError:
        raise _too_deep() from None
    if _depth(doc) > MAX_DEPTH:
        raise _too_deep()
    return doc


def _count(value: Any, path: str) -> int:
    """A non-negative integer (JSON true/false are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, f"expected a non-negative integer, got {_quote(value)}")
    if value < 0:
        raise _bad(path, f"must not be negative, got {_quote(value)}")
    return value


def _object(value: Any, path: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path or "window", f"expected an object, got {_quote(value)}")
    prefix = f"{path}." if path else ""
    for key in sorted(set(value) - allowed):
        raise _bad(f"{prefix}{_key(key)}", "unknown field")
    for key in sorted(required - set(value)):
        raise _bad(f"{prefix}{key}", "missing")
    return value


def evaluate_window(doc: Any, path: str = "") -> Status:
    """Validate one `lag evaluate` window and judge it with Burrow's rules."""
    prefix = f"{path}." if path else ""
    window = _object(doc, path, _WINDOW_KEYS, {"commits", "current_lag", "now_ms"})
    commits_doc = window["commits"]
    if not isinstance(commits_doc, list):
        raise _bad(f"{prefix}commits", "expected a list of commits, oldest first")
    commits: list[ConsumerOffset] = []
    for i, item in enumerate(commits_doc):
        where = f"{prefix}commits[{i}]"
        c = _object(item, where, _COMMIT_KEYS, {"offset", "timestamp_ms"})
        lag = c.get("lag")
        commit = ConsumerOffset(
            offset=_count(c["offset"], f"{where}.offset"),
            timestamp=_count(c["timestamp_ms"], f"{where}.timestamp_ms"),
            lag=None if lag is None else _count(lag, f"{where}.lag"),
        )
        if commits and commit.timestamp < commits[-1].timestamp:
            raise _bad(f"{where}.timestamp_ms", f"older than commits[{i - 1}]; list oldest first")
        commits.append(commit)
    brokers_doc = window.get("broker_offsets", [])
    if not isinstance(brokers_doc, list):
        raise _bad(f"{prefix}broker_offsets", "expected a list of offsets, newest first")
    brokers = [_count(b, f"{prefix}broker_offsets[{i}]") for i, b in enumerate(brokers_doc)]
    return partition_status(
        commits,
        brokers,
        current_lag=_count(window["current_lag"], f"{prefix}current_lag"),
        now_ms=_count(window["now_ms"], f"{prefix}now_ms"),
        allowed_lag=_count(window.get("allowed_lag", 0), f"{prefix}allowed_lag"),
    )


def evaluate_input(data: bytes) -> Any:
    """The JSON result for stdin's bytes: one status object, or a list for a list of windows."""
    doc = parse(data)
    if isinstance(doc, list):
        return [{"status": evaluate_window(w, f"[{i}]").long_name} for i, w in enumerate(doc)]
    return {"status": evaluate_window(doc).long_name}
