"""Each bad record is dead-lettered once per group, also when a worker dies between
dead-lettering it and committing it (kill -9: nothing flushed, nothing committed).

The indexer is held by a closed index and the archiver by a long roll, so both have
sent their dead letters but committed nothing when they are killed; the restarted
workers find those dead letters on the DLQ and do not send them again.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names

DAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def test_dead_letters_are_sent_once_per_group_across_kill9(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    es = ps.es_client(stack)
    index = f"{names.index_prefix}-{DAY:%Y.%m.%d}"
    es.indices.create(index=index)
    es.indices.close(index=index)
    # rolls that wait: the archiver dead-letters at once but publishes (and commits) later
    env = ps.worker_env(stack, names, hdfs_roll_s=600, hdfs_roll_records=100_000)
    with ps.running_workers(env, tmp_path) as workers:
        summary = ps.produce(stack, names, 2000, bad_fraction=0.05, start_time=DAY, seed=5)
        bad = {(d.partition, d.offset) for d in summary.deliveries or [] if d.bad_kind}
        assert bad
        # the indexer dead-letters a batch's bad records, then waits for the index with
        # that batch; the archiver dead-letters everything and waits for its roll
        for group, wanted in ((names.es_group, 1), (names.hdfs_group, len(bad))):
            ps.wait_until(
                lambda g=group, n=wanted: len(ps.dead_letters(stack, names, g)) >= n,
                timeout=180,
                what=f"{group} to dead-letter at least {wanted} of the bad records",
                describe=lambda: ps.logs(workers),
            )
            assert ps.lag(stack, group, names.topic) > 0, f"{group} committed: no test"
        for w in workers:
            w.kill9()
            w.start()
        # the restarted workers read everything again; then they may commit
        ps.wait_until(
            lambda: all(
                "assigned partitions" in w.log_path.read_text().rsplit("=== start", 1)[-1]
                for w in workers
            ),
            timeout=120,
            what="both workers to get their partitions again",
            describe=lambda: ps.logs(workers),
        )
        es.indices.open(index=index)
        archiver = workers[1]
        # a clean stop flushes the archiver's roll, but it may not have read every record
        # again yet: the last start rolls every 2 s, so whatever is left is published too
        assert archiver.stop() == 0, ps.logs(workers)
        archiver.env = {**env, "CLICKFAN_HDFS_ROLL_S": "2"}
        archiver.start()
        ps.wait_drained(stack, names, workers, timeout=240)
    for group in (names.es_group, names.hdfs_group):
        sources = Counter(ps.source_of(r) for r in ps.dead_letters(stack, names, group))
        twice = {k: n for k, n in sources.items() if n > 1}
        assert not twice, f"{group} dead-lettered {len(twice)} records more than once"
        assert set(sources) == bad, group
    ps.assert_exact(stack, names, summary)
