"""`clickfan dlq`: the dead letters by group and reason, each one shown, re-driven, purged."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from clickfan import settings as settings_module
from clickfan.errors import ClickfanError
from clickfan.events import REASONS
from clickfan.settings import Settings
from clickfan.sinks.elasticsearch_sink import REJECTED_REASON
from clickfan.streams import dlq as dlqs

ALL_REASONS = (*REASONS, REJECTED_REASON)


def _settings(dlq_topic: str | None, bootstrap_servers: str | None) -> tuple[Settings, str]:
    settings = settings_module.load().with_overrides(dlq_topic=dlq_topic)
    return settings, bootstrap_servers or settings.bootstrap_servers


def _check_group(settings: Settings, group: str | None) -> None:
    known = (settings.es_group, settings.hdfs_group)
    if group is not None and group not in known:
        raise ClickfanError(f"unknown group {group!r}; the groups are {', '.join(known)}", 2)


def _check_reason(reason: str | None) -> None:
    if reason is not None and reason not in ALL_REASONS:
        raise ClickfanError(
            f"unknown reason {reason!r}; the reasons are {', '.join(ALL_REASONS)}", 2
        )


def _time(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return dlqs.parse_time(text)
    except ValueError as exc:
        raise ClickfanError(f"{option}: {exc}", 2) from None


def _connection(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--dlq-topic", help="Dead-letter topic. Default: click-logs.dlq.")(fn)
    return click.option(
        "--bootstrap-servers", help="Kafka brokers, host:port,... Default: the local stack."
    )(fn)


def _filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--group", help="Only this consumer group's dead letters."),
        click.option("--reason", help="Only this reason (e.g. not_json, es_rejected)."),
        click.option("--since", help="Dead-lettered at or after (ISO 8601, or 2h, 30m ago)."),
        click.option("--until", help="Dead-lettered before (ISO 8601, or an age)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _filter(
    settings: Settings, group: str | None, reason: str | None, since: str | None, until: str | None
) -> dlqs.Filter:
    _check_group(settings, group)
    _check_reason(reason)
    return dlqs.Filter(group, reason, _time("--since", since), _time("--until", until))


@click.group("dlq", invoke_without_command=True)
@_filters
@_connection
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def dlq(
    ctx: click.Context,
    group: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
    dlq_topic: str | None,
    bootstrap_servers: str | None,
    as_json: bool,
) -> None:
    """Dead letters by group and reason, with the oldest and newest of each.

    `clickfan dlq show` prints them, `redrive` sends a group's back to its sink after a
    fix, `purge` drops a group's older ones from its view.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings, bootstrap = _settings(dlq_topic, bootstrap_servers)
    wanted = _filter(settings, group, reason, since, until)
    summary = dlqs.summarize(dlqs.read(bootstrap, settings.dlq_topic, wanted))
    if as_json:
        click.echo(json.dumps(dlqs.summary_json(summary), indent=2))
        return
    if not summary:
        click.echo(f"no dead letters on {settings.dlq_topic}" + _narrowed(wanted))
        return
    click.echo(f"{'group':<28} {'reason':<20} {'count':>8}  {'oldest':<23} {'newest':<23}")
    for g, reasons in sorted(summary.items()):
        for r, t in sorted(reasons.items()):
            click.echo(
                f"{g:<28} {r:<20} {t.count:>8}  {dlqs.show_time(t.oldest_ms):<23} "
                f"{dlqs.show_time(t.newest_ms):<23}"
            )


def _narrowed(wanted: dlqs.Filter) -> str:
    return "" if wanted == dlqs.Filter() else " that match the filters"


@dlq.command("show")
@_filters
@_connection
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def show(
    group: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
    dlq_topic: str | None,
    bootstrap_servers: str | None,
    limit: int,
) -> None:
    """Print dead letters with their headers and a preview of the value (escaped)."""
    settings, bootstrap = _settings(dlq_topic, bootstrap_servers)
    wanted = _filter(settings, group, reason, since, until)
    shown = 0
    for letter in dlqs.read(bootstrap, settings.dlq_topic, wanted):
        if shown == limit:
            click.echo(f"... more; raise --limit (now {limit}) to see them")
            break
        shown += 1
        where = f"{settings.dlq_topic}[{letter.partition}]@{letter.offset}"
        click.echo(f"{where}  dead-lettered {dlqs.show_time(letter.timestamp_ms)}")
        if letter.problem is not None:
            click.echo(f"  MALFORMED HEADERS: {letter.problem} (never re-driven)")
        else:
            click.echo(
                f"  group {letter.group}  reason {letter.reason}  attempt {letter.attempt}  "
                f"from {letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
            )
            click.echo(f"  message: {dlqs.preview(letter.message.encode(), 300)}")
        for k, v in letter.headers:
            click.echo(f"  header {dlqs.preview(k.encode(), 80)}: {dlqs.preview(v, 120)}")
        click.echo(f"  key:   {dlqs.preview(letter.key, 80)}")
        click.echo(f"  value: {dlqs.preview(letter.value)}")
    if shown == 0:
        click.echo(f"no dead letters on {settings.dlq_topic}" + _narrowed(wanted))


