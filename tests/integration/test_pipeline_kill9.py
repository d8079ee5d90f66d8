"""kill -9 of workers at random moments, while events flow: still every event, exactly once.

Two processes per group share the partitions; one of them at a time is killed
(SIGKILL: no flush, no commit, HDFS files half-written) and restarted, several
times per group, during production. Afterwards the checks are the same as
without kills: Elasticsearch holds exactly the produced ids and HDFS every
offset exactly once, read back from the files.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from clickfan.generators.producer import ProduceSummary
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
    groups = {
        kind: [ps.WorkerProcess(kind, env, tmp_path, f"{kind}-{i}") for i in (1, 2)]
        for kind in ("es", "hdfs")
    }
    workers = [w for ws in groups.values() for w in ws]
    for w in workers:
        w.start()
    result: list[ProduceSummary] = []
    producer = threading.Thread(
        target=lambda: result.append(
            ps.produce(
                stack,
                names,
                EVENTS,
                rate=RATE,
                bad_fraction=0.02,
                start_time=ps.hour_boundary_start(),
            )
        )
    )
    rng = random.Random(606)
    kills = {kind: 0 for kind in groups}
    try:
        producer.start()
        while producer.is_alive() or min(kills.values()) < KILLS_PER_GROUP:
            kind = min(kills, key=lambda k: (kills[k], rng.random()))
            victim = rng.choice(groups[kind])
            time.sleep(rng.uniform(1.0, 3.0))
            victim.kill9()
            kills[kind] += 1
            time.sleep(rng.uniform(0.0, 1.5))
            victim.start()
        producer.join()
        assert result, "the producer failed (see the log above)"
        ps.wait_until(
            lambda: (
                ps.lag(stack, names.es_group, names.topic) == 0
                and ps.lag(stack, names.hdfs_group, names.topic) == 0
            ),
            timeout=300,
            what="both groups to commit every offset after the kills",
            describe=lambda: ps.logs(workers),
        )
        assert all(w.running for w in workers), ps.logs(workers)
        ps.assert_exact(stack, names, result[0])
    finally:
        for w in workers:
            w.stop()
    assert min(kills.values()) >= KILLS_PER_GROUP
