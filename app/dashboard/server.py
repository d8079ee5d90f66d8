"""The dashboard's HTTP server (aiohttp): the page, its JSON, pushed updates, actions.

GET  /                    the page (a fresh confirmation token in it)
GET  /static/...          its script, style, and the chart library (npm, see package.json)
GET  /api/state           the latest reading (state.build_state)
GET  /api/history         the last 15 minutes of lag and events/s
GET  /api/events          server-sent events: state (each reading), log (action entries)
GET  /api/reports         experiment report folders; /api/reports/NAME renders one
GET  /reports/NAME/FILE   a report's plots
POST /api/actions/KIND    an action (service, worker, producer, replay, experiment)
GET  /api/deadletters...  the dead letters' counts and letters (deadletters.py; their
                          actions are dlq-redrive, dlq-purge, dlq-stop)

Actions are refused unless the request comes from the loopback address, names
this server in Host (no DNS rebinding), comes from this page's origin when the
browser says where it comes from (Origin), and carries a token that this server
put into a page it served (X-Clickfan-Token): another site cannot read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from markdown_it import MarkdownIt

from clickfan.app.dashboard.actions import ActionLog, Actions, Refused
from clickfan.app.dashboard.state import History, Reading, build_state

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
CHART_LIBRARY = STATIC / "node_modules" / "uplot" / "dist"
HISTORY_S = 15 * 60
TOKENS_KEPT = 256  # pages whose token is still accepted (oldest forgotten first)
LOOPBACK = {"127.0.0.1", "::1"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,200}")
_PLOT_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json"}

Reader = Any  # something with read() -> Reading


class Part(Protocol):
    """A panel with routes, startup and cleanup of its own (deadletters.DeadLetters)."""

    def install(self, app: web.Application, dashboard: Dashboard) -> None: ...


class Hub:
    """Fans readings and log changes out to every open page (one queue each)."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[tuple[str, str]]] = set()

    def publish(self, event: str, data: Any) -> None:
        text = json.dumps(data, separators=(",", ":"))
        for q in list(self.queues):
            if q.full():  # a page that does not read: drop its oldest, keep the newest
                q.get_nowait()
            q.put_nowait((event, text))


