"""`clickfan monitor` and `clickfan lag`: the lag monitor's commands."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import requests
from confluent_kafka import KafkaException

from clickfan.errors import ClickfanError
from clickfan.lagmon import config as lagconfig
from clickfan.lagmon import httpserver
from clickfan.lagmon.cluster import KafkaCluster, TopicPartitionKey
from clickfan.lagmon.config import LOCAL, MonitorConfig
from clickfan.lagmon.evaluator import partition_status
from clickfan.lagmon.monitor import Monitor
from clickfan.lagmon.notifier import Notifier
from clickfan.lagmon.protocol import ConsumerOffset, Status
from clickfan.settings import load as load_settings

# --------------------------------------------------------------------------- config


def _config(config_path: str | None, extra_cluster: bool = False) -> MonitorConfig:
    settings = load_settings()
    path = config_path or settings.lag_config
    config = lagconfig.load(settings, Path(path) if path else None)
    extra = lagconfig.extra_cluster(settings)
    if extra_cluster and extra.name not in (c.name for c in config.clusters):
        config = dataclasses.replace(config, clusters=(*config.clusters, extra))
    return config


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
    config = _config(config_path, extra_cluster).with_overrides(
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
    try:
        asyncio.run(_serve(Monitor(config, Notifier(config.webhook_url))))
    except KeyboardInterrupt:
        pass
    click.echo("lag monitor stopped.", err=True)


async def _serve(mon: Monitor) -> None:
    config = mon.config
    app = httpserver.make_app(mon.storage, mon.evaluator, config)
    runner = await httpserver.start(app, config.host, config.port)
    mon.start()
    clusters = ", ".join(f"{c.name} ({c.bootstrap_servers})" for c in config.clusters)
    click.echo(
        f"lag monitor on http://{config.host}:{config.port}: Burrow API under /v3/kafka, "
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


@dataclass(frozen=True)
class PartitionRow:
    topic: str
    partition: int
    committed: int
    log_end: int
    status: Status | None

    @property
    def lag(self) -> int:
        return max(self.log_end - self.committed, 0)


@dataclass(frozen=True)
class GroupRow:
    cluster: str
    group: str
    status: Status | None
    partitions: tuple[PartitionRow, ...]

    @property
    def totallag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def records_lag_max(self) -> int:
        return max((p.lag for p in self.partitions), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "group": self.group,
            "status": _name(self.status),
            "totallag": self.totallag,
            "records_lag_max": self.records_lag_max,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed_offset": p.committed,
                    "log_end_offset": p.log_end,
                    "lag": p.lag,
                    "status": _name(p.status),
                }
                for p in self.partitions
            ],
        }


def _name(status: Status | None) -> str | None:
    return status.long_name if status is not None else None


# (group status, per-partition statuses) for a group, or None when unknown
Statuses = tuple[Status, dict[TopicPartitionKey, Status]] | None
StatusSource = Callable[[str, str], Statuses]


def _monitor_statuses(url: str) -> StatusSource | None:
    """Statuses from a running monitor's API, or None if no monitor answers at url."""
    try:
        if requests.get(f"{url}/burrow/admin", timeout=2).text != "GOOD":
            return None
    except requests.RequestException:
        return None

    def statuses(cluster: str, group: str) -> Statuses:
        try:
            response = requests.get(f"{url}/v3/kafka/{cluster}/consumer/{group}/lag", timeout=10)
        except requests.RequestException:
            return None
        if response.status_code != 200:
            return None  # the monitor does not know this cluster or group (yet)
        body = response.json()["status"]
        return Status[body["status"]], {
            (p["topic"], p["partition"]): Status[p["status"]] for p in body["partitions"]
        }

    return statuses


def _window_statuses(mon: Monitor) -> StatusSource:
    def statuses(cluster: str, group: str) -> Statuses:
        found = mon.evaluator.group_status(cluster, group)
        if found.status == Status.NOTFOUND:
            return None
        return found.status, {(p.topic, p.partition): p.status for p in found.partitions}

    return statuses


