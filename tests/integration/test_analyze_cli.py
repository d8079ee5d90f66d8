"""`clickfan analyze` as a user runs it: refusals, an engine whose service is down, and
`all --engine both` agreeing on a seeded run (one Spark session: one command); the
dashboard's live panel serving the same answers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from clickfan.analysis.questions import ENGINES, QUESTIONS
from clickfan.app.dashboard.analysis_panel import AnalysisPanel
from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names, clickfan, free_port, names_env


@pytest.mark.parametrize(
    ("args", "names_in_message"),
    [
        (["nope"], list(QUESTIONS)),
        (["funnel", "--engine", "presto"], list(ENGINES)),
        (["funnel", "--since", "yesterday"], ["ISO 8601", "15m"]),
        (["funnel", "--until", "2025-13-01"], ["ISO 8601", "15m"]),
        (["funnel", "--since", "2025-02-01T00:00:00Z", "--until", "2025-01-01"], ["before"]),
        (["funnel", "--engine", "spark", "--spark-memory", "lots"], ["512m", "1g"]),
    ],
)
def test_bad_input_exit_2_with_the_choices(args: list[str], names_in_message: list[str]) -> None:
    done = clickfan("analyze", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    for word in names_in_message:
        assert word in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr


def test_hdfs_down_es_answers_alone_and_both_agree_once_caught_up(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    with ps.running_workers(ps.worker_env(stack, names), tmp_path) as workers:
        ps.produce(stack, names, 2000, seed=77)
        ps.wait_drained(stack, names, workers, timeout=300)
    assert workers.codes == [0, 0], ps.logs(workers)

    # the NameNode unreachable (a port nobody listens on): Elasticsearch answers alone
    hdfs_gone = {**names_env(names), "CLICKFAN_NAMENODE_RPC_PORT": str(free_port())}
    done = clickfan("analyze", "top-pages", "--engine", "both", "--json", env=hdfs_gone)
    assert done.returncode == 0, done.stderr
    alone = json.loads(done.stdout)
    assert alone["verdict"] == "only es", alone
    assert "HDFS NameNode" in alone["engines"]["spark"]["error"], alone
    assert len(alone["engines"]["es"]["rows"]) == 10
    assert "Traceback" not in done.stderr

    done = clickfan("analyze", "all", "--engine", "both", "--json", env=names_env(names))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["question"] for r in results] == list(QUESTIONS)
    for r in results:
        assert r["verdict"] == "agree", r
        assert r["lag"]["groups"] == {names.es_group: 0, names.hdfs_group: 0}
        assert r["engines"]["es"]["rows"] == r["engines"]["spark"]["rows"]
        assert r["engines"]["es"]["rows"], f"{r['question']}: nothing to compare"
    total = sum(row["events"] for row in results[0]["engines"]["spark"]["rows"])
    assert total == 2000
    # the Spark start-up is one line on stderr, the JVM's own chatter goes to its log
    assert "Spark ready in" in done.stderr, done.stderr
    assert "WARN" not in done.stderr and "log4j" not in done.stderr, done.stderr

    # the dashboard's panel serves the live answers of the last 15 minutes: these events
    panel = AnalysisPanel(stack.with_overrides(index_prefix=names.index_prefix))
    served = asyncio.run(_get_analysis(panel))
    assert served["error"] is None, served
    for r in results:
        if r["question"] in ("top-pages", "top-referrers"):
            expected = r["engines"]["es"]["rows"][:5]  # the panel shows the top 5
        else:
            expected = r["engines"]["es"]["rows"]
        assert served["questions"][r["question"]] == expected, r["question"]


async def _get_analysis(panel: AnalysisPanel) -> dict:
    app = web.Application()
    panel.install(app, dashboard=None)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/analysis")
        assert response.status == 200
        return await response.json()
