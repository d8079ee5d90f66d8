"""Burrow's v3 HTTP API, and the Prometheus metrics of ``metrics``, served with aiohttp.

Paths, the response envelope (``error``, ``message``, ``request``) and field
names are Burrow's (``core/internal/httpserver``), so Burrow clients and
dashboards work unchanged. Two additions: names that cannot be Kafka names are
refused with 400, and an unknown group's status comes back as 404 with
``error: true`` as well as Burrow's NOTFOUND status object, so that both
clients that read ``error`` and clients that read ``status.status`` see it.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clickfan.errors import ClickfanError
from clickfan.lagmon.config import MonitorConfig
from clickfan.lagmon.evaluator import Evaluator
from clickfan.lagmon.httpauth import HttpSecurity
from clickfan.lagmon.metrics import registry as metrics_registry
from clickfan.lagmon.protocol import Status, valid_group_name, valid_kafka_name
from clickfan.lagmon.storage import Storage

STORAGE = web.AppKey("storage", Storage)
EVALUATOR = web.AppKey("evaluator", Evaluator)
CONFIG = web.AppKey("config", MonitorConfig)

_VALID_NAME = {"cluster": valid_kafka_name, "topic": valid_kafka_name, "group": valid_group_name}


def _request_info(request: web.Request) -> dict[str, str]:
    return {"url": request.path, "host": socket.gethostname()}


def _ok(request: web.Request, message: str, **fields: Any) -> web.Response:
    body = {"error": False, "message": message, **fields, "request": _request_info(request)}
    return web.json_response(body)


def _failure(request: web.Request, code: int, message: str, **fields: Any) -> web.HTTPError:
    body = {"error": True, "message": message, **fields, "request": _request_info(request)}
    error = web.HTTPBadRequest if code == 400 else web.HTTPNotFound
    return error(text=json.dumps(body), content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _burrow_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        # No route: Burrow's catch-all answer.
        body = {"error": True, "message": "invalid request type", "result": {}}
        return web.json_response(body, status=request.match_info.http_exception.status)
    for key, value in request.match_info.items():
        if not _VALID_NAME[key](value):
            raise _failure(request, 400, f"invalid {key} name: not a valid Kafka name")
    return await handler(request)


async def _admin(request: web.Request) -> web.Response:
    return web.Response(text="GOOD")


async def _cluster_list(request: web.Request) -> web.Response:
    return _ok(request, "cluster list returned", clusters=request.app[STORAGE].clusters())


async def _cluster_detail(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = request.match_info["cluster"]
    servers = next((c.servers for c in config.clusters if c.name == name), None)
    if servers is None or not request.app[STORAGE].has_cluster(name):
        raise _failure(request, 404, "cluster module not found")
    module = {
        "class-name": "kafka",
        "servers": list(servers),
        "client-profile": {
            "name": "default",
            "client-id": "clickfan-lagmon",
            "kafka-version": "",
            "tls": None,
            "sasl": None,
        },
        # Both are read on one interval here.
        "topic-refresh": config.interval_s,
        "offset-refresh": config.interval_s,
    }
    return _ok(request, "cluster module detail returned", module=module)


async def _topic_list(request: web.Request) -> web.Response:
    topics = request.app[STORAGE].topics(request.match_info["cluster"])
    if topics is None:
        raise _failure(request, 404, "cluster not found")
    return _ok(request, "topic list returned", topics=topics)


async def _topic_detail(request: web.Request) -> web.Response:
    info = request.match_info
    offsets = request.app[STORAGE].topic_offsets(info["cluster"], info["topic"])
    if offsets is None:
        raise _failure(request, 404, "cluster or topic not found")
    return _ok(request, "topic offsets returned", offsets=offsets)


async def _topic_consumers(request: web.Request) -> web.Response:
    info = request.match_info
    consumers = request.app[STORAGE].consumers_of_topic(info["cluster"], info["topic"])
    if consumers is None:
        raise _failure(request, 404, "cluster not found")
    return _ok(request, "consumers of topic returned", consumers=consumers)


async def _consumer_list(request: web.Request) -> web.Response:
    groups = request.app[STORAGE].groups(request.match_info["cluster"])
    if groups is None:
        raise _failure(request, 404, "cluster not found")
    return _ok(request, "consumer list returned", consumers=groups)


async def _consumer_detail(request: web.Request) -> web.Response:
    info = request.match_info
    topics = request.app[STORAGE].consumer(info["cluster"], info["group"])
    if topics is None:
        raise _failure(request, 404, "cluster or consumer not found")
    body = {t: [p.to_json() for p in parts] for t, parts in topics.items()}
    return _ok(request, "consumer detail returned", topics=body)


def _status_handler(show_all: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        info = request.match_info
        status = request.app[EVALUATOR].group_status(info["cluster"], info["group"])
        if status.status == Status.NOTFOUND:
            raise _failure(request, 404, "cluster or consumer not found", status=status.to_json())
        return _ok(request, "consumer status returned", status=status.to_json(show_all))

    return handler


def make_app(storage: Storage, evaluator: Evaluator, config: MonitorConfig) -> web.Application:
    app = web.Application(middlewares=[_burrow_errors])
    app[STORAGE], app[EVALUATOR], app[CONFIG] = storage, evaluator, config
    registry = metrics_registry(storage, evaluator)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    prefix = "/v3/kafka/{cluster}"
    app.router.add_get("/burrow/admin", _admin)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v3/kafka", _cluster_list)
    app.router.add_get(prefix, _cluster_detail)
    app.router.add_get(f"{prefix}/topic", _topic_list)
    app.router.add_get(f"{prefix}/topic/{{topic}}", _topic_detail)
    app.router.add_get(f"{prefix}/topic/{{topic}}/consumers", _topic_consumers)
    app.router.add_get(f"{prefix}/consumer", _consumer_list)
    app.router.add_get(f"{prefix}/consumer/{{group}}", _consumer_detail)
    app.router.add_get(f"{prefix}/consumer/{{group}}/status", _status_handler(show_all=False))
    app.router.add_get(f"{prefix}/consumer/{{group}}/lag", _status_handler(show_all=True))
    return app


async def start(
    app: web.Application, host: str, port: int, security: HttpSecurity | None = None
) -> web.AppRunner:
    """Listen on host:port (port 0: any free port); stop with ``runner.cleanup()``.

    With ``security``: refused beyond loopback without a token, the token checked on
    every request, HTTPS when it has a certificate (lagmon.httpauth).
    """
    security = security or HttpSecurity("monitor")
    security.check_exposure(host)
    security.protect(app)
    tls = security.ssl_context()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=tls).start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise ClickfanError(
                f"port {port} on {host} is taken by {_listener(port)}: stop it, "
                "or serve the monitor elsewhere with --port"
            ) from None
        raise ClickfanError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return runner


def _listener(port: int) -> str:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                break
            try:
                return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return "another process"
