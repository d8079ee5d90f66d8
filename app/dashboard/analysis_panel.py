"""The dashboard's live analysis panel: `clickfan analyze`'s questions, from Elasticsearch.

GET /api/analysis   the last 15 minutes of event time: events per minute by type, the top
                    pages and referrers, sessions per country and the funnel, exactly as
                    `clickfan analyze QUESTION --engine es --since 15m` answers them

Answers are computed in a thread and kept for a few seconds, so any number of open
pages costs Elasticsearch one round of aggregations per interval. The batch side
(Spark) is not asked here: its JVM takes seconds to start and the page is live.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from clickfan.settings import Settings

WINDOW = "15m"
TOP = 5
CACHE_S = 4.0  # the page asks every 5 s


class AnalysisPanel:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Any = None
        self._answer: dict[str, Any] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    def read(self) -> dict[str, Any]:
        """Every question once (blocking: run it in a thread)."""
        from clickfan.analysis.es_engine import ElasticsearchEngine
        from clickfan.analysis.questions import QUESTIONS, EngineDown, time_range

        if self._engine is None:
            self._engine = ElasticsearchEngine(self.settings)
        window = time_range(WINDOW, None)
        out: dict[str, Any] = {
            "index_prefix": self._engine.prefix,
            "range": window.to_json(),
            "questions": {},
            "error": None,
        }
        began = time.monotonic()
        try:
            for q in QUESTIONS.values():
                out["questions"][q.name] = self._engine.answer(q, window, TOP).to_json()["rows"]
        except EngineDown as exc:
            out["error"] = str(exc)
        out["seconds"] = round(time.monotonic() - began, 3)
        return out

    async def latest(self) -> dict[str, Any]:
        async with self._lock:
            if self._answer is None or time.monotonic() - self._at > CACHE_S:
                self._answer = await asyncio.to_thread(self.read)
                self._at = time.monotonic()
            return self._answer

    def install(self, app: web.Application, dashboard: Any) -> None:
        async def analysis(request: web.Request) -> web.Response:
            return web.json_response(await self.latest())

        app.router.add_get("/api/analysis", analysis)
