"""`clickfan analyze QUESTION --engine es|spark|both`: one question, answered live and in batch."""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from clickfan import settings as settings_module
from clickfan.analysis.compare import (
    AGREE,
    DISAGREE,
    difference,
    read_lag,
    verdict,
)
from clickfan.analysis.questions import (
    DEFAULT_LIMIT,
    ENGINES,
    QUESTIONS,
    Answer,
    BadInput,
    EngineDown,
    Question,
    TimeRange,
    question,
    time_range,
)
from clickfan.analysis.spark_engine import DEFAULT_DRIVER_MEMORY, DEFAULT_MASTER, parse_memory
from clickfan.settings import Settings

ENGINE_LABEL = {"es": "Elasticsearch (live)", "spark": "Spark over HDFS (batch)"}


def _help() -> str:
    lines = [
        "Answer QUESTION (or `all`) from Elasticsearch (live), from the HDFS archive with "
        "Spark (batch), or both, and say whether the two agree.",
        "",
        "\b",
        "Questions:",
    ]
    for q in QUESTIONS.values():
        lines.append(f"  {q.name}")
        lines += textwrap.wrap(q.definition, 76, initial_indent="    ", subsequent_indent="    ")
    lines += [
        "",
        "Counted once per event id and UTC day (as the daily indices hold events); times are "
        "event times in UTC, to the millisecond; --since/--until select since <= time < until "
        "and take an ISO 8601 time (UTC without a zone) or an age (90s, 15m, 2h, 7d). URLs "
        "longer than 2048 UTF-16 units are not indexed by Elasticsearch and not counted.",
        "",
        "With --engine both the answers must agree once both consumer groups have committed "
        "every record; while one is behind, each group's lag is shown instead. An engine "
        "whose service is down is named, and the other answers alone.",
        "",
        "Exit 0: answered (and, with both, agreed or behind); 1: the engines disagree although "
        "both groups caught up, or no engine could answer; 2: bad input.",
    ]
    return "\n".join(lines)


class Run:
    """The engines one invocation uses; Spark is started once for every question."""

    def __init__(
        self,
        settings: Settings,
        which: str,
        master: str = DEFAULT_MASTER,
        memory: str = DEFAULT_DRIVER_MEMORY,
        es: Any = None,
        spark: Any = None,
    ) -> None:
        """Engines given here are used as they are (a test shares one Spark session)."""
        self.settings = settings
        self.which = which
        self.down: dict[str, str] = {}
        self.es: Any = es
        self.spark: Any = spark
        if which in ("es", "both") and es is None:
            from clickfan.analysis.es_engine import ElasticsearchEngine

            self.es = ElasticsearchEngine(settings)
        if which in ("spark", "both") and spark is None:
            from clickfan.analysis.spark_engine import SparkEngine

            self.spark = SparkEngine(settings, master=master, driver_memory=memory)

    def ask(self, engine: Any, q: Question, window: TimeRange, limit: int) -> Answer | None:
        if engine.name in self.down:
            return None
        try:
            return engine.answer(q, window, limit)
        except EngineDown as exc:
            self.down[engine.name] = str(exc)
            return None

    def close(self) -> None:
        if self.spark is not None:
            self.spark.stop()


def answer_one(run: Run, q: Question, window: TimeRange, limit: int) -> dict[str, Any]:
    """One question's result, as --json prints it."""
    s = run.settings
    groups = (s.es_group, s.hdfs_group)
    before = read_lag(s, s.topic, groups) if run.which == "both" else None
    answers = {e.name: run.ask(e, q, window, limit) for e in (run.es, run.spark) if e is not None}
    result: dict[str, Any] = {
        "question": q.name,
        "definition": q.definition,
        "range": window.to_json(),
        "engines": {
            name: (a.to_json() if a is not None else {"error": run.down[name]})
            for name, a in answers.items()
        },
    }
    answered = [name for name, a in answers.items() if a is not None]
    if run.which != "both":
        result["verdict"] = "answered" if answered else "no answer"
        return result
    if len(answered) < 2:
        result["verdict"] = f"only {answered[0]}" if answered else "no answer"
        return result
    after = read_lag(s, s.topic, groups)
    assert before is not None
    es_answer, spark_answer = answers["es"], answers["spark"]
    assert es_answer is not None and spark_answer is not None
    result["verdict"] = verdict(es_answer, spark_answer, before, after)
    result["lag"] = after.to_json()
    diff = difference(es_answer, spark_answer)
    result["only_in_es"] = [list(r) for r in diff.only_in_a]
    result["only_in_spark"] = [list(r) for r in diff.only_in_b]
    result["lag_text"] = after.describe()
    return result


def _table(q: Question, rows: list[list[Any]] | list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in q.columns:
        table.add_column(column, justify="right" if column in ("events", "sessions") else "left")
    for row in rows:
        values = row.values() if isinstance(row, dict) else row
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in values))
    return table


