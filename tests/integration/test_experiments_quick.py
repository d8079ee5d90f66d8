"""The experiments that finish in under two minutes run here and must report ok."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clickfan.experiments.registry import available
from clickfan.settings import Settings
from tests.support import run_experiment

QUICK = {
    # name -> events: enough to show the claim, few enough for two cores
    "partitions": 2000,
    "partitioner": 3000,
    "replay": 1000,
    "reset": 1000,  # starts `clickfan worker es` four times
    "fanout": 1000,  # stops and starts Elasticsearch: see _may_stop_services
    "retention": 1000,  # waits for the brokers' retention check (every 10 s)
}


def _may_stop_services(request: pytest.FixtureRequest) -> bool:
    """Only on a stack this test run started itself, or when told it is private."""
    return (
        request.config.getoption("--stack") == "native"
        or os.environ.get("CLICKFAN_TEST_STOP_SERVICES") == "1"
    )


def test_the_quick_list_matches_the_experiments_own_flags() -> None:
    quick = {name for name, exp in available().items() if exp.quick}
    assert set(QUICK) <= quick


@pytest.mark.parametrize("name", sorted(QUICK))
def test_experiment_reports_ok(
    stack: Settings, tmp_path: Path, name: str, request: pytest.FixtureRequest
) -> None:
    if "kills" in available()[name].needs and not _may_stop_services(request):
        pytest.skip(
            f"{name} stops a service: it runs with --stack=native (a stack of its own), or "
            "with CLICKFAN_TEST_STOP_SERVICES=1 on an external stack nobody else is using"
        )
    report = run_experiment(name, QUICK[name], tmp_path, timeout=600)
    assert {"name", "expected", "measured", "ok"} <= set(report)
    assert report["name"] == name
    (folder,) = tmp_path.iterdir()
    assert (folder / "report.md").is_file()
    assert json.loads((folder / "report.json").read_text()) == report
    pngs = list(folder.glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
