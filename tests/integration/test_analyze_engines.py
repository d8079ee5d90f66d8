"""Both engines, and plain Python over the events read back from Kafka, give the same answer
to every question on a seeded run (and inside a time range), once both groups caught up.

One Spark session for the module: its start-up costs seconds on two busy cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clickfan.analysis.compare import read_lag
from clickfan.analysis.es_engine import ElasticsearchEngine
from clickfan.analysis.questions import QUESTIONS, TimeRange, reference, to_ms
from clickfan.analysis.spark_engine import SparkEngine
from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names, clickfan, names_env

EVENTS = 3000
BATCHES = 4
START = datetime(2026, 3, 1, 23, 58, 30, tzinfo=UTC)  # crosses an hour and a day


@pytest.fixture(scope="module")
def spark(stack: Settings) -> Iterator[SparkEngine]:
    engine = SparkEngine(stack)
    engine.start(say=lambda _text: None)
    yield engine
    engine.stop()


def _seeded_run(stack: Settings, names: Names, tmp_path: Path) -> list[dict]:
    env = ps.worker_env(stack, names)
    workers = [
        ps.WorkerProcess("es", env, tmp_path, "es"),
        ps.WorkerProcess("hdfs", env, tmp_path, "hdfs"),
    ]
    for w in workers:
        w.start()
    try:
        # unthrottled, event time runs at 1000 events/s: four batches 70 s apart give
        # several minutes, two hours and two days
        for batch in range(BATCHES):
            start = START + timedelta(seconds=70 * batch)
            ps.produce(stack, names, EVENTS // BATCHES, start_time=start, seed=1616 + batch)
        ps.wait_until(
            lambda: (
                ps.lag(stack, names.es_group, names.topic) == 0
                and ps.lag(stack, names.hdfs_group, names.topic) == 0
            ),
            timeout=300,
            what="both groups to commit every offset",
            describe=lambda: ps.logs(workers),
        )
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], ps.logs(workers)
    return [json.loads(r.value) for r in ps.read_topic(stack, names.topic)]


def test_every_question_same_answer_from_es_spark_and_the_events(
    stack: Settings, names: Names, tmp_path: Path, spark: SparkEngine
) -> None:
    events = _seeded_run(stack, names, tmp_path)
    minutes = sorted({e["event_time"][:16] for e in events})
    assert len(minutes) >= 3, f"the seeded events span too few minutes: {minutes}"
    settings = stack.with_overrides(
        index_prefix=names.index_prefix,
        hdfs_root=names.hdfs_root,
        topic=names.topic,
        es_group=names.es_group,
        hdfs_group=names.hdfs_group,
    )
    es = ElasticsearchEngine(settings)
    spark.root = names.hdfs_root
    lag = read_lag(settings, names.topic, (names.es_group, names.hdfs_group))
    assert lag.caught_up, lag.describe()

    # the whole run, and a window that cuts minutes off both ends
    inner = TimeRange(
        to_ms(datetime.fromisoformat(minutes[1] + ":00+00:00")),
        to_ms(datetime.fromisoformat(minutes[-1] + ":00+00:00")),
    )
    differences = []
    for window in (TimeRange(), inner):
        for q in QUESTIONS.values():
            expected = reference(q, events, window, limit=5)
            assert expected.rows, f"{q.name} {window.describe()}: no rows to compare"
            for engine in (es, spark):
                got = engine.answer(q, window, limit=5)
                if got.rows != expected.rows:
                    differences.append(
                        f"{engine.name} {q.name} {window.describe()}:\n"
                        f"  expected {expected.rows[:6]}\n  got      {got.rows[:6]}"
                    )
    assert not differences, "\n".join(differences)

    # the command line says so too (ES side only: one Spark session per module)
    env = names_env(names)
    done = clickfan("analyze", "funnel", "--engine", "es", "--json", env=env)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    rows = [[r["step"], r["sessions"]] for r in printed["engines"]["es"]["rows"]]
    assert rows == [list(r) for r in reference(QUESTIONS["funnel"], events, TimeRange(), 5).rows]
