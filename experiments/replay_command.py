"""`clickfan replay GROUP --to ...|--shift N`: move a consumer group's offsets."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from clickfan import settings as settings_module
from clickfan.experiments.offsets import (
    GroupOffsets,
    PartitionReset,
    Target,
    parse_target,
    plan_json,
)


def reset_table(group: str, target: Target, plan: list[PartitionReset], dry_run: bool) -> Table:
    verb = "would be reset (dry run)" if dry_run else "reset"
    table = Table(title=f"group {group}: {target.describe()} — {verb}")
    for column in ("topic", "partition", "current offset", "new offset", "log start", "log end"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for r in plan:
        table.add_row(
            r.topic,
            str(r.partition),
            "-" if r.current is None else str(r.current),
            str(r.new),
            str(r.log_start),
            str(r.log_end),
        )
    return table


@click.command("replay")
@click.argument("group")
@click.option(
    "--to",
    "to",
    metavar="earliest|latest|DATETIME|OFFSET",
    help="Reset to the log start, the log end, the first record at or after an ISO-8601 "
    "time (local time without a zone), or an offset (clamped to each partition's log).",
)
@click.option("--shift", type=int, help="Move each committed offset by N (negative: back).")
@click.option(
    "--topic",
    help="Only this topic (all its partitions). Default: every topic "
    "the group has committed offsets for.",
)
@click.option("--dry-run", is_flag=True, help="Show the new offsets without changing them.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--bootstrap-servers", help="Kafka brokers. Default: the local stack's.")
def replay(
    group: str,
    to: str | None,
    shift: int | None,
    topic: str | None,
    dry_run: bool,
    as_json: bool,
    bootstrap_servers: str | None,
) -> None:
    """Reset GROUP's offsets, as kafka-consumer-groups --reset-offsets --execute does.

    Refused (exit code 3) while the group has active members: stop its consumers
    first. The group's consumers re-read from the new offsets when they start.
    """
    target = parse_target(to, shift)
    settings = settings_module.load()
    offsets = GroupOffsets(bootstrap_servers or settings.bootstrap_servers)
    plan = offsets.reset(group, target, topic=topic, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(plan_json(group, target, plan, dry_run), indent=2))
        return
    console = Console()
    console.print(reset_table(group, target, plan, dry_run))
    if dry_run:
        console.print("Dry run: nothing changed. Run again without --dry-run to apply.")
