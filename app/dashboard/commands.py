"""`clickfan dashboard`: serve the live page; `clickfan demo` starts it in a thread."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import click
from aiohttp import web

from clickfan.app.dashboard.actions import ActionLog, Actions, ManagedApps
from clickfan.app.dashboard.analysis_panel import AnalysisPanel
from clickfan.app.dashboard.deadletters import DeadLetters
from clickfan.app.dashboard.readers import PipelineReader
from clickfan.app.dashboard.server import CHART_LIBRARY, STATIC, Dashboard
from clickfan.app.demo import AppProcess
from clickfan.compose.native import process, stack
from clickfan.errors import ClickfanError
from clickfan.lagmon import config as lagconfig
from clickfan.lagmon.httpauth import HttpSecurity
from clickfan.lagmon.monitor import Monitor
from clickfan.settings import Settings, load


def local_stack(settings: Settings) -> bool:
    """Whether this machine runs the native stack (pid files under the clickfan home)."""
    return any(stack.running_pid(s) is not None for s in stack.core_services(settings))


@dataclass
class Running:
    """A dashboard serving in this process; stop() ends its server and readers."""

    url: str
    monitor: Monitor
    reader: PipelineReader
    runner: web.AppRunner
    loop: asyncio.AbstractEventLoop

    def stop(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        future.result(timeout=15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.reader.stop()
        self.monitor.stop()


async def _start(settings: Settings, apps: ManagedApps, host: str, port: int) -> Running:
    # beyond 127.0.0.1 only with a token, checked on every request; HTTPS if configured
    security = HttpSecurity.of(settings, "dashboard")
    security.check_exposure(host)
    if not process.port_is_free(host, port):
        raise ClickfanError(
            f"cannot serve the dashboard on {host}:{port}: the port is taken by "
            f"{process.port_owner(port)}; choose another with --port or CLICKFAN_DASHBOARD_PORT"
        )
    # the lag monitor's own evaluation settings, read as often as the page updates
    config = lagconfig.defaults(settings).with_overrides(interval_s=settings.dashboard_interval_s)
    monitor = Monitor(config)
    reader = PipelineReader(settings, monitor, config.clusters[0].name)
    log = ActionLog()
    actions = Actions(settings, apps, log, lambda: local_stack(settings))
    dead_letters = DeadLetters(settings, actions)
    dashboard = Dashboard(
        reader,
        actions,
        log,
        settings.dashboard_interval_s,
        Path(settings.experiment_out),
        extra={
            "processes": apps.process_infos,
            "producer_rate": lambda: apps.rate,
            "services": lambda: _services(settings),
        },
        parts=(dead_letters, AnalysisPanel(settings)),
    )
    app = dashboard.app()
    security.protect(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=security.ssl_context()).start()
    except OSError as exc:
        await runner.cleanup()
        raise ClickfanError(
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror}; "
            "choose another port with --port or CLICKFAN_DASHBOARD_PORT"
        ) from None
    monitor.start()
    reader.start()
    return Running(
        f"{security.scheme}://{host}:{port}/", monitor, reader, runner, asyncio.get_running_loop()
    )


def _services(settings: Settings) -> dict[str, bool] | None:
    if not local_stack(settings):
        return None
    return {
        s.name: stack.running_pid(s) is not None
        for s in stack.core_services(settings)
        if s.name != "namenode"
    }


def start_in_thread(settings: Settings, processes: list[AppProcess], rate: float | None) -> Running:
    """Serve in a daemon thread with its own event loop, controlling `clickfan demo`'s
    processes (named as ManagedApps names them) and its producer's rate."""
    apps = ManagedApps(processes, rate)
    loop = asyncio.new_event_loop()
    started: list[Running | BaseException] = []
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.append(
                loop.run_until_complete(
                    _start(settings, apps, settings.dashboard_host, settings.dashboard_port)
                )
            )
        except BaseException as exc:  # handed to the calling thread
            started.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, name="dashboard", daemon=True).start()
    ready.wait()
    if isinstance(started[0], BaseException):
        raise started[0]
    return started[0]


async def _serve(settings: Settings, apps: ManagedApps, host: str, port: int) -> None:
    running = await _start(settings, apps, host, port)
    click.echo(f"clickfan dashboard on {running.url} (Ctrl-C stops it)", err=True)
    logging.getLogger(__name__).info("serving on %s", running.url)
    if not (CHART_LIBRARY / "uPlot.iife.min.js").exists():
        click.echo(
            "no chart library: the page draws no charts until "
            f"`npm ci --prefix {STATIC}` (`make install` does it) installs uPlot",
            err=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await running.runner.cleanup()
    await asyncio.to_thread(running.reader.stop)
    await asyncio.to_thread(running.monitor.stop)


@click.command()
@click.option("--host", help="Address to serve on (default 127.0.0.1, CLICKFAN_DASHBOARD_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default 8080).")
@click.option(
    "--run",
    "run_pipeline",
    is_flag=True,
    help="Also run both workers and the producer, so the page can stop and start them.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=200.0,
    show_default=True,
    help="With --run: the producer's events per second (0: start it from the page).",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --run: where the workers and the producer log (default <home>/logs).",
)
def dashboard(
    host: str | None, port: int | None, run_pipeline: bool, rate: float, log_dir: Path | None
) -> None:
    """Serve a live page of the fan-out on 127.0.0.1: topic, groups, lag, sinks, actions.

    The page is updated every second by server-sent events. Stopping and starting
    services is offered only when this machine runs the native stack; workers and
    the producer only with --run (or under `clickfan demo`).
    """
    settings = load()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    apps = (
        ManagedApps.start_pipeline(settings, rate, log_dir or settings.home / "logs")
        if run_pipeline
        else ManagedApps([], None)
    )
    try:
        asyncio.run(
            _serve(settings, apps, host or settings.dashboard_host, port or settings.dashboard_port)
        )
    finally:
        apps.stop_all()
