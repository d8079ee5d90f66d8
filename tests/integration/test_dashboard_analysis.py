"""The dashboard's live analysis panel in a real browser: it shows what
`clickfan analyze QUESTION --engine es --since 15m` answers, and follows new events."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.integration.test_dashboard import browser  # noqa: F401 (a fixture)
from tests.support import CLICKFAN, Names, clickfan, free_port, names_env, wait_until


@pytest.fixture
def quiet_pipeline(stack: Settings, names: Names, tmp_path: Path) -> Iterator[ps.Workers]:
    """Both workers on the test's names, the indexer caught up with 1 200 events of the
    last minute."""
    with ps.running_workers(ps.worker_env(stack, names), tmp_path) as workers:
        ps.produce(stack, names, 1200, seed=16)
        _indexed(stack, names, workers, timeout=300)
        yield workers


def _indexed(stack: Settings, names: Names, workers: ps.Workers, timeout: float) -> None:
    ps.wait_drained(
        stack,
        names,
        workers,
        groups=[names.es_group],
        timeout=timeout,
        what="the indexer to commit every offset",
    )


def _panel_rows(page: Page, question: str) -> list[list[str]]:
    rows = page.locator(f'#analysis [data-question="{question}"] tr')
    return [
        [cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()]
        for i in range(rows.count())
        if rows.nth(i).locator("td").count()
    ]


def _cli_rows(names: Names, question: str) -> list[list[str]]:
    done = clickfan(
        "analyze", question, "--since", "15m", "--limit", "5", "--json", env=names_env(names)
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["engines"]["es"]["rows"]
    return [[f"{v:,}" if isinstance(v, int) else str(v) for v in r.values()] for r in rows]


def test_panel_shows_the_live_answers(
    stack: Settings,
    names: Names,
    tmp_path: Path,
    quiet_pipeline: ps.Workers,
    browser,  # noqa: ANN001, F811
) -> None:
    port = free_port()
    with (tmp_path / "dashboard.log").open("ab") as log:
        proc = subprocess.Popen(
            [CLICKFAN, "dashboard", "--port", str(port)],
            env={**ps.worker_env(stack, names)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:

        def answers() -> bool:
            assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
            with contextlib.suppress(requests.RequestException):
                return requests.get(f"{url}api/analysis", timeout=10).status_code == 200
            return False

        wait_until(answers, timeout=90, what="the dashboard's analysis endpoint")
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.locator('#analysis [data-question="funnel"] td').first.wait_for(timeout=30_000)
        for question in ("funnel", "top-pages", "top-referrers", "sessions-per-country"):
            shown = _panel_rows(page, question)
            assert shown == _cli_rows(names, question), question
        bars = page.locator("#analysis .minute-bar")
        total = sum(int(bars.nth(i).get_attribute("data-events") or 0) for i in range(bars.count()))
        assert total == 1200

        # new events show up within a few refreshes, without reloading the page
        ps.produce(stack, names, 300, seed=17)
        _indexed(stack, names, quiet_pipeline, timeout=120)

        def shown_total() -> int:
            bars = page.locator("#analysis .minute-bar")
            return sum(
                int(bars.nth(i).get_attribute("data-events") or 0) for i in range(bars.count())
            )

        wait_until(lambda: shown_total() == 1500, timeout=30, what="the panel to show 1500")
        funnel = _panel_rows(page, "funnel")
        assert [row[0] for row in funnel] == ["page_view", "click", "purchase"]
        assert int(re.sub(r"\D", "", funnel[0][1])) > 0
        assert errors == []
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
