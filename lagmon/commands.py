"""`clickfan monitor` and `clickfan lag`: the lag monitor's commands (click only).

The work is elsewhere: ``reader`` reads lag, ``client`` asks a running monitor
for statuses, ``render`` draws the tables, ``window`` checks and judges
`lag evaluate`'s input, ``monitor`` and ``httpserver`` are the monitor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from clickfan import kafka_client
from clickfan.lagmon import config as lagconfig
from clickfan.lagmon import httpserver
from clickfan.lagmon.client import monitor_statuses
from clickfan.lagmon.cluster import KafkaCluster
from clickfan.lagmon.config import LOCAL, MonitorConfig
from clickfan.lagmon.httpauth import HttpSecurity
from clickfan.lagmon.monitor import Monitor
from clickfan.lagmon.notifier import Notifier
from clickfan.lagmon.reader import StatusSource, read_lag, window_statuses
from clickfan.lagmon.render import render
from clickfan.lagmon.window import evaluate_input
from clickfan.settings import load as load_settings

# --------------------------------------------------------------------------- config


def _config(
    config_path: str | None, extra_cluster: bool = False, kafka_config: str | None = None
) -> MonitorConfig:
    # --kafka-config, CLICKFAN_KAFKA_CONFIG, or on a secure local stack the monitor's user
    settings = kafka_client.use(load_settings(), "monitor", kafka_config)
    path = config_path or settings.lag_config
    config = lagconfig.load(settings, Path(path) if path else None)
    extra = lagconfig.extra_cluster(settings)
    if extra_cluster and extra.name not in (c.name for c in config.clusters):
        config = dataclasses.replace(config, clusters=(*config.clusters, extra))
    return config


_kafka_config_option = click.option(
    "--kafka-config",
    type=click.Path(dir_okay=False),
    help="Kafka client properties (Java format: SASL, TLS) for every cluster watched. "
    "Default: CLICKFAN_KAFKA_CONFIG; on a secure local stack the monitor user's.",
)

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML file listing clusters and evaluation settings (default: CLICKFAN_LAG_CONFIG, "
    "else the local stack as cluster 'local').",
)

# --------------------------------------------------------------------------- monitor


@click.command()
@_config_option
@_kafka_config_option
@click.option("--host", help="Address to serve on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to serve on (default 8000).")
@click.option("--interval", type=float, help="Seconds between reads of broker offsets (default 5).")
@click.option("--window", type=int, help="Commits kept per partition (default 10).")
@click.option("--allowed-lag", type=int, help="A lag at or below this counts as caught up.")
@click.option("--minimum-complete", type=float, help="Share of a window filled before judging.")
@click.option("--webhook-url", help="POST a JSON notice here when a group's status changes.")
@click.option(
    "--extra-cluster",
    is_flag=True,
    help="Also watch the one-broker cluster of `clickfan up --extra-cluster` as 'extra'.",
)
def monitor(
    config_path: str | None,
    kafka_config: str | None,
    host: str | None,
    port: int | None,
    interval: float | None,
    window: int | None,
    allowed_lag: int | None,
    minimum_complete: float | None,
    webhook_url: str | None,
    extra_cluster: bool,
) -> None:
    """Watch every consumer group of every configured cluster, the way Burrow does.

    Each interval it reads the log-end offset of every partition; every offset
    commit is read as it happens from __consumer_offsets. Each partition keeps
    a window of its last commits and is judged OK, WARNING, STALL, STOP or
    REWIND by Burrow's rules; a group is as bad as its worst partition. Serves
    Burrow's v3 HTTP API (/v3/kafka/...) and Prometheus metrics (/metrics)
    until Ctrl-C, and logs every change of a group's status (and POSTs it to
    the webhook, if one is set).
    """
    config = _config(config_path, extra_cluster, kafka_config).with_overrides(
        host=host,
        port=port,
        interval_s=interval,
        window=window,
        allowed_lag=allowed_lag,
        minimum_complete=minimum_complete,
        webhook_url=webhook_url,
    )
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    security = HttpSecurity.of(load_settings(), "monitor")
    security.check_exposure(config.host)  # beyond 127.0.0.1 only with a token
    try:
        asyncio.run(_serve(Monitor(config, Notifier(config.webhook_url)), security))
    except KeyboardInterrupt:
        pass
    click.echo("lag monitor stopped.", err=True)


async def _serve(mon: Monitor, security: HttpSecurity) -> None:
    config = mon.config
    app = httpserver.make_app(mon.storage, mon.evaluator, config)
    runner = await httpserver.start(app, config.host, config.port, security)
    mon.start()
    clusters = ", ".join(f"{c.name} ({c.bootstrap_servers})" for c in config.clusters)
    click.echo(
        f"lag monitor on {security.scheme}://{config.host}:{config.port}"
        f"{' (token required)' if security.token else ''}: Burrow API under /v3/kafka, "
        f"Prometheus metrics on /metrics.\nclusters: {clusters}; offsets read every "
        f"{config.interval_s:g}s, window of {config.window} commits. Ctrl-C stops it.",
        err=True,
    )
    stop = asyncio.Event()
    # Ctrl-C ends asyncio.run; SIGTERM (a service manager's stop) ends it as cleanly.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        mon.stop()


# --------------------------------------------------------------------------- lag


class _LagGroup(click.Group):
    """`clickfan lag [GROUP] ...` is short for `clickfan lag show [GROUP] ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_LagGroup)
def lag() -> None:
    """Consumer lag with Burrow's statuses.

    \b
    clickfan lag [GROUP] [--cluster NAME] [--watch] [--json]
        (short for `clickfan lag show ...`; a group named like a
        subcommand needs the long form)
    clickfan lag evaluate < window.json
    """


@lag.command()
@click.argument("group", required=False)
@click.option("--cluster", "cluster_name", default=LOCAL, show_default=True)
@click.option("--watch", is_flag=True, help="Refresh every interval until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="JSON (one document per refresh).")
@click.option("--interval", type=float, help="Seconds between refreshes with --watch.")
@click.option("--monitor-url", help="Where a running monitor answers (default from settings).")
@_config_option
@_kafka_config_option
def show(
    group: str | None,
    cluster_name: str,
    watch: bool,
    as_json: bool,
    interval: float | None,
    monitor_url: str | None,
    config_path: str | None,
    kafka_config: str | None,
) -> None:
    """Lag per partition of GROUP, or one line per group without GROUP.

    Committed offset, log-end offset and lag are read from Kafka at once, as
    `kafka-consumer-groups --describe` reads them, and so agree with it; the
    group line adds total lag and records-lag-max (the largest partition lag).

    A status needs a window of commits over time, which one read cannot give.
    So the STATUS comes from a running `clickfan monitor` when one answers
    (--monitor-url); otherwise, with --watch, from a window this command
    builds while it runs (one interval or two before the first status); and
    otherwise it is shown as "-" (null in JSON).

    A partition that a member owns but has never committed is shown as
    kafka-consumer-groups shows it: COMMITTED "-" (null in JSON, with
    "note": "no commits yet"); its LAG is the whole log (log-end minus
    log-start), so that the group's total lag does not read 0.
    """
    settings = load_settings()
    config = _config(config_path, kafka_config=kafka_config).with_overrides(interval_s=interval)
    cluster = config.cluster(cluster_name)
    url = (monitor_url or f"http://{settings.monitor_host}:{settings.monitor_port}").rstrip("/")
    statuses = monitor_statuses(url)
    local: Monitor | None = None
    if statuses is None and watch:
        local = Monitor(dataclasses.replace(config, clusters=(cluster,)))
        local.start()
        statuses = window_statuses(local)
    try:
        _show(KafkaCluster(cluster), group, statuses, watch, as_json, config.interval_s)
        if statuses is None and not as_json:
            click.echo(
                f"status: no lag monitor answers at {url}; start `clickfan monitor`, "
                "or use --watch to judge a window built here.",
                err=True,
            )
    except KeyboardInterrupt:
        pass
    finally:
        if local is not None:
            local.stop()


def _show(
    kafka: KafkaCluster,
    group: str | None,
    statuses: StatusSource | None,
    watch: bool,
    as_json: bool,
    interval_s: float,
) -> None:
    while True:
        rows = read_lag(kafka, group, statuses)
        if as_json:
            doc: Any = rows[0].to_json() if group else [r.to_json() for r in rows]
            click.echo(json.dumps(doc))
        else:
            if watch and sys.stdout.isatty():
                click.clear()
            click.echo(render(rows, one_group=group is not None))
        if not watch:
            return
        time.sleep(interval_s)


@lag.command()
def evaluate() -> None:
    """Judge one partition's window, read as JSON on stdin, by Burrow's rules.

    \b
    Input (an array of these gives an array of results, in order):
      {"commits": [{"offset": 10, "timestamp_ms": 1700000000000, "lag": 5}, ...],
       "broker_offsets": [20, 18],   # recent log-end offsets, newest first
       "current_lag": 10, "now_ms": 1700000060000, "allowed_lag": 0}
    commits go oldest first; a commit's "lag" may be null (unknown).
    Output: {"status": "OK" | "WARNING" | "STALL" | "STOP" | "REWIND"}
    Malformed input (not UTF-8, not JSON, too deeply nested, a bad field)
    exits with code 2 and a one-line message naming what is wrong.
    """
    result = evaluate_input(click.get_binary_stream("stdin").read())
    click.echo(json.dumps(result))
