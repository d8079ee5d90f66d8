"""Hypothesis strategies for click events: hostile values, any JSON, valid events at the edges.

Shared by the unit properties (tests/unit/test_events_properties.py) and the
check against the real Elasticsearch node (tests/integration/test_contract_es.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from clickfan.events import FIELD_NAMES, FIELDS
from clickfan.generators.events import EventGenerator

BASE_EVENTS = EventGenerator(11, start_time=datetime(2026, 3, 1, tzinfo=UTC), users=50).take(20)

# strings that broke, or could break, a parser somewhere
HOSTILE_STRINGS = [
    "http://[x",
    "https://[::1",
    "http://exa\uff03mple.com/",
    "http://\u2100.com/",
    "http://x:99999999999999999999/",
    "1.2.3.4\x00",
    "fe80::1%eth0",
    "::ffff:1.2.3.4",
    "01.2.3.4",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:00:00-05:00",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:60Z",
    "2026-01-01T00:00:00+19:00",
    "2026-01-01T00:00:00+18:00",
    "2026-01-01T00:00:00",
    "2026-01-01",
    "٢٠٢٦-01-01T00:00:00Z",
    "\ufeff{}",
    "\ud800",
    "a\udc00b",
    "\x00",
    "",
    " ",
    "x" * 9000,
    "_id",
    "event_time.x",
]

_chars = st.one_of(st.characters(codec=None), st.characters(categories=["Cs"]))
texts = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(_chars, max_size=30))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=20,
)


# extra field names both sinks take
names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}(\.[a-z0-9_-]{1,5})?", fullmatch=True)


_offsets = st.integers(-18 * 60, 18 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def event_times(draw: st.DrawFn) -> str:
    tz = draw(_offsets)
    edges = st.one_of(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 1, 23, 59)),
        st.datetimes(min_value=datetime(9999, 12, 31), max_value=datetime(9999, 12, 31, 23, 59)),
    )
    local = draw(st.one_of(edges, st.datetimes(min_value=datetime(1, 1, 1))))
    digits = draw(st.sampled_from([0, 1, 3, 6, 9]))
    fraction = f"{local.microsecond:06d}000"[:digits]
    offset = tz.utcoffset(None)
    minutes = int(offset.total_seconds()) // 60
    zone = draw(st.sampled_from(["Z", None])) if minutes == 0 else None
    zone = zone or f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    date = f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
    clock = f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    return f"{date}T{clock}" + (f".{fraction}" if digits else "") + zone


@st.composite
def edge_events(draw: st.DrawFn) -> dict[str, Any]:
    event = dict(draw(st.sampled_from(BASE_EVENTS)))
    event["event_time"] = draw(event_times())
    event["ip"] = str(draw(st.ip_addresses()))
    for f in FIELDS:
        if f.max_chars and f.name not in ("page_url", "referrer", "ip") and draw(st.booleans()):
            event[f.name] = draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=40))
    extras = draw(st.dictionaries(names, json_values, max_size=3))
    event.update({k: v for k, v in extras.items() if k.split(".")[0] not in FIELD_NAMES})
    return event
