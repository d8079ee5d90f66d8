"""The live side: each question as exact Elasticsearch aggregations over the daily indices.

``terms`` aggregations over several indices (shards) are approximate (each
shard sends only its top buckets) and ``cardinality`` is HyperLogLog, so
neither is used: every question pages through a ``composite`` aggregation,
which visits every bucket exactly once, and the ranking is done here.
Only indices named exactly ``<prefix>-YYYY.MM.DD`` are read, so another
prefix that happens to start with ours (``clicks-rebuilt-...``) is not counted.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

from clickfan.analysis.questions import (
    FUNNEL_STEPS,
    Answer,
    EngineDown,
    Question,
    TimeRange,
    finish,
    funnel_counts,
)
from clickfan.settings import Settings
from clickfan.sinks import clients

PAGE = 2000  # composite buckets per request


def daily_indices(es: Elasticsearch, prefix: str) -> list[str]:
    pattern = re.compile(rf"{re.escape(prefix)}-\d{{4}}\.\d{{2}}\.\d{{2}}")
    found = es.indices.get(index=f"{prefix}-*", allow_no_indices=True, expand_wildcards="open")
    return sorted(name for name in found if pattern.fullmatch(name))


class ElasticsearchEngine:
    name = "es"

    def __init__(self, settings: Settings, index_prefix: str | None = None) -> None:
        self.settings = settings
        self.prefix = index_prefix or settings.index_prefix
        self.es = clients.elasticsearch_client(clients.elasticsearch_connection(settings, 60))

    def answer(self, q: Question, window: TimeRange, limit: int) -> Answer:
        began = time.monotonic()
        try:
            indices = daily_indices(self.es, self.prefix)
            if indices:
                # what the indexer wrote in the last second is searchable only after a refresh
                self.es.indices.refresh(index=",".join(indices))
            rows = self._rows(q, indices, window, limit)
        except (TransportError, ApiError) as exc:
            raise EngineDown(f"Elasticsearch at {self.settings.es_url}: {_why(exc)}") from None
        answer = Answer(q.name, self.name, rows, time.monotonic() - began)
        if not indices:
            answer.notes.append(f"no index {self.prefix}-YYYY.MM.DD in Elasticsearch")
        return answer

    # ---------------------------------------------------------------- questions
    def _rows(
        self, q: Question, indices: list[str], window: TimeRange, limit: int
    ) -> list[tuple[Any, ...]]:
        if q.name == "events-per-minute":
            sources = [
                {
                    "minute": {
                        "date_histogram": {
                            "field": "event_time",
                            "fixed_interval": "1m",
                            "time_zone": "UTC",
                        }
                    }
                },
                {"type": {"terms": {"field": "event_type"}}},
            ]
            counts = {
                (int(key["minute"]), key["type"]): n
                for key, n, _ in self._composite(indices, sources, window)
            }
            return finish(q, counts, limit)
        if q.name in ("top-pages", "top-referrers"):
            field = "page_url" if q.name == "top-pages" else "referrer"
            sources = [{"url": {"terms": {"field": field}}}]
            counts = {key["url"]: n for key, n, _ in self._composite(indices, sources, window)}
            return finish(q, counts, limit)
        if q.name == "sessions-per-country":
            sources = [
                {"country": {"terms": {"field": "country"}}},
                {"session": {"terms": {"field": "session_id"}}},
            ]
            per_country: Counter[str] = Counter(
                key["country"] for key, _, _ in self._composite(indices, sources, window)
            )
            return finish(q, dict(per_country), limit)
        if q.name == "funnel":
            firsts = {
                step: {
                    "filter": {"term": {"event_type": step}},
                    "aggs": {"first": {"min": {"field": "event_time"}}},
                }
                for step in FUNNEL_STEPS
            }
            sessions = self._composite(
                indices,
                [{"session": {"terms": {"field": "session_id"}}}],
                window,
                sub_aggs=firsts,
                only_types=FUNNEL_STEPS,
            )
            return finish(
                q,
                funnel_counts(
                    tuple(_first_ms(bucket[step]) for step in FUNNEL_STEPS)
                    for _, _, bucket in sessions
                ),
                limit,
            )
        raise ValueError(q.name)  # pragma: no cover - questions come from QUESTIONS

    def _composite(
        self,
        indices: list[str],
        sources: list[dict[str, Any]],
        window: TimeRange,
        sub_aggs: dict[str, Any] | None = None,
        only_types: tuple[str, ...] = (),
    ) -> Iterator[tuple[dict[str, Any], int, dict[str, Any]]]:
        """(key, doc_count, bucket) of every bucket, page by page."""
        if not indices:
            return
        filters: list[dict[str, Any]] = []
        bounds = {}
        if window.since_ms is not None:
            bounds["gte"] = window.since_ms
        if window.until_ms is not None:
            bounds["lt"] = window.until_ms
        if bounds:
            filters.append({"range": {"event_time": {**bounds, "format": "epoch_millis"}}})
        if only_types:
            filters.append({"terms": {"event_type": list(only_types)}})
        query = {"bool": {"filter": filters}}
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": PAGE, "sources": sources}
            if after is not None:
                composite["after"] = after
            agg: dict[str, Any] = {"composite": composite}
            if sub_aggs:
                agg["aggs"] = sub_aggs
            response = self.es.search(
                index=",".join(indices),
                size=0,
                query=query,
                aggs={"q": agg},
                track_total_hits=False,
            )
            result = response["aggregations"]["q"]
            for bucket in result["buckets"]:
                yield bucket["key"], bucket["doc_count"], bucket
            after = result.get("after_key")
            if not result["buckets"] or after is None:
                return


def _first_ms(bucket: dict[str, Any]) -> int | None:
    value = bucket["first"]["value"]
    return None if value is None else int(value)


def _why(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.meta.status} {exc.message}"
    return f"unreachable ({type(exc).__name__})"
