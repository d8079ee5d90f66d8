"""`clickfan produce`: generated click events into Kafka, with progress and a summary."""

from __future__ import annotations

import json
import signal
from datetime import datetime
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from clickfan import kafka_client
from clickfan import settings as settings_module
from clickfan.errors import ClickfanError
from clickfan.generators.producer import (
    ACKS,
    COMPRESSIONS,
    KEY_MODES,
    MAX_RATE,
    ClickProducer,
    ProduceSummary,
    StopSignal,
    check_rate,
)
from clickfan.generators.producer import Progress as ProduceProgress
from clickfan.settings import Settings


def _help(text: str, setting: str) -> str:
    """Help text for a flag whose default is a setting."""
    default = getattr(Settings(), setting)
    return f"{text} Default: {default} (CLICKFAN_{setting.upper()}).".lstrip()


class _Timestamp(click.ParamType):
    name = "ISO-8601 time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 time such as 2025-01-31T12:00:00Z", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"{value!r} has no time zone; add Z for UTC", param, ctx)
        return parsed


class _Rate(click.ParamType):
    """Events per second: 0 (unlimited) up to MAX_RATE; nan and inf are refused."""

    name = "EVENTS/S"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            rate = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        try:
            check_rate(rate)
        except ClickfanError as exc:
            self.fail(str(exc), param, ctx)
        return rate


# signal -> how the summary and the messages name it
_STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


