"""`clickfan demo`: the whole pipeline, live.

Starts the stack if needed, both workers and the producer as child processes
(each logging to <home>/logs/demo-*.log), and redraws a terminal view every
second: producer rate, each group's lag, the Elasticsearch document count,
the HDFS archive, dead letters. Ctrl-C stops the app processes cleanly; the
stack stays up for the next run (`clickfan down` stops it).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import requests
from confluent_kafka import KafkaException
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from clickfan.compose.native import stack
from clickfan.errors import ClickfanError
from clickfan.lagmon.cluster import KafkaCluster
from clickfan.lagmon.config import ClusterConfig
from clickfan.lagmon.reader import TopicLag, topic_lag
from clickfan.settings import Settings, load
from clickfan.sinks import clients
from clickfan.supervision import child_env

CLICKFAN = str(Path(sys.executable).with_name("clickfan"))
STOP_GRACE_S = 20.0
PLAIN_INTERVAL_S = 5.0


@dataclass
class AppProcess:
    name: str
    argv: list[str]
    log_file: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            # own session: the terminal's Ctrl-C reaches only the demo, which
            # then stops the children in order
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=child_env(),  # stops by itself should the demo be killed
            )

    @property
    def state(self) -> str:
        if self.proc is None:
            return "not started"
        code = self.proc.poll()
        return f"running (pid {self.proc.pid})" if code is None else f"exited ({code})"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Sample:
    at: float
    produced: int = 0
    lag: dict[str, TopicLag] = field(default_factory=dict)
    es_docs: int | None = None
    hdfs_files: int | None = None
    hdfs_bytes: int | None = None
    dead_letters: int = 0


class PipelineView:
    """Reads the pipeline's numbers from the real services."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = KafkaCluster(
            ClusterConfig("local", tuple(settings.bootstrap_servers.split(",")))
        )
        self.groups = (settings.es_group, settings.hdfs_group)
        self.previous: Sample | None = None
        self.es = clients.elasticsearch_http(clients.elasticsearch_connection(settings))
        self.webhdfs = clients.webhdfs_http(clients.webhdfs_connection(settings))

    def _records(self, topic: str) -> int:
        ends = self.kafka.log_end_offsets((topic, p) for p in self.kafka.partitions(topic))
        return sum(ends.values())

    def sample(self) -> Sample:
        s = Sample(at=time.monotonic())
        try:
            s.produced = self._records(self.settings.topic)
            s.dead_letters = self._records(self.settings.dlq_topic)
            for group in self.groups:
                # a partition without a commit counts with its whole log
                s.lag[group] = topic_lag(self.kafka, group, self.settings.topic)
        except (KafkaException, ClickfanError):
            pass  # e.g. the group coordinator still loading right after start-up
        try:
            index = f"{self.settings.index_prefix}-*"
            s.es_docs = self.es.get(f"/{index}/_count", timeout=2).json()["count"]
        except (requests.RequestException, KeyError, ValueError):
            pass
        try:
            summary = self.webhdfs.get(
                f"/webhdfs/v1{self.settings.hdfs_root}",
                params={"op": "GETCONTENTSUMMARY"},
                timeout=2,
            ).json()["ContentSummary"]
            s.hdfs_files, s.hdfs_bytes = summary["fileCount"], summary["length"]
        except (requests.RequestException, KeyError, ValueError):
            pass
        return s

    def render(self, s: Sample, apps: list[AppProcess]) -> Panel:
        rate = 0.0
        if self.previous and s.at > self.previous.at:
            rate = (s.produced - self.previous.produced) / (s.at - self.previous.at)
        self.previous = s
        numbers = Table.grid(padding=(0, 2))
        numbers.add_row(
            "producer", f"{rate:,.0f} events/s", f"{s.produced:,} records on {self.settings.topic}"
        )
        for group in self.groups:
            lag = s.lag.get(group)
            shown = "-" if lag is None else f"lag {lag.lag:,}"
            numbers.add_row(f"group {group}", shown, lag.note or "" if lag else "")
        numbers.add_row(
            "Elasticsearch", _n(s.es_docs, "documents"), f"{self.settings.index_prefix}-*"
        )
        numbers.add_row(
            "HDFS",
            _n(s.hdfs_files, "files"),
            f"{_n(s.hdfs_bytes, 'bytes')} under {self.settings.hdfs_root}",
        )
        numbers.add_row(
            "dead letters",
            f"{s.dead_letters:,}",
            f"on {self.settings.dlq_topic} (each group its own)",
        )
        procs = Table.grid(padding=(0, 2))
        for app in apps:
            procs.add_row(app.name, app.state, str(app.log_file))
        return Panel(
            Group(numbers, "", procs),
            title="clickfan demo",
            subtitle="Ctrl-C stops the app processes",
        )

    def line(self, s: Sample) -> str:
        """The same numbers as one plain line, for logs that interleave (docker compose up)."""
        rate = 0.0
        if self.previous and s.at > self.previous.at:
            rate = (s.produced - self.previous.produced) / (s.at - self.previous.at)
        self.previous = s
        lags = "  ".join(f"lag {g} {_lag(s.lag.get(g))}" for g in self.groups)
        return (
            f"produced {s.produced:,} ({rate:,.0f}/s)  {lags}  "
            f"es {_n(s.es_docs, 'docs')}  hdfs {_n(s.hdfs_files, 'files')}  "
            f"dead letters {s.dead_letters:,}"
        )


