"""Where click events live in Elasticsearch: daily indices made from one index template.

Each event goes to ``<prefix>-YYYY.MM.DD`` by its event time (UTC), so old
days can be dropped or moved as a whole. The template fixes the mapping up
front: a field that arrives with another shape is rejected instead of
changing the index for everybody (``dynamic: false`` keeps unknown extra
fields in ``_source`` without indexing them, as the schema is a tolerant
reader).
"""

from __future__ import annotations

import re
from typing import Any

from clickfan.events import event_time_utc

_KEYWORD = {"type": "keyword"}
_URL = {"type": "keyword", "ignore_above": 2048}

# One entry per field of clickfan.events.FIELDS (a unit test keeps them in step).
MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "schema_version": {"type": "short"},
        "event_id": _KEYWORD,
        "event_time": {"type": "date", "format": "strict_date_optional_time"},
        "user_id": _KEYWORD,
        "session_id": _KEYWORD,
        "event_type": _KEYWORD,
        "page_url": _URL,
        "referrer": _URL,
        "element": _KEYWORD,
        "device": _KEYWORD,
        "os": _KEYWORD,
        "browser": _KEYWORD,
        # full-text for "which Chrome versions", keyword for exact counts
        "user_agent": {
            "type": "text",
            "fields": {"raw": {"type": "keyword", "ignore_above": 512}},
        },
        "ip": {"type": "ip"},
        "country": _KEYWORD,
        "city": _KEYWORD,
        "is_vip": {"type": "boolean"},
    },
}

# Lowercase, no characters Elasticsearch forbids in index names, not starting with -_+.
_PREFIX = re.compile(r"[a-z0-9][a-z0-9._-]{0,200}")


def check_prefix(prefix: str) -> str:
    """The prefix, or ValueError saying why it cannot name indices."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"index prefix {prefix!r} cannot name Elasticsearch indices: use lowercase "
            "letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return prefix


def template_name(prefix: str) -> str:
    return prefix


def template_body(prefix: str, shards: int, replicas: int) -> dict[str, Any]:
    """Arguments of ``indices.put_index_template`` for the daily indices of ``prefix``."""
    return {
        "index_patterns": [f"{prefix}-*"],
        # above Elasticsearch's built-in templates (priority 100 and up to 200)
        "priority": 500,
        "template": {
            "settings": {"number_of_shards": shards, "number_of_replicas": replicas},
            "mappings": MAPPINGS,
        },
        "meta": {"managed_by": "clickfan", "description": "daily click-log indices"},
    }


def index_name(prefix: str, event_time: str) -> str:
    """``<prefix>-YYYY.MM.DD`` of a valid event's UTC day (clickfan.events.event_time_utc)."""
    t = event_time_utc(event_time)
    # not strftime: %Y gives "1", not "0001", for the year 1 on Linux
    return f"{prefix}-{t.year:04d}.{t.month:02d}.{t.day:02d}"
