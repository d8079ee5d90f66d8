"""The report folder: JSON keys, the verdict, and a failed check never hidden."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from clickfan.experiments.framework import Context, Experiment, RunNames, run_experiment
from clickfan.experiments.registry import available
from clickfan.settings import Settings


class _Fake(Experiment):
    name = "fake"
    title = "a claim"
    claim_ko = "한 줄"
    claim = "one line"
    method = "by hand"

    def __init__(self, measured: int) -> None:
        self.measured = measured

    def run(self, ctx: Context) -> None:
        ctx.check("answer", 42, self.measured, self.measured == 42)
        ctx.plot_path("p.png", "a plot").write_bytes(b"png")


def _run(tmp_path: Path, measured: int) -> tuple[bool, Path]:
    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    outcome = run_experiment(_Fake(measured), Settings(), tmp_path, None, console)
    return outcome.ok, outcome.out_dir


def test_a_passing_run_writes_md_json_and_plot(tmp_path: Path) -> None:
    ok, out = _run(tmp_path, 42)
    assert ok
    data = json.loads((out / "report.json").read_text())
    assert {"name", "expected", "measured", "ok"} <= set(data)
    assert data["name"] == "fake" and data["ok"] is True
    assert data["expected"] == {"answer": 42} and data["measured"] == {"answer": 42}
    md = (out / "report.md").read_text()
    assert "The claim holds" in md and "> 한 줄" in md and "![a plot](p.png)" in md


def test_a_failed_expectation_is_reported_with_its_numbers(tmp_path: Path) -> None:
    ok, out = _run(tmp_path, 41)
    assert not ok
    data = json.loads((out / "report.json").read_text())
    assert data["ok"] is False and data["measured"] == {"answer": 41}
    assert "| answer | 42 | 41 | **FAILED** |" in (out / "report.md").read_text()


def test_a_run_that_breaks_is_a_failure(tmp_path: Path) -> None:
    class Broken(_Fake):
        def run(self, ctx: Context) -> None:
            raise RuntimeError("boom")

    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    outcome = run_experiment(Broken(0), Settings(), tmp_path, None, console)
    assert not outcome.ok
    assert "boom" in json.dumps(outcome.report["measured"])


def test_run_names_are_unique_and_valid_for_elasticsearch() -> None:
    a, b = RunNames.for_run("replay", "20250101"), RunNames.for_run("replay", "20250101")
    assert a.prefix != b.prefix
    assert a.index_prefix == a.index_prefix.lower()
    assert a.topic.startswith(a.prefix) and a.hdfs_root.endswith(a.prefix)


def test_every_experiment_says_what_it_claims() -> None:
    for name, exp in available().items():
        assert exp.name == name
        assert exp.title and exp.claim_ko.strip() and exp.claim and exp.method
