"""Elasticsearch stopped during production: the archiver is not slowed, the indexer waits.

While Elasticsearch is down the indexer retries with backoff, logs it once per
interval, and holds its offsets (its lag grows); the archiver, another group,
archives everything meanwhile. When Elasticsearch is back the indexer drains
its lag to zero and nothing is lost.
"""

from __future__ import annotations

from pathlib import Path

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names, ServiceControl

EVENTS = 4_000
RATE = 200.0
LOG_INTERVAL_S = 5


def test_indexer_holds_offsets_while_elasticsearch_is_down(
    stack: Settings, names: Names, tmp_path: Path, services: ServiceControl
) -> None:
    env = ps.worker_env(stack, names, sink_log_interval_s=LOG_INTERVAL_S)
    producer = ps.BackgroundProducer(stack, names, EVENTS, rate=RATE)
    with ps.running_workers(env, tmp_path) as workers:
        es, _ = workers
        producer.start()
        ps.wait_until(
            lambda: ps.es_count(stack, names) > 0,
            timeout=120,
            what="the first documents in Elasticsearch",
            describe=lambda: ps.logs(workers),
        )
        services.stop("elasticsearch")
        try:
            summary = producer.join()
            # Elasticsearch is still down: the archiver has everything anyway ...
            ps.wait_drained(
                stack,
                names,
                workers,
                groups=[names.hdfs_group],
                timeout=120,
                what="the archiver to catch up while Elasticsearch is down",
            )
            # ... and the indexer has not committed what it could not index
            held = ps.lag(stack, names.es_group, names.topic)
            assert held > 0, "the indexer committed offsets while Elasticsearch was down"
            assert es.running, es.tail()
        finally:
            services.start("elasticsearch")
        ps.wait_drained(
            stack,
            names,
            workers,
            groups=[names.es_group],
            timeout=300,
            what="the indexer to drain its lag after Elasticsearch came back",
        )
        ps.assert_exact(stack, names, summary)
        log = es.log_path.read_text()
        failures = [line for line in log.splitlines() if "retrying with backoff" in line]
        assert failures, "the outage was not logged"
        assert "is back after" in log
        # once per interval, not once per attempt or record
        attempts = max(int(line.split("(")[-1].split()[0]) for line in failures)
        assert len(failures) < attempts or attempts == 1, failures