def show(console: Console, result: dict[str, Any]) -> None:
    q = QUESTIONS[result["question"]]
    window = result["range"]
    if window["since"] is None and window["until"] is None:
        console.rule(f"{q.name}, every event")
    else:
        console.rule(f"{q.name}, {window['since'] or '-'} .. {window['until'] or '-'}")
    engines = result["engines"]
    for name, e in engines.items():
        if "error" in e:
            console.print(f"[red]{ENGINE_LABEL[name]}: no answer[/]: {e['error']}", soft_wrap=True)
    ok = {name: e for name, e in engines.items() if "error" not in e}
    verdict_ = result["verdict"]
    if verdict_ == AGREE:
        e = next(iter(ok.values()))
        console.print(_table(q, e["rows"], "both engines"))
    else:
        for name, e in ok.items():
            console.print(_table(q, e["rows"], ENGINE_LABEL[name]))
    for name, e in ok.items():
        for note in e["notes"]:
            console.print(f"[yellow]{ENGINE_LABEL[name]}[/]: {note}")
    timing = ", ".join(f"{name} {e['seconds']:.2f} s" for name, e in ok.items())
    if verdict_ == AGREE:
        console.print(f"[green]the engines agree[/] ({timing})")
    elif verdict_ == DISAGREE:
        console.print(
            f"[red]the engines DISAGREE although both groups caught up[/] ({timing}): "
            f"{len(result['only_in_es'])} rows only in Elasticsearch's answer, "
            f"{len(result['only_in_spark'])} only in Spark's"
        )
    elif verdict_ in ("behind", "lag unknown"):
        console.print(
            f"[yellow]not comparable yet[/]: the answers differ while a group is behind "
            f"({result['lag_text']}); ask again once both lags are 0 ({timing})",
            soft_wrap=True,
        )
    elif verdict_.startswith("only "):
        console.print(f"[yellow]{ENGINE_LABEL[verdict_[5:]]} is the only one that answered[/]")
    elif timing:
        console.print(f"({timing})")


@click.command("analyze", help=_help())
@click.argument("question_name", metavar="QUESTION")
@click.option(
    "--engine",
    "engine_name",
    default="es",
    show_default=True,
    help=f"One of {', '.join(ENGINES)}.",
)
@click.option("--since", help="From this event time on (ISO 8601 or an age such as 15m).")
@click.option("--until", help="Before this event time (ISO 8601 or an age such as 15m).")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Rows of the top-N questions.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--index-prefix", help="Daily indices <prefix>-YYYY.MM.DD (CLICKFAN_INDEX_PREFIX).")
@click.option("--hdfs-root", help="The archive's folder (CLICKFAN_HDFS_ROOT).")
@click.option("--topic", help="The topic whose groups' lag is compared (CLICKFAN_TOPIC).")
@click.option("--es-group", help="The indexer's consumer group (CLICKFAN_ES_GROUP).")
@click.option("--hdfs-group", help="The archiver's consumer group (CLICKFAN_HDFS_GROUP).")
@click.option("--spark-master", default=DEFAULT_MASTER, show_default=True)
@click.option("--spark-memory", default=DEFAULT_DRIVER_MEMORY, show_default=True)
def analyze(
    question_name: str,
    engine_name: str,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
    index_prefix: str | None,
    hdfs_root: str | None,
    topic: str | None,
    es_group: str | None,
    hdfs_group: str | None,
    spark_master: str,
    spark_memory: str,
) -> None:
    # every refusal before anything starts: exit 2 with the choices
    chosen = list(QUESTIONS.values()) if question_name == "all" else [question(question_name)]
    if engine_name not in ENGINES:
        raise BadInput(f"unknown engine {engine_name!r}; choose one of: {', '.join(ENGINES)}")
    window = time_range(since, until)
    try:
        parse_memory(spark_memory)
    except EngineDown as exc:
        raise BadInput(str(exc)) from None
    settings = settings_module.load().with_overrides(
        index_prefix=index_prefix,
        hdfs_root=hdfs_root,
        topic=topic,
        es_group=es_group,
        hdfs_group=hdfs_group,
    )
    console = Console(stderr=True) if as_json else Console()
    progress = Console(stderr=True)
    run = Run(settings, engine_name, spark_master, spark_memory)
    results = []
    try:
        for q in chosen:
            if run.spark is not None and run.spark.spark is None and "spark" not in run.down:
                try:
                    # the one line (or one line why not) before the first Spark question
                    from clickfan.analysis.spark_engine import namenode_reachable

                    if namenode_reachable(settings):
                        run.spark.start(say=lambda text: progress.print(text, style="dim"))
                except EngineDown as exc:
                    run.down["spark"] = str(exc)
            result = answer_one(run, q, window, limit)
            results.append(result)
            if not as_json:
                show(console, result)
    finally:
        run.close()
    if as_json:
        click.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    failed = [r for r in results if r["verdict"] in (DISAGREE, "no answer")]
    if failed:
        for r in failed:
            if r["verdict"] == "no answer" and as_json:
                for name, e in r["engines"].items():
                    progress.print(
                        f"clickfan: {ENGINE_LABEL[name]}: {e['error']}", style="red", soft_wrap=True
                    )
        sys.stdout.flush()
        raise SystemExit(1)