def read_lag(
    kafka: KafkaCluster, group: str | None, statuses: StatusSource | None
) -> list[GroupRow]:
    """Committed and log-end offsets read from Kafka now, with statuses if a source has them."""
    name = kafka.config.name
    try:
        groups = kafka.groups()
        if group is not None:
            if group not in groups:
                raise ClickfanError(f"consumer group {group!r} not found on cluster {name!r}")
            groups = [group]
        committed = {g: kafka.committed(g) for g in groups}
        ends = kafka.log_end_offsets({tp for offsets in committed.values() for tp in offsets})
    except KafkaException as exc:
        raise kafka.unreachable(exc) from None
    rows = []
    for g in groups:
        known = statuses(name, g) if statuses else None
        by_partition = known[1] if known else {}
        partitions = tuple(
            PartitionRow(t, p, offset, ends[(t, p)], by_partition.get((t, p)))
            for (t, p), offset in sorted(committed[g].items())
            if (t, p) in ends  # else its topic was deleted
        )
        rows.append(GroupRow(name, g, known[0] if known else None, partitions))
    return rows


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, *rows]
    )


def render(rows: list[GroupRow], one_group: bool) -> str:
    def shown(status: Status | None) -> str:
        return _name(status) or "-"

    if one_group:
        g = rows[0]
        head = (
            f"cluster {g.cluster}  group {g.group}  status {shown(g.status)}  "
            f"total lag {g.totallag}  records-lag-max {g.records_lag_max}"
        )
        body = [
            [
                p.topic,
                str(p.partition),
                str(p.committed),
                str(p.log_end),
                str(p.lag),
                shown(p.status),
            ]
            for p in g.partitions
        ]
        headers = ["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "STATUS"]
        return f"{head}\n{_table(headers, body)}"
    body = [
        [g.group, shown(g.status), str(g.totallag), str(g.records_lag_max), str(len(g.partitions))]
        for g in rows
    ]
    headers = ["GROUP", "STATUS", "TOTAL-LAG", "RECORDS-LAG-MAX", "PARTITIONS"]
    return _table(headers, body)


@lag.command()
@click.argument("group", required=False)
@click.option("--cluster", "cluster_name", default=LOCAL, show_default=True)
@click.option("--watch", is_flag=True, help="Refresh every interval until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="JSON (one document per refresh).")
@click.option("--interval", type=float, help="Seconds between refreshes with --watch.")
@click.option("--monitor-url", help="Where a running monitor answers (default from settings).")
@_config_option
def show(
    group: str | None,
    cluster_name: str,
    watch: bool,
    as_json: bool,
    interval: float | None,
    monitor_url: str | None,
    config_path: str | None,
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
    """
    settings = load_settings()
    config = _config(config_path).with_overrides(interval_s=interval)
    cluster = config.cluster(cluster_name)
    url = (monitor_url or f"http://{settings.monitor_host}:{settings.monitor_port}").rstrip("/")
    statuses = _monitor_statuses(url)
    local: Monitor | None = None
    if statuses is None and watch:
        local = Monitor(dataclasses.replace(config, clusters=(cluster,)))
        local.start()
        statuses = _window_statuses(local)
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


# --------------------------------------------------------------------------- evaluate

_WINDOW_KEYS = {"commits", "broker_offsets", "current_lag", "now_ms", "allowed_lag"}
_COMMIT_KEYS = {"offset", "timestamp_ms", "lag"}


def _bad(path: str, why: str) -> ClickfanError:
    return ClickfanError(f"invalid window: {path}: {why}", exit_code=2)


def _count(value: Any, path: str) -> int:
    """A non-negative integer (JSON true/false are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, f"expected a non-negative integer, got {json.dumps(value)}")
    if value < 0:
        raise _bad(path, f"must not be negative, got {value}")
    return value


def _object(value: Any, path: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path or "window", f"expected an object, got {json.dumps(value)}")
    prefix = f"{path}." if path else ""
    for key in sorted(set(value) - allowed):
        raise _bad(f"{prefix}{key}", "unknown field")
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
    Malformed input exits with code 2 and names the bad field.
    """
    text = click.get_text_stream("stdin").read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClickfanError(f"stdin is not JSON: {exc}", exit_code=2) from None
    if isinstance(doc, list):
        result: Any = [
            {"status": evaluate_window(w, f"[{i}]").long_name} for i, w in enumerate(doc)
        ]
    else:
        result = {"status": evaluate_window(doc).long_name}
    click.echo(json.dumps(result))