class Dashboard:
    def __init__(
        self,
        reader: Reader,
        actions: Actions,
        log_: ActionLog,
        interval_s: float,
        reports_dir: Path,
        extra: dict[str, Any] | None = None,
        parts: tuple[Part, ...] = (),
    ) -> None:
        self.reader = reader
        self.actions = actions
        self.log = log_
        self.interval_s = interval_s
        self.reports_dir = reports_dir
        self.extra = extra or {}  # read on each tick: processes, producer rate, services
        self.parts = parts  # panels that bring their own routes (deadletters.DeadLetters)
        self.history = History(HISTORY_S, interval_s)
        self.hub = Hub()
        self.state: dict[str, Any] | None = None
        self.tokens: OrderedDict[str, float] = OrderedDict()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.read_ms: float = 0.0  # how long the last reading took
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._warm: asyncio.Task[Any] | None = None  # the actions' list, made before a page asks

    # -- reading loop ---------------------------------------------------------------

    def tick(self, reading: Reading) -> dict[str, Any]:
        for key, value in self.extra.items():
            setattr(reading, key, value() if callable(value) else value)
        rates = self.history.add(reading, build_state(reading))
        state = build_state(reading, rates)
        state["point"] = self.history.points[-1] if self.history.points else None
        state["read_ms"] = round(self.read_ms)
        self.state = state
        return state

    async def _loop(self) -> None:
        # ends when _stop is set, never in the middle of a reading: the Kafka clients
        # must not be closed under the thread that uses them
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                reading = await asyncio.to_thread(self.reader.read)
                self.read_ms = (time.monotonic() - began) * 1000
                self.hub.publish("state", self.tick(reading))
            except Exception:  # one failed reading must not end the page
                log.exception("reading the pipeline failed; trying again")
            pause = max(self.interval_s - (time.monotonic() - began), 0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)

    async def on_startup(self, app: web.Application) -> None:
        self.loop = asyncio.get_running_loop()
        self.log.changed = lambda entry: self.loop.call_soon_threadsafe(  # type: ignore[union-attr]
            self.hub.publish, "log", entry.to_json()
        )
        self._task = asyncio.create_task(self._loop())
        self._warm = asyncio.create_task(asyncio.to_thread(self.actions.available))

    async def on_cleanup(self, app: web.Application) -> None:
        self._stop.set()
        if self._task:
            await self._task

    # -- the page -------------------------------------------------------------------

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time()
        while len(self.tokens) > TOKENS_KEPT:
            self.tokens.popitem(last=False)
        return token

    async def index(self, request: web.Request) -> web.Response:
        html = (STATIC / "index.html").read_text()
        charts = (CHART_LIBRARY / "uPlot.iife.min.js").exists()
        html = html.replace("{{TOKEN}}", self.issue_token()).replace(
            "{{CHARTS}}",
            '<link rel="stylesheet" href="/static/node_modules/uplot/dist/uPlot.min.css">'
            '<script src="/static/node_modules/uplot/dist/uPlot.iife.min.js"></script>'
            if charts
            else "",
        )
        return web.Response(
            text=html,
            content_type="text/html",
            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
        )

    async def api_state(self, request: web.Request) -> web.Response:
        if self.state is None:
            return web.json_response({"error": "no reading yet"}, status=503)
        return web.json_response(self.state)

    async def api_history(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.history.points))

    async def api_meta(self, request: web.Request) -> web.Response:
        available = await asyncio.to_thread(self.actions.available)
        if request.remote not in LOOPBACK:  # they would be refused: not offered
            available = {k: [] if isinstance(v, list) else False for k, v in available.items()}
        return web.json_response(
            {"actions": available, "log": self.log.to_json(), "interval_s": self.interval_s}
        )

    async def api_events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=64)
        self.hub.queues.add(queue)
        try:
            if self.state is not None:
                await response.write(_sse("state", json.dumps(self.state)))
            while True:
                try:
                    event, data = await asyncio.wait_for(queue.get(), timeout=15)
                    await response.write(_sse(event, data))
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
        except ConnectionResetError:
            pass  # the page was closed
        finally:
            self.hub.queues.discard(queue)
        return response

    # -- actions --------------------------------------------------------------------

    def check_request(self, request: web.Request) -> None:
        """Refused unless local, same-origin and carrying a token this server issued."""
        if request.remote not in LOOPBACK:
            raise Refused(f"actions are only taken from 127.0.0.1 (not {request.remote})", 403)
        port = request.transport.get_extra_info("sockname")[1] if request.transport else None
        hosts = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")}
        if request.host not in hosts:
            raise Refused(f"unexpected Host {request.host!r}: open the page on 127.0.0.1", 403)
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise Refused(f"cross-site request from {origin!r} refused", 403)
        token = request.headers.get("X-Clickfan-Token")
        if not token:
            raise Refused("missing confirmation token (X-Clickfan-Token): reload the page", 403)
        if not any(secrets.compare_digest(token, t) for t in self.tokens):
            raise Refused("wrong confirmation token: reload the page", 403)

    async def api_action(self, request: web.Request) -> web.Response:
        try:
            self.check_request(request)
            try:
                params = await request.json()
            except ValueError:
                raise Refused("the body must be a JSON object") from None
            if not isinstance(params, dict):
                raise Refused("the body must be a JSON object")
            entry = await asyncio.to_thread(
                self.actions.request, request.match_info["kind"], params
            )
        except Refused as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"entry": entry.to_json()}, status=202)

    # -- reports --------------------------------------------------------------------

    def _report_dir(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise web.HTTPNotFound(text=f"no report {name!r}")
        folder = self.reports_dir / name
        if not (folder / "report.md").is_file():
            raise web.HTTPNotFound(text=f"no report {name!r}")
        return folder

    async def api_reports(self, request: web.Request) -> web.Response:
        found = []
        if self.reports_dir.is_dir():
            for folder in self.reports_dir.iterdir():
                md = folder / "report.md"
                if md.is_file() and _NAME.fullmatch(folder.name):
                    found.append(
                        {"name": folder.name, "title": _title(md), "mtime": md.stat().st_mtime}
                    )
        found.sort(key=lambda r: r["mtime"], reverse=True)
        return web.json_response({"folder": str(self.reports_dir), "reports": found})

    async def api_report(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        folder = self._report_dir(name)
        html = render_report((folder / "report.md").read_text(errors="replace"), name)
        return web.json_response({"name": name, "html": html})

    async def report_file(self, request: web.Request) -> web.FileResponse:
        folder = self._report_dir(request.match_info["name"])
        file = request.match_info["file"]
        path = folder / file
        if not _NAME.fullmatch(file) or path.suffix not in _PLOT_TYPES or not path.is_file():
            raise web.HTTPNotFound(text=f"no file {file!r} in {folder.name}")
        return web.FileResponse(path, headers={"Content-Type": _PLOT_TYPES[path.suffix]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/api/state", self.api_state)
        app.router.add_get("/api/history", self.api_history)
        app.router.add_get("/api/meta", self.api_meta)
        app.router.add_get("/api/events", self.api_events)
        app.router.add_post("/api/actions/{kind}", self.api_action)
        app.router.add_get("/api/reports", self.api_reports)
        app.router.add_get("/api/reports/{name}", self.api_report)
        app.router.add_get("/reports/{name}/{file}", self.report_file)
        for part in self.parts:
            part.install(app, self)
        app.router.add_static("/static", STATIC)
        app.on_startup.append(self.on_startup)
        app.on_cleanup.append(self.on_cleanup)
        return app


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


def _title(md: Path) -> str:
    with md.open(errors="replace") as f:
        for line in f:
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return md.parent.name


def render_report(markdown: str, name: str) -> str:
    """report.md as HTML: raw HTML in it is escaped; relative images point at the folder."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                src = str(child.attrGet("src") or "")
                if src and "/" not in src and ":" not in src:
                    child.attrSet("src", f"/reports/{name}/{src}")
    return md.renderer.render(tokens, md.options, {})
