"""Both engines, and plain Python over the events read back from Kafka, give the same answer
to every question on a seeded run (and inside a time range), once both groups caught up.

One Spark session for the module: its start-up costs seconds on two busy cores. Its JVM
ends with the module, so later tests do not share the cores with an idle one.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from clickfan.analysis.commands import Run, answer_one
from clickfan.analysis.compare import AGREE, BEHIND, read_lag
from clickfan.analysis.es_engine import ElasticsearchEngine
from clickfan.analysis.questions import QUESTIONS, TimeRange, reference, to_ms
from clickfan.analysis.rebuild import rebuild_index
from clickfan.analysis.spark_engine import SparkEngine
from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names, clickfan, names_env

EVENTS = 3000
BATCHES = 4
START = datetime(2026, 3, 1, 23, 58, 30, tzinfo=UTC)  # crosses an hour and a day


def _spark_jvms() -> list[int]:
    """This process's children running Spark (pyspark starts its JVM as a direct child)."""
    jvms = []
    for child in psutil.Process().children():
        try:
            if "org.apache.spark.deploy.SparkSubmit" in child.cmdline():
                jvms.append(child.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # gone
    return jvms


@pytest.fixture(scope="module")
def spark(stack: Settings) -> Iterator[SparkEngine]:
    engine = SparkEngine(stack)
    engine.start(say=lambda _text: None)
    assert _spark_jvms() == [engine.jvm_pid]
    yield engine
    engine.stop()
    assert _spark_jvms() == [], "the JVM outlived SparkEngine.stop()"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _caught_up(stack: Settings, group: str, topic: str, workers: list) -> None:
    ps.wait_until(
        lambda: ps.lag(stack, group, topic) == 0,
        timeout=300,
        what=f"{group} to commit every offset",
        describe=lambda: ps.logs(workers),
    )


def test_every_question_same_answer_from_es_spark_and_the_events(
    stack: Settings, names: Names, tmp_path: Path, spark: SparkEngine
) -> None:
    settings = stack.with_overrides(
        index_prefix=names.index_prefix,
        hdfs_root=names.hdfs_root,
        topic=names.topic,
        es_group=names.es_group,
        hdfs_group=names.hdfs_group,
    )
    spark.root = names.hdfs_root
    env = ps.worker_env(stack, names)
    es_worker = ps.WorkerProcess("es", env, tmp_path, "es")
    hdfs_worker = ps.WorkerProcess("hdfs", env, tmp_path, "hdfs")
    workers = [es_worker, hdfs_worker]
    minute = QUESTIONS["events-per-minute"]
    try:
        # only the archiver runs at first, writing JSON Lines for the first half and Parquet
        # for the second: one archive, both formats in the same hour folders
        for batch in range(BATCHES):
            if batch == BATCHES // 2:
                _caught_up(stack, names.hdfs_group, names.topic, workers)
                # Spark keeps the events it read; the files archived from now on must
                # still be read (checked below: its answers count every event)
                half = [json.loads(r.value) for r in ps.read_topic(stack, names.topic)]
                got = spark.answer(minute, TimeRange(), 5)
                assert got.rows == reference(minute, half, TimeRange(), 5).rows
                assert hdfs_worker.stop() == 0, ps.logs(workers)
                hdfs_worker = ps.WorkerProcess(
                    "hdfs", {**env, "CLICKFAN_HDFS_FORMAT": "parquet"}, tmp_path, "hdfs-parquet"
                )
                workers = [es_worker, hdfs_worker]
            if not hdfs_worker.running:
                hdfs_worker.start()
            # unthrottled, event time runs at 1000 events/s: batches 70 s apart give
            # several minutes, two hours and two days
            start = START + timedelta(seconds=70 * batch)
            ps.produce(stack, names, EVENTS // BATCHES, start_time=start, seed=1616 + batch)
        _caught_up(stack, names.hdfs_group, names.topic, workers)
        formats = {f.path.rsplit(".", 1)[1] for f in ps.read_archive(stack, names.hdfs_root)}
        assert formats == {"jsonl", "parquet"}, formats
        events = [json.loads(r.value) for r in ps.read_topic(stack, names.topic)]
        expected = reference(minute, events, TimeRange(), 5)

        # the indexer has not started: the answers differ, and that is lag, not disagreement
        run = Run(settings, "both", spark=spark)
        behind = answer_one(run, minute, TimeRange(), 5)
        assert behind["verdict"] == BEHIND, behind
        assert behind["lag"]["groups"] == {names.es_group: EVENTS, names.hdfs_group: 0}
        assert behind["engines"]["es"]["rows"] == []
        spark_rows = [tuple(r.values()) for r in behind["engines"]["spark"]["rows"]]
        assert spark_rows == expected.rows

        # Elasticsearch unreachable: Spark answers alone, and says so
        gone = Run(settings.with_overrides(es_port=_closed_port()), "both", spark=spark)
        alone = answer_one(gone, minute, TimeRange(), 5)
        assert alone["verdict"] == "only spark", alone
        assert "Elasticsearch" in alone["engines"]["es"]["error"]
        assert [tuple(r.values()) for r in alone["engines"]["spark"]["rows"]] == expected.rows

        es_worker.start()
        _caught_up(stack, names.es_group, names.topic, workers)
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], ps.logs(workers)
    assert len(events) == EVENTS
    minutes = sorted({e["event_time"][:16] for e in events})
    assert len(minutes) >= 4 and len({m[:10] for m in minutes}) == 2, minutes
    es = ElasticsearchEngine(settings)
    lag = read_lag(settings, names.topic, (names.es_group, names.hdfs_group))
    assert lag.caught_up, lag.describe()
    # the whole run, and a window that cuts minutes off both ends
    inner = TimeRange(
        to_ms(datetime.fromisoformat(minutes[1] + ":00+00:00")),
        to_ms(datetime.fromisoformat(minutes[-1] + ":00+00:00")),
    )
    differences = []
    reads = spark.reads
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
    # every question of a window from one read of the archive: the whole run's events were
    # kept since the answers above (the archive did not change since), the inner window's
    # were read once
    assert spark.reads == reads + 1

    # now both agree
    agreed = answer_one(Run(settings, "both", spark=spark), QUESTIONS["funnel"], inner, 5)
    assert agreed["verdict"] == AGREE, agreed

    # the command line says so too (ES side only: one Spark session per module)
    done = clickfan("analyze", "funnel", "--engine", "es", "--json", env=names_env(names))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    rows = [[r["step"], r["sessions"]] for r in printed["engines"]["es"]["rows"]]
    assert rows == [list(r) for r in reference(QUESTIONS["funnel"], events, TimeRange(), 5).rows]


def test_rebuilt_index_from_a_mixed_archive_answers_as_the_events(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    """JSON Lines and Parquet in one archive, bulk-indexed into a fresh prefix."""
    env = ps.worker_env(stack, names)
    first = ps.WorkerProcess("hdfs", env, tmp_path, "hdfs-jsonl")
    second = ps.WorkerProcess("hdfs", {**env, "CLICKFAN_HDFS_FORMAT": "parquet"}, tmp_path, "pq")
    try:
        first.start()
        ps.produce(stack, names, 600, seed=31)
        _caught_up(stack, names.hdfs_group, names.topic, [first])
        assert first.stop() == 0, first.tail()
        second.start()
        ps.produce(stack, names, 600, seed=32)
        _caught_up(stack, names.hdfs_group, names.topic, [second])
    finally:
        codes = [w.stop() for w in (first, second)]
    assert codes == [0, 0], ps.logs([first, second])
    events = [json.loads(r.value) for r in ps.read_topic(stack, names.topic)]
    # inside the test's own prefix (the fixture deletes <prefix>*), outside its daily pattern
    rebuilt_prefix = f"{names.index_prefix}.rebuilt"
    settings = stack.with_overrides(index_prefix=names.index_prefix)
    try:
        rebuilt = rebuild_index(settings, names.hdfs_root, rebuilt_prefix)
        assert rebuilt.events == len(events) == 1200
        es = ElasticsearchEngine(settings, index_prefix=rebuilt_prefix)
        for q in QUESTIONS.values():
            expected = reference(q, events, TimeRange(), 10)
            assert es.answer(q, TimeRange(), 10).rows == expected.rows, q.name
        # the run's own prefix does not count the rebuilt indices
        assert ElasticsearchEngine(settings).answer(QUESTIONS["funnel"], TimeRange(), 10).notes
        # and a prefix inside the old pattern is refused
        with pytest.raises(ValueError, match="choose another prefix"):
            rebuild_index(settings, names.hdfs_root, f"{names.index_prefix}-again")
    finally:
        ps.es_client(stack).options(ignore_status=404).indices.delete_index_template(
            name=rebuilt_prefix
        )
