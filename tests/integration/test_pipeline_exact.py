"""The headline: 20 000 events through both consumer groups, nothing lost, nothing twice."""

from __future__ import annotations

from pathlib import Path

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names


def test_every_event_reaches_both_sinks_exactly_once(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    env = ps.worker_env(stack, names)
    workers = [
        ps.WorkerProcess("es", env, tmp_path, "es-1"),
        ps.WorkerProcess("hdfs", env, tmp_path, "hdfs-1"),
    ]
    for w in workers:
        w.start()
    try:
        summary = ps.produce(stack, names, 20_000, start_time=ps.hour_boundary_start())
        ps.wait_until(
            lambda: (
                ps.lag(stack, names.es_group, names.topic) == 0
                and ps.lag(stack, names.hdfs_group, names.topic) == 0
            ),
            timeout=300,
            what="both groups to commit every offset",
            describe=lambda: ps.logs(workers),
        )
        ps.assert_exact(stack, names, summary)
        folders = {f.folder for f in ps.read_archive(stack, names.hdfs_root)}
        assert len(folders) == 2, f"events span two hours, got folders {folders}"
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], f"workers did not stop cleanly on SIGTERM\n{ps.logs(workers)}"