def _round(
    reader: dlqs.DlqReader, group: str, marks: dict[int, tuple[int, int]]
) -> tuple[dict[int, int], dict[int, int], bool]:
    """(starts, ends, resuming) of the re-drive round of ``group``: an unfinished round is
    finished first; a new one starts where the last one ended (or the purge) and ends at
    the DLQ's end now."""
    partitions = sorted(marks)
    progress = reader.committed(dlqs.redrive_group(group), partitions)
    last = reader.committed(dlqs.round_group(group), partitions)
    purged = reader.committed(dlqs.purged_group(group), partitions)

    def start(p: int, at: int) -> int:
        return max(at, purged.get(p, 0), marks[p][0])

    # unfinished: a record of the round past the progress (not only transaction markers)
    if last and any(
        reader.first_record(p, start(p, progress.get(p, 0)), end) is not None
        for p, end in last.items()
    ):
        return {p: start(p, progress.get(p, 0)) for p in partitions}, last, True
    starts = {p: start(p, last.get(p, 0)) for p in partitions}
    return starts, {p: end for p, (_, end) in marks.items()}, False


@dlq.command("redrive")
@click.option("--group", required=True, help="Whose dead letters (es-indexer, hdfs-archiver).")
@click.option("--reason", help="Only this reason.")
@click.option("--since", help="Only dead-lettered at or after (ISO 8601, or 2h, 30m ago).")
@click.option("--dry-run", is_flag=True, help="Print what would be re-driven; change nothing.")
@_connection
@click.option(
    "--index-prefix",
    help="The indexer's daily indices <prefix>-YYYY.MM.DD, as its worker's "
    "(CLICKFAN_INDEX_PREFIX; default: clicks).",
)
@click.option(
    "--hdfs-root", help="The archiver's folder in HDFS, as its worker's (CLICKFAN_HDFS_ROOT)."
)
@click.option(
    "--format",
    "hdfs_format",
    type=click.Choice(("jsonl", "parquet")),
    help="The archiver's file format, as its worker's (CLICKFAN_HDFS_FORMAT).",
)
@click.option("--loglevel", type=click.Choice(("debug", "info", "warning", "error")))
def redrive(
    group: str,
    reason: str | None,
    since: str | None,
    dry_run: bool,
    dlq_topic: str | None,
    bootstrap_servers: str | None,
    index_prefix: str | None,
    hdfs_root: str | None,
    hdfs_format: str | None,
    loglevel: str | None,
) -> None:
    """Send GROUP's dead letters back to its sink (after a fix); resumes after a kill.

    The sink is the group's worker's: the same CLICKFAN_* settings, or the flags below
    when the worker was started with its own."""
    settings, bootstrap = _settings(dlq_topic, bootstrap_servers)
    settings = settings.with_overrides(
        worker_loglevel=loglevel,
        index_prefix=index_prefix,
        hdfs_root=hdfs_root,
        hdfs_format=hdfs_format,
    )
    wanted = _filter(settings, group, reason, since, None)
    reader = dlqs.DlqReader(bootstrap, settings.dlq_topic)
    try:
        marks = reader.ends()
        starts, ends, resuming = _round(reader, group, marks)
        progress = reader.committed(dlqs.redrive_group(group), sorted(marks))
        purged = reader.committed(dlqs.purged_group(group), sorted(marks))
        if dry_run:
            _dry_run(reader, settings, wanted, starts, ends)
            return
        if not resuming:
            reader.commit(dlqs.round_group(group), ends)
        # the re-drive's consumer group reads from here (back to the round's start after
        # the last round, whose run may have passed over the next round's records)
        if any(progress.get(p) != o for p, o in starts.items()):
            reader.commit(dlqs.redrive_group(group), starts)
        todo = {
            p: end for p, end in ends.items() if reader.first_record(p, starts[p], end) is not None
        }
    finally:
        reader.close()
    if not todo:
        click.echo(f"nothing to re-drive for {group} on {settings.dlq_topic}")
        return
    if resuming:
        click.echo(f"finishing the re-drive of {group} that was interrupted", err=True)
    _run(settings, bootstrap, group, wanted, purged, starts, todo)


