"""The small framework every experiment runs in.

An experiment is a module with one :class:`Experiment` subclass: its claim
(quoted from the seed notes), how it tests it, and ``run(ctx)``, which makes
the claim happen on the stack and records :class:`Check` s (expected versus
measured), plots and notes on the :class:`Context`. The context owns the run's
names (topic, groups, index prefix, HDFS root: unique per run), the settings
(from ``CLICKFAN_*``, so a run goes to whatever stack the environment points
at), progress output and the clean-up that runs afterwards unless ``--keep``.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console

from clickfan import kafka_client
from clickfan.errors import ClickfanError
from clickfan.settings import Settings


@dataclass(frozen=True)
class RunNames:
    """Everything a run creates is named from one prefix, so runs never meet."""

    prefix: str
    topic: str
    es_group: str
    hdfs_group: str
    index_prefix: str
    hdfs_root: str

    @classmethod
    def for_run(cls, experiment: str, stamp: str) -> RunNames:
        prefix = f"exp-{experiment}-{stamp}-{uuid.uuid4().hex[:4]}".lower()
        return cls(
            prefix=prefix,
            topic=f"{prefix}.click-logs",
            es_group=f"{prefix}.es-indexer",
            hdfs_group=f"{prefix}.hdfs-archiver",
            index_prefix=f"{prefix}-clicks",
            hdfs_root=f"/experiments/{prefix}",
        )

    def group(self, role: str) -> str:
        return f"{self.prefix}.{role}"


@dataclass
class Check:
    """One expectation of the claim: what should happen, what did."""

    name: str
    expected: Any
    measured: Any
    ok: bool
    note: str = ""


@dataclass
class Plot:
    file: str
    caption: str


class ExperimentFailed(ClickfanError):
    """A run whose expectations did not all hold (the report says which)."""

    exit_code = 1


class ExperimentSkipped(ClickfanError):
    """This machine cannot run the experiment (a package, root): the message says why."""


class Context:
    def __init__(
        self,
        settings: Settings,
        experiment: str,
        out_dir: Path,
        events: int,
        console: Console,
        keep: bool = False,
    ) -> None:
        self.settings = settings
        self.experiment = experiment
        self.started = datetime.now(UTC)
        self.names = RunNames.for_run(experiment, self.started.strftime("%Y%m%d%H%M%S"))
        self.out_dir = out_dir
        self.events = events
        self.console = console
        self.keep = keep
        self.checks: list[Check] = []
        self.plots: list[Plot] = []
        self.notes: list[str] = []
        self.details: dict[str, Any] = {}  # extra measurements for report.json
        self.sections: list[tuple[str, str]] = []  # (title, markdown) for report.md
        self._cleanups: list[tuple[str, Callable[[], None]]] = []
        self._admin: AdminClient | None = None

    # ------------------------------------------------------------ resources
    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(
                {
                    **kafka_client.confluent(self.settings.bootstrap_servers),
                    "client.id": "clickfan-experiment",
                    "log_level": 0,
                }
            )
        return self._admin

    def on_cleanup(self, what: str, action: Callable[[], None]) -> None:
        """Run ``action`` after the experiment (last registered, first run)."""
        self._cleanups.append((what, action))

    def create_topic(
        self,
        name: str | None = None,
        partitions: int | None = None,
        replication: int | None = None,
        config: dict[str, str] | None = None,
    ) -> str:
        name = name or self.names.topic
        s = self.settings
        topic_config = {"min.insync.replicas": str(s.min_insync_replicas), **(config or {})}
        new = NewTopic(
            name,
            partitions or s.partitions,
            replication or s.replication_factor,
            config=topic_config,
        )
        try:
            self.admin.create_topics([new], request_timeout=30)[name].result()
        except KafkaException as exc:
            raise ClickfanError(f"creating topic {name} failed: {exc.args[0].str()}") from None
        self.on_cleanup(f"delete topic {name}", lambda: self._delete_topic(name))
        self.wait_for_topic(name, partitions or s.partitions)
        return name

    def wait_for_topic(self, name: str, partitions: int, timeout_s: float = 30) -> None:
        """Until every partition has a leader in the metadata (producers need it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            topic = self.admin.list_topics(name, timeout=10).topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                return
            time.sleep(0.3)
        raise ClickfanError(f"topic {name} has no leader for every partition after {timeout_s}s")

    def _delete_topic(self, name: str) -> None:
        self.admin.delete_topics([name], request_timeout=30)[name].result()

    def forget_groups(self, *groups: str) -> None:
        """Delete these consumer groups after the run."""

        def delete() -> None:
            futures = self.admin.delete_consumer_groups(list(groups), request_timeout=30)
            for future in futures.values():
                try:
                    future.result()
                except KafkaException as exc:
                    if exc.args[0].name() != "GROUP_ID_NOT_FOUND":
                        raise

        self.on_cleanup(f"delete groups {', '.join(groups)}", delete)

    def cleanup(self) -> list[str]:
        """Undo what the run created; returns what could not be undone."""
        problems = []
        while self._cleanups:
            what, action = self._cleanups.pop()
            try:
                action()
            except Exception as exc:  # clean-up goes on; the report lists it
                problems.append(f"{what}: {exc}")
        return problems

    # ------------------------------------------------------------ recording
    def check(self, name: str, expected: Any, measured: Any, ok: bool, note: str = "") -> bool:
        self.checks.append(Check(name, expected, measured, bool(ok), note))
        mark = "[green]ok[/]" if ok else "[red]FAILED[/]"
        self.console.print(f"  {mark} {name}: expected {expected}, measured {measured}")
        return bool(ok)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def section(self, title: str, markdown: str) -> None:
        self.sections.append((title, markdown))

    def plot_path(self, file: str, caption: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.plots.append(Plot(file, caption))
        return self.out_dir / file

    def step(self, text: str) -> Any:
        """``with ctx.step("producing"):`` shows a spinner while it runs."""
        self.console.print(f"[bold]>[/] {text}")
        return self.console.status(text)

    def progress(self, text: str) -> None:
        self.console.print(f"  {text}")


class Experiment:
    """Subclass per experiment; fill the class attributes and ``run``."""

    name: str = ""
    title: str = ""
    claim_ko: str = ""  # the seed notes' words
    claim: str = ""  # the same in English
    method: str = ""  # how the run tests it (markdown)
    default_events: int = 1000
    quick: bool = True  # finishes in under two minutes on the 2-core machine
    needs: tuple[str, ...] = ("kafka",)  # kafka | elasticsearch | hdfs | workers | kills

    def run(self, ctx: Context) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class Outcome:
    name: str
    ok: bool
    out_dir: Path
    duration_s: float
    report: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None  # why the machine could not run it


def run_experiment(
    experiment: Experiment,
    settings: Settings,
    out_root: Path,
    events: int | None,
    console: Console,
    keep: bool = False,
) -> Outcome:
    from clickfan.experiments.report import write_report

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out_root / f"{experiment.name}-{stamp}"
    ctx = Context(
        settings, experiment.name, out_dir, events or experiment.default_events, console, keep
    )
    console.rule(f"experiment {experiment.name}: {experiment.title}")
    console.print(f"names: {ctx.names.prefix}  events: {ctx.events}")
    began = time.monotonic()
    error = None
    skipped = None
    try:
        experiment.run(ctx)
    except ExperimentSkipped as exc:
        skipped = str(exc)
        ctx.note(f"skipped: {skipped}")
    except KeyboardInterrupt:
        error = "interrupted"
        raise
    except Exception as exc:
        # the run broke, not merely disproved: the report says where
        error = f"{type(exc).__name__}: {exc}"
        ctx.details["traceback"] = traceback.format_exc()
        console.print(f"[red]the run failed:[/] {error}")
    finally:
        if keep:
            ctx.note(
                f"--keep: the run's topic, groups, index and HDFS files are left in place "
                f"(prefix {ctx.names.prefix})"
            )
        else:
            with console.status("cleaning up"):
                for problem in ctx.cleanup():
                    ctx.note(f"clean-up: {problem}")
    duration = time.monotonic() - began
    if error is not None:
        ctx.checks.append(Check("the run completed", "no error", error, False))
    report = write_report(experiment, ctx, duration)
    if skipped is not None:
        console.print(f"[yellow]{experiment.name}: skipped[/] ({skipped})")
        return Outcome(experiment.name, True, out_dir, duration, report, skipped)
    ok = report["ok"]
    colour = "green" if ok else "red"
    verdict = "claim holds" if ok else "EXPECTATION FAILED"
    console.print(f"[{colour}]{experiment.name}: {verdict}[/] ({duration:.0f}s) -> {out_dir}")
    return Outcome(experiment.name, ok, out_dir, duration, report)
