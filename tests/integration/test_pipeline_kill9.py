"""kill -9 of workers at random moments, while events flow: still every event, exactly once.

Two processes per group share the partitions; one of them at a time is killed
(SIGKILL: no flush, no commit, HDFS files half-written) and restarted, several
times per group, during production. Afterwards the checks are the same as
without kills: Elasticsearch holds exactly the produced ids and HDFS every
offset exactly once, read back from the files.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names

EVENTS = 5_000
RATE = 250.0  # events/s: production lasts ~20 s, long enough for several kills
KILLS_PER_GROUP = 3


def test_exact_after_kill_9_at_random_moments(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    env = ps.worker_env(stack, names, hdfs_roll_records=300, hdfs_roll_s=1)
    producer = ps.BackgroundProducer(
        stack,
        names,
        EVENTS,
        rate=RATE,
        bad_fraction=0.02,
        start_time=ps.hour_boundary_start(),
    )
    rng = random.Random(606)
    with ps.running_workers(env, tmp_path, kinds=["es", "es", "hdfs", "hdfs"]) as workers:
        groups = {kind: workers.of_kind(kind) for kind in ("es", "hdfs")}
        kills = {kind: 0 for kind in groups}
        producer.start()
        while producer.is_alive() or min(kills.values()) < KILLS_PER_GROUP:
            kind = min(kills, key=lambda k: (kills[k], rng.random()))
            victim = rng.choice(groups[kind])
            time.sleep(rng.uniform(1.0, 3.0))
            victim.kill9()
            kills[kind] += 1
            time.sleep(rng.uniform(0.0, 1.5))
            victim.start()
        summary = producer.join()
        ps.wait_drained(
            stack,
            names,
            workers,
            timeout=300,
            what="both groups to commit every offset after the kills",
        )
        assert all(w.running for w in workers), ps.logs(workers)
        ps.assert_exact(stack, names, summary)
    assert min(kills.values()) >= KILLS_PER_GROUP