def _dry_run(
    reader: dlqs.DlqReader,
    settings: Settings,
    wanted: dlqs.Filter,
    starts: dict[int, int],
    ends: dict[int, int],
) -> None:
    by_reason: dict[str, int] = {}
    malformed = 0
    for letter in reader.letters(starts, ends):
        if letter.problem is not None:
            malformed += 1
        elif wanted.matches(letter):
            assert letter.reason is not None
            by_reason[letter.reason] = by_reason.get(letter.reason, 0) + 1
    total = sum(by_reason.values())
    click.echo(f"would re-drive {total} dead letters of {wanted.group} from {settings.dlq_topic}")
    for r, n in sorted(by_reason.items()):
        click.echo(f"  {r:<20} {n:>8}")
    if malformed:
        click.echo(f"  {malformed} records with malformed headers would be skipped")


def _run(
    settings: Settings,
    bootstrap: str,
    group: str,
    wanted: dlqs.Filter,
    purged: dict[int, int],
    starts: dict[int, int],
    ends: dict[int, int],
) -> None:
    # Faust and the sinks are imported only when a re-drive really starts
    from clickfan.streams import faust_compat, redrive, runtime

    faust_compat.check_version()
    faust_compat.read_any_header_keys()
    runtime.setup_logging(settings.worker_loglevel, settings.sink_log_interval_s)
    runtime.check_topics(bootstrap, settings.dlq_topic)
    selection = redrive.Selection(wanted, purged, starts, ends)
    worker = redrive.create_worker(settings, bootstrap, group, selection)
    try:
        worker.run()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    reader = dlqs.DlqReader(bootstrap, settings.dlq_topic)
    try:
        progress = reader.committed(dlqs.redrive_group(group), sorted(ends))
        # the records of the round not committed (transaction markers are no records)
        left = sum(1 for _ in reader.letters({p: progress.get(p, 0) for p in ends}, ends))
    finally:
        reader.close()
    if left:
        raise ClickfanError(
            f"the re-drive of {group} stopped with {left} records of its round not "
            "committed (was the sink down?); run it again to finish the round",
            exit_code=1,
        )
    letters = worker.dead_letters
    # found on the DLQ already: failed again in a run killed before it committed
    failed = 0 if letters is None else letters.sent + letters.not_again
    click.echo(
        f"re-drove {selection.redriven - failed} dead letters of {group}, {failed} failed "
        f"again (dead-lettered again, attempt raised), {selection.skipped} skipped (other "
        f"groups, reasons or times), {selection.malformed} with malformed headers skipped"
    )


@dlq.command("purge")
@click.option("--group", required=True, help="Whose dead letters.")
@click.option("--before", required=True, help="Drop those dead-lettered before (ISO 8601, 2h).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_connection
def purge(
    group: str, before: str, yes: bool, dlq_topic: str | None, bootstrap_servers: str | None
) -> None:
    """Drop GROUP's dead letters before a time from its view (others' stay untouched).

    Nothing is deleted from the shared topic: GROUP's read position (consumer group
    GROUP.dlq-purged) moves, and `dlq`, `show` and `redrive` start there for GROUP.
    """
    settings, bootstrap = _settings(dlq_topic, bootstrap_servers)
    _check_group(settings, group)
    before_ms = _time("--before", before)
    assert before_ms is not None
    reader = dlqs.DlqReader(bootstrap, settings.dlq_topic)
    try:
        marks = reader.ends()
        partitions = sorted(marks)
        current = reader.committed(dlqs.purged_group(group), partitions)
        target = reader.offset_at(partitions, before_ms)
        moves = {p: o for p, o in target.items() if o > current.get(p, marks[p][0])}
        count = sum(
            1
            for letter in reader.letters(
                {p: max(current.get(p, 0), marks[p][0]) for p in moves}, moves
            )
            if letter.group == group
        )
        if count == 0:
            click.echo(f"no dead letters of {group} before {dlqs.show_time(before_ms)}")
            return
        if not yes:
            click.confirm(
                f"drop {count} dead letters of {group} dead-lettered before "
                f"{dlqs.show_time(before_ms)}?",
                abort=True,
            )
        reader.commit(dlqs.purged_group(group), moves)
    finally:
        reader.close()
    click.echo(f"purged {count} dead letters of {group}; other groups' are untouched")
