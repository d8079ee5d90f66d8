"""The questions `clickfan analyze` answers, defined once for every engine (pure: no I/O).

Each question says exactly what it counts, so that Elasticsearch (live), Spark
over the HDFS archive (batch) and :func:`reference` (plain Python over a list
of events, for tests) can be held to the same answer:

- An event is counted once per document Elasticsearch would hold: one per
  event id and UTC day (the daily index); the archive holds one line per Kafka
  offset, so the batch side drops repeats of an (event id, day). (A producer
  that reuses an event id with other content on the same day makes the engines
  keep different copies, Elasticsearch the last indexed, Spark any one: their
  answers can then differ. Our producer never reuses ids.)
- Times are event times, in UTC, to the millisecond (Elasticsearch's ``date``
  keeps milliseconds; finer digits are cut, rounding towards the past).
- A time range is ``since <= event_time < until``.
- URLs longer than :data:`MAX_INDEXED_URL` UTF-16 code units are not indexed by
  Elasticsearch (the mapping's ``ignore_above``), so no engine counts them as a
  page or referrer.

An :class:`Answer` is rows of plain values in a fixed order; two answers agree
when their rows are equal.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clickfan.errors import ClickfanError
from clickfan.events import event_time_utc

MAX_INDEXED_URL = 2048  # sinks.es_index: page_url and referrer have ignore_above 2048
FUNNEL_STEPS = ("page_view", "click", "purchase")


@dataclass(frozen=True)
class Question:
    name: str
    summary: str  # one line, for the list of choices
    definition: str  # what exactly is counted (the help)
    columns: tuple[str, ...]
    limited: bool = False  # takes --limit (top N)


QUESTIONS: dict[str, Question] = {
    q.name: q
    for q in (
        Question(
            "events-per-minute",
            "events per minute of event time, by event type",
            "Events per UTC minute of event time and event type; one row per minute and type "
            "that has events, oldest first.",
            ("minute", "event_type", "events"),
        ),
        Question(
            "top-pages",
            "the most viewed pages (any event type)",
            "Events per page_url, most first (ties: the URL in code-point order), the first "
            "--limit rows.",
            ("page_url", "events"),
            limited=True,
        ),
        Question(
            "top-referrers",
            "the referrers that bring the most events",
            "Events per referrer, most first (ties: the URL in code-point order), the first "
            "--limit rows; events without a referrer (direct traffic) are not counted.",
            ("referrer", "events"),
            limited=True,
        ),
        Question(
            "sessions-per-country",
            "distinct sessions per country",
            "Distinct session_id per country, most first (ties: the country code); a session "
            "with events from two countries counts in both. Exact (no HyperLogLog).",
            ("country", "sessions"),
        ),
        Question(
            "funnel",
            "sessions through page view -> click -> purchase",
            "Per session, ordered by event time: 'page_view' = sessions with a page_view; "
            "'click' = of those, sessions whose first click is not before their first "
            "page_view; 'purchase' = of those, sessions whose first purchase is not before "
            "their first click. Only events inside the time range count.",
            ("step", "sessions"),
        ),
    )
}
ENGINES = ("es", "spark", "both")
DEFAULT_LIMIT = 10


class BadInput(ClickfanError):
    """An unknown question, engine or time range: exit 2 with the choices."""

    exit_code = 2


class EngineDown(ClickfanError):
    """An engine cannot answer (its service is down, Spark cannot start): one line why.

    With ``--engine both`` the other engine still answers.
    """


def question(name: str) -> Question:
    found = QUESTIONS.get(name)
    if found is None:
        raise BadInput(f"unknown question {name!r}; choose one of: {', '.join(QUESTIONS)}, all")
    return found


def engine(name: str) -> str:
    if name not in ENGINES:
        raise BadInput(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")
    return name


# -- time ranges -----------------------------------------------------------------------

_AGE = re.compile(r"(\d{1,9})([smhd])")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
TIME_CHOICES = (
    "an ISO 8601 time (2025-01-31T12:00:00Z; without a zone it is UTC) "
    "or an age such as 90s, 15m, 2h, 7d (that long before now)"
)


@dataclass(frozen=True)
class TimeRange:
    """``since <= event_time < until`` in epoch milliseconds; None: unbounded."""

    since_ms: int | None = None
    until_ms: int | None = None

    def contains(self, ms: int) -> bool:
        return (self.since_ms is None or ms >= self.since_ms) and (
            self.until_ms is None or ms < self.until_ms
        )

    def describe(self) -> str:
        def show(ms: int | None) -> str:
            return "-" if ms is None else iso_ms(ms)

        return f"[{show(self.since_ms)}, {show(self.until_ms)})"

    def to_json(self) -> dict[str, str | None]:
        return {
            "since": None if self.since_ms is None else iso_ms(self.since_ms),
            "until": None if self.until_ms is None else iso_ms(self.until_ms),
        }


def parse_time(text: str, now: datetime, flag: str) -> int:
    """Epoch milliseconds of an ISO time or an age; BadInput otherwise."""
    value = text.strip()
    age = _AGE.fullmatch(value)
    if age:
        when = now - timedelta(**{_AGE_UNITS[age.group(2)]: int(age.group(1))})
    else:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise BadInput(f"{flag} {text!r}: expected {TIME_CHOICES}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return to_ms(when)


def time_range(since: str | None, until: str | None, now: datetime | None = None) -> TimeRange:
    now = now or datetime.now(UTC)
    since_ms = None if since is None else parse_time(since, now, "--since")
    until_ms = None if until is None else parse_time(until, now, "--until")
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise BadInput(
            f"--since {since} is not before --until {until}: the range would be empty "
            f"(expected {TIME_CHOICES}, since before until)"
        )
    return TimeRange(since_ms, until_ms)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(when: datetime) -> int:
    """Epoch milliseconds, rounded towards the past as Elasticsearch does (floor)."""
    delta = when.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) // 1000


def iso_ms(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``; minutes are shown as ``YYYY-MM-DDTHH:MMZ``."""
    when = _EPOCH + timedelta(milliseconds=ms)
    text = f"{when.year:04d}-{when:%m-%dT%H:%M}"
    if ms % 60_000:
        text += f":{when:%S}.{when.microsecond // 1000:03d}"
    return text + "Z"


