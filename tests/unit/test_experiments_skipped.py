"""An experiment this machine cannot run (a missing package, no root) is skipped with
the reason, not failed, and `experiment all` goes on."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from clickfan.experiments.framework import Context, Experiment, ExperimentSkipped, run_experiment
from clickfan.settings import Settings


class NeedsAPackage(Experiment):
    name = "needs-a-package"
    title = "an experiment whose package is missing"
    claim = "-"

    def run(self, ctx: Context) -> None:
        raise ExperimentSkipped("redis-server is not installed: apt-get install redis-server")


def test_a_skipped_experiment_reports_why_and_is_no_failure(tmp_path: Path) -> None:
    outcome = run_experiment(
        NeedsAPackage(), Settings(), tmp_path, None, Console(quiet=True), keep=True
    )
    assert outcome.ok and outcome.skipped is not None
    assert "apt-get install redis-server" in outcome.skipped
    assert any("apt-get install redis-server" in n for n in outcome.report["notes"])
