"""The headline: 20 000 events through both consumer groups, nothing lost, nothing twice."""

from __future__ import annotations

from pathlib import Path

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names


def test_every_event_reaches_both_sinks_exactly_once(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    with ps.running_workers(ps.worker_env(stack, names), tmp_path) as workers:
        summary = ps.produce(stack, names, 20_000, start_time=ps.hour_boundary_start())
        ps.wait_drained(stack, names, workers, timeout=300)
        ps.assert_exact(stack, names, summary)
        folders = {f.folder for f in ps.read_archive(stack, names.hdfs_root)}
        assert len(folders) == 2, f"events span two hours, got folders {folders}"
    assert workers.codes == [0, 0], f"workers did not stop cleanly on SIGTERM\n{ps.logs(workers)}"