@click.command("produce")
@click.option(
    "--rate",
    type=_Rate(),
    help=_help(
        "Events per second, spread evenly; 0 = as fast as Kafka takes them; at most "
        f"{MAX_RATE:,.0f}.",
        "produce_rate",
    ),
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many records.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds. Without --count or --duration: until Ctrl-C.",
)
@click.option("--acks", type=click.Choice(ACKS), help=_help("", "produce_acks"))
@click.option(
    "--idempotence/--no-idempotence",
    default=None,
    help=_help(
        "Idempotent producer (needs --acks all; switched off otherwise).", "produce_idempotence"
    ),
)
@click.option(
    "--compression",
    type=click.Choice(COMPRESSIONS),
    help=_help("", "produce_compression"),
)
@click.option(
    "--keys",
    type=click.Choice(KEY_MODES),
    help=_help(
        "user: key = user_id, Kafka's murmur2 placement; none: null keys, sticky "
        "partitions; vip: VIP users on reserved partitions.",
        "produce_keys",
    ),
)
@click.option(
    "--vip-partitions",
    type=click.IntRange(min=1),
    help="Partitions reserved for VIP users with --keys vip (overrides --vip-share).",
)
@click.option(
    "--vip-share",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help=_help("Share of the partitions reserved for VIP users with --keys vip.", "vip_share"),
)
@click.option(
    "--bad-fraction",
    type=click.FloatRange(0, 1),
    help=_help(
        "Share of malformed records mixed in (not JSON, wrong types, missing fields, "
        "invalid UTF-8, empty, oversized).",
        "bad_fraction",
    ),
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help="Seed for reproducible events (with the same --start-time). Default: random, "
    "printed in the summary.",
)
@click.option(
    "--start-time",
    type=_Timestamp(),
    help="Event time of the first events, e.g. 2025-01-31T12:00:00Z. Default: now.",
)
@click.option("--topic", help=_help("", "topic"))
@click.option(
    "--bootstrap-servers",
    help="Kafka brokers, host:port,... Default: the local stack (CLICKFAN_HOST, "
    "CLICKFAN_KAFKA_PORTS).",
)
@click.option(
    "--kafka-config",
    type=click.Path(dir_okay=False),
    help="Kafka client properties (Java format: SASL, TLS). Default: CLICKFAN_KAFKA_CONFIG; "
    "on a secure local stack the producer user's.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
def produce(
    ctx: click.Context,
    rate: float | None,
    count: int | None,
    duration: float | None,
    acks: str | None,
    idempotence: bool | None,
    compression: str | None,
    keys: str | None,
    vip_partitions: int | None,
    vip_share: float | None,
    bad_fraction: float | None,
    seed: int | None,
    start_time: datetime | None,
    topic: str | None,
    bootstrap_servers: str | None,
    kafka_config: str | None,
    as_json: bool,
) -> None:
    """Produce synthetic click events to the click-log topic.

    Every record is accounted for: the summary gives sent, acknowledged and
    failed (per error code). Ctrl-C or SIGTERM (a service manager's or
    Docker's stop) stops, waits for the last deliveries and prints the
    summary; a second one stops waiting. Exits 1 if any record failed.
    """
    settings = settings_module.load().with_overrides(
        produce_rate=rate,
        produce_acks=acks,
        produce_idempotence=idempotence,
        produce_compression=compression,
        produce_keys=keys,
        vip_partitions=vip_partitions,
        vip_share=vip_share,
        bad_fraction=bad_fraction,
        produce_seed=seed,
        topic=topic,
    )
    settings = kafka_client.use(settings, "producer", kafka_config)
    err = Console(stderr=True)
    producer = ClickProducer(settings, bootstrap_servers=bootstrap_servers)
    for note in producer.notes:
        err.print(f"[yellow]note:[/] {note}")

    stop = StopSignal()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = _STOP_SIGNALS[signal.Signals(signum)]
        asked = stop.request(name)
        if asked == 1:
            err.print(
                f"[yellow]stopping ({name}): waiting for the last deliveries "
                f"({name} again: stop waiting)"
            )
        elif asked == 2:
            err.print("[yellow]no longer waiting for deliveries")
        else:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        summary = _run_with_progress(producer, err, count, duration, start_time, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
    else:
        Console().print(_summary_table(summary))
    for note in summary.notes:
        err.print(f"[yellow]note:[/] {note}")
    if not summary.ok:
        failures = ", ".join(
            f"{code} x{n} ({summary.error_messages.get(code, '')})"
            for code, n in sorted(summary.failed_by_error.items())
        )
        err.print(
            f"[bold red]FAILED: {summary.failed + summary.pending} of {summary.sent} records were "
            f"not acknowledged by Kafka[/]: {failures or 'no delivery report'}"
        )
        ctx.exit(1)


def _run_with_progress(
    producer: ClickProducer,
    console: Console,
    count: int | None,
    duration: float | None,
    start_time: datetime | None,
    stop: StopSignal,
) -> ProduceSummary:
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("producing", total=count, stats="")

        def show(p: ProduceProgress) -> None:
            rate = p.acknowledged / p.elapsed_s if p.elapsed_s > 0 else 0.0
            bar.update(
                task,
                completed=p.sent,
                description="flushing" if p.flushing else "producing",
                stats=f"sent {p.sent:,}  acked {p.acknowledged:,}  failed {p.failed:,}  "
                f"{rate:,.0f}/s",
            )

        return producer.run(
            count=count, duration_s=duration, start_time=start_time, progress=show, stop=stop
        )


def _summary_table(summary: ProduceSummary) -> Table:
    table = Table(title=f"produced to {summary.topic}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("sent", f"{summary.sent:,}"),
        ("acknowledged", f"{summary.acknowledged:,}"),
        ("failed", f"[red]{summary.failed:,}[/]" if summary.failed else "0"),
    ]
    rows += [(f"  {code}", f"{n:,}") for code, n in sorted(summary.failed_by_error.items())]
    if summary.pending:
        rows.append(("no report", f"[red]{summary.pending:,}[/]"))
    if summary.bad_by_kind:
        bad = ", ".join(f"{kind} {n:,}" for kind, n in sorted(summary.bad_by_kind.items()))
        rows.append(("bad records", bad))
    rows += [
        ("elapsed", f"{summary.elapsed_s:.2f} s"),
        ("rate", f"{summary.rate:,.0f} events/s acknowledged"),
        ("brokers", summary.bootstrap_servers),
        ("partitions", str(summary.partitions)),
        (
            "producer",
            f"acks={summary.acks} idempotence={'on' if summary.idempotence else 'off'} "
            f"compression={summary.compression} keys={summary.keys}",
        ),
        ("seed / start", f"{summary.seed} / {summary.start_time}"),
    ]
    if summary.client_errors:
        rows.append(
            ("client errors", ", ".join(f"{c} x{n}" for c, n in summary.client_errors.items()))
        )
    if summary.interrupted:
        rows.append(("stopped", f"by {summary.stopped_by}"))
    for name, value in rows:
        table.add_row(name, value)
    return table
