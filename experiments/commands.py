"""`clickfan experiment list|all|NAME`: run the seed notes' claims on the stack."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from clickfan import settings as settings_module
from clickfan.errors import ClickfanError
from clickfan.experiments.framework import ExperimentFailed, Outcome, run_experiment
from clickfan.experiments.registry import available


def _list(console: Console) -> None:
    table = Table(title="experiments")
    for column in ("name", "what it shows", "default events", "under 2 min", "needs"):
        table.add_column(column)
    for name, exp in available().items():
        table.add_row(
            name,
            exp.title,
            str(exp.default_events or "- (fixed rate)"),
            "yes" if exp.quick else "no",
            ", ".join(exp.needs),
        )
    console.print(table)


def _summary(outcomes: list[Outcome]) -> Table:
    table = Table(title="experiment results")
    for column in ("experiment", "verdict", "seconds", "report"):
        table.add_column(column)
    for o in outcomes:
        verdict = "[green]ok[/]" if o.ok else "[red]FAILED[/]"
        if o.skipped is not None:
            verdict = f"[yellow]skipped[/] ({o.skipped})"
        table.add_row(o.name, verdict, f"{o.duration_s:.0f}", str(o.out_dir / "report.md"))
    return table


@click.command("experiment")
@click.argument("name")
@click.option(
    "--events",
    type=click.IntRange(min=10),
    help="Events to produce (each experiment has its own default; see `clickfan experiment list`).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the report folders. Default: reports (CLICKFAN_EXPERIMENT_OUT).",
)
@click.option("--json", "as_json", is_flag=True, help="Print report.json (a list with `all`).")
@click.option("--keep", is_flag=True, help="Leave the run's topic, groups, index and HDFS files.")
def experiment(name: str, events: int | None, out: Path | None, as_json: bool, keep: bool) -> None:
    """Run experiment NAME, `all` of them, or `list` them.

    Each run writes report.md, report.json and plots to OUT/NAME-TIMESTAMP/ and
    exits non-zero when an expectation failed.

    fanout stops and starts Elasticsearch, acks kills and restarts Kafka brokers
    (needs "kills" in `clickfan experiment list`): run them on a stack nobody
    else is using at the time.
    """
    # progress goes to stderr so that --json keeps stdout clean
    console = Console(stderr=True)
    if name == "list":
        _list(Console())
        return
    settings = settings_module.load()
    experiments = available()
    if name == "all":
        chosen = list(experiments.values())
    elif name in experiments:
        chosen = [experiments[name]]
    else:
        raise ClickfanError(
            f"no experiment named {name!r}; choose one of: {', '.join(experiments)}, all, list",
            exit_code=2,
        )
    out_root = out or Path(settings.experiment_out)
    outcomes = []
    for exp in chosen:
        outcomes.append(run_experiment(exp, settings, out_root, events, console, keep))
    if as_json:
        reports = [o.report for o in outcomes]
        click.echo(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2, default=str))
    if len(outcomes) > 1:
        console.print(_summary(outcomes))
    failed = [o.name for o in outcomes if not o.ok]
    if failed:
        sys.stderr.flush()
        raise ExperimentFailed(
            f"expectation failed in: {', '.join(failed)} (see each report.md for the numbers)"
        )