def minute_of(ms: int) -> int:
    return ms - ms % 60_000  # Python's % floors: right for times before 1970 too


def utf16_units(text: str) -> int:
    """How Java (Elasticsearch's ignore_above) measures a string's length."""
    return len(text.encode("utf-16-le")) // 2


# -- answers ---------------------------------------------------------------------------


@dataclass
class Answer:
    question: str
    engine: str
    rows: list[tuple[Any, ...]]
    seconds: float = 0.0  # how long the engine took
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        columns = QUESTIONS[self.question].columns
        return {
            "engine": self.engine,
            "seconds": round(self.seconds, 3),
            "rows": [dict(zip(columns, row, strict=True)) for row in self.rows],
            "notes": self.notes,
        }


def finish(q: Question, counts: dict[Any, int], limit: int) -> list[tuple[Any, ...]]:
    """Rows of a question from its counts (keys are tuples for events-per-minute),
    in the question's order: the one normal form every engine's answer takes."""
    if q.name == "events-per-minute":
        return [
            (iso_ms(minute), event_type, n) for (minute, event_type), n in sorted(counts.items())
        ]
    if q.name == "funnel":
        return [(step, int(counts.get(step, 0))) for step in FUNNEL_STEPS]
    rows = sorted(((key, int(n)) for key, n in counts.items() if n > 0), key=_most_first)
    return rows[:limit] if q.limited else rows


def _most_first(row: tuple[Any, int]) -> tuple[int, Any]:
    return (-row[1], row[0])


def funnel_counts(
    firsts: Iterable[tuple[int | None, int | None, int | None]],
) -> dict[str, int]:
    """From each session's first page_view, click and purchase time (ms or None)."""
    counts = Counter({step: 0 for step in FUNNEL_STEPS})
    for view, click, purchase in firsts:
        if view is None:
            continue
        counts["page_view"] += 1
        if click is None or click < view:
            continue
        counts["click"] += 1
        if purchase is not None and purchase >= click:
            counts["purchase"] += 1
    return dict(counts)


def reference(
    q: Question, events: Iterable[dict[str, Any]], window: TimeRange, limit: int
) -> Answer:
    """The answer computed in plain Python from events as produced (tests' ground truth)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        t = event_time_utc(event["event_time"])
        seen[(event["event_id"], t.date().isoformat())] = event  # the last one wins, as in ES
    counts: Counter[Any] = Counter()
    firsts: dict[str, list[int | None]] = defaultdict(lambda: [None, None, None])
    for event in seen.values():
        ms = to_ms(event_time_utc(event["event_time"]))
        if not window.contains(ms):
            continue
        if q.name == "events-per-minute":
            counts[(minute_of(ms), event["event_type"])] += 1
        elif q.name in ("top-pages", "top-referrers"):
            url = event["page_url" if q.name == "top-pages" else "referrer"]
            if url is not None and utf16_units(url) <= MAX_INDEXED_URL:
                counts[url] += 1
        elif q.name == "sessions-per-country":
            counts[(event["country"], event["session_id"])] = 1
        elif q.name == "funnel" and event["event_type"] in FUNNEL_STEPS:
            slot = firsts[event["session_id"]]
            i = FUNNEL_STEPS.index(event["event_type"])
            slot[i] = ms if slot[i] is None else min(slot[i], ms)
    if q.name == "sessions-per-country":
        counts = Counter(country for country, _ in counts)
    if q.name == "funnel":
        counts = Counter(funnel_counts(tuple(f) for f in firsts.values()))
    return Answer(q.name, "reference", finish(q, counts, limit))