def _lag(lag: TopicLag | None) -> str:
    """A group's lag for the plain line: the number, and "(no commits yet)" if so."""
    if lag is None:
        return "-"
    return f"{lag.lag:,}" + (f" ({lag.note})" if lag.note else "")


def _n(value: int | None, unit: str) -> str:
    return "-" if value is None else f"{value:,} {unit}"


def app_processes(settings: Settings, rate: float) -> list[AppProcess]:
    logs = settings.home / "logs"
    return [
        AppProcess("es-indexer", [CLICKFAN, "worker", "es"], logs / "demo-es-indexer.log"),
        AppProcess("hdfs-archiver", [CLICKFAN, "worker", "hdfs"], logs / "demo-hdfs-archiver.log"),
        AppProcess(
            "producer",
            [CLICKFAN, "produce", "--rate", str(rate), "--bad-fraction", "0.01"],
            logs / "demo-producer.log",
        ),
    ]


def run(
    settings: Settings,
    rate: float,
    console: Console,
    duration_s: float | None = None,
    attach: bool = False,
    plain: bool = False,
) -> None:
    """Run (or, with attach, only watch) the pipeline until Ctrl-C or duration_s."""
    apps = [] if attach else app_processes(settings, rate)
    if not attach:
        stack.up(settings, console)
    view = PipelineView(settings)
    began = time.monotonic()
    board = None
    try:
        for app in apps:
            app.start()
        from clickfan.app.dashboard.commands import start_in_thread  # aiohttp only here

        try:
            board = start_in_thread(settings, apps, rate if apps else None)
            console.print(f"dashboard: {board.url}")
        except ClickfanError as exc:
            console.print(f"[yellow]no dashboard: {exc}[/]")
        if plain:
            while duration_s is None or time.monotonic() - began < duration_s:
                print(view.line(view.sample()), flush=True)
                time.sleep(PLAIN_INTERVAL_S)
        else:
            with Live(
                view.render(view.sample(), apps), console=console, refresh_per_second=2
            ) as live:
                while duration_s is None or time.monotonic() - began < duration_s:
                    time.sleep(1)
                    live.update(view.render(view.sample(), apps))
    except KeyboardInterrupt:
        pass
    finally:
        if board is not None:
            board.stop()
        if apps:
            with console.status("stopping the producer, then the workers ..."):
                for app in apps[::-1]:  # the producer first, so the workers can drain
                    app.stop()
            console.print(
                "Stopped the app processes; the stack is still up (`clickfan down` stops it)."
            )


@click.command()
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    default=200.0,
    show_default=True,
    help="Events per second from the producer.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=None,
    help="Stop after this many seconds (default: until Ctrl-C).",
)
@click.option(
    "--attach",
    is_flag=True,
    help="Only show the view of a pipeline that runs elsewhere (e.g. in Docker).",
)
@click.option(
    "--plain",
    is_flag=True,
    help="Plain status lines every 5 s instead of a redrawn panel (for logs that "
    "interleave, e.g. under `docker compose up`).",
)
def demo(rate: float, duration: float | None, attach: bool, plain: bool) -> None:
    """The whole pipeline, live: stack, both workers, the producer, and a refreshing view."""
    run(load(), rate, Console(), duration_s=duration, attach=attach, plain=plain)
