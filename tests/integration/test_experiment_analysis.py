"""`clickfan experiment analysis` (a small run): every claim of its report holds.

It stops and starts Elasticsearch, so it runs as test_experiments_quick's experiments
that stop services do: on a stack of its own (--stack=native), or with
CLICKFAN_TEST_STOP_SERVICES=1 on an external stack nobody else is using.
One Spark session: the experiment's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clickfan.settings import Settings
from tests.integration.test_experiments_quick import _may_stop_services
from tests.support import run_experiment

EVENTS = 600


def test_analysis_experiment_claims_hold(
    stack: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if not _may_stop_services(request):
        pytest.skip(
            "the analysis experiment stops Elasticsearch: --stack=native, or "
            "CLICKFAN_TEST_STOP_SERVICES=1 on an external stack nobody else is using"
        )
    report = run_experiment("analysis", EVENTS, tmp_path, timeout=900)
    names = [c["name"] for c in report["checks"]]
    for claim in ("indexer behind", "after the catch-up", "after retention", "rebuilt index vs"):
        assert any(claim in n for n in names), f"no check about {claim!r}: {names}"

    # the plot's numbers: live lags, batch complete, the rebuilt index equals the archive
    series = report["details"]["events_per_minute"]
    totals = {label: sum(v.values()) for label, v in series.items()}
    produced = EVENTS  # six batches, uneven in threes around EVENTS / 6
    assert totals["Spark over the HDFS archive"] == produced, totals
    assert totals["Elasticsearch rebuilt from the archive"] == produced, totals
    assert totals["Elasticsearch, caught up"] == produced, totals
    assert 0 < totals["Elasticsearch, indexer behind"] < produced, totals
    assert series["Elasticsearch rebuilt from the archive"] == series["Spark over the HDFS archive"]
    found = list(tmp_path.glob("analysis-*/events-per-minute.png"))
    assert found and found[0].stat().st_size > 0, list(tmp_path.iterdir())
