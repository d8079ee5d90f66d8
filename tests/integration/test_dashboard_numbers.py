"""The dashboard's numbers, printed (no timing assertions): page weight, time to first
render, the server's CPU share while it updates once a second, the delay from an
event produced to the page showing it; for 6 partitions and for a group of 100.

What is asserted is behaviour: the page shows every event produced, draws every
partition, and logs no error.

    pytest --stack=external tests/integration/test_dashboard_numbers.py -q -s
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from playwright.sync_api import Browser

from clickfan.compose.native import stack as native_stack
from clickfan.events import encode_event
from clickfan.generators.events import EventGenerator
from clickfan.settings import Settings
from tests.integration.test_dashboard import (
    DashboardPage,
    DashboardProcess,
    browser,  # noqa: F401 - the fixture
    running_dashboard,
)
from tests.support import Names, wait_until

# numbers, not behaviour, and about three minutes: `make bench` runs them
_NUMBERS_ONLY_WHEN_ASKED = pytest.mark.skipif(
    not os.environ.get("CLICKFAN_DASHBOARD_NUMBERS"),
    reason="dashboard numbers run with `make bench` (CLICKFAN_DASHBOARD_NUMBERS=1)",
)

CPU_SECONDS = 60
DELAY_SAMPLES = 10

pytestmark = [pytest.mark.integration, _NUMBERS_ONLY_WHEN_ASKED]


def _open(browser: Browser, d: DashboardProcess) -> DashboardPage:  # noqa: F811
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    p = context.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.goto(d.url)
    p.wait_for_function("document.body.dataset.updated !== undefined", timeout=60_000)
    return DashboardPage(p, errors)


def _page_numbers(page: DashboardPage) -> dict[str, float]:
    """Bytes transferred for the page and its first requests, and its first render."""
    return page.page.evaluate(
        """() => {
          const nav = performance.getEntriesByType("navigation")[0];
          const res = performance.getEntriesByType("resource")
            .filter((r) => !r.name.endsWith("/api/events"));
          const first = performance.getEntriesByName("clickfan-first-render")[0];
          return {
            bytes: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
            requests: 1 + res.length,
            dom_content_loaded_ms: nav.domContentLoadedEventEnd,
            first_render_ms: first ? first.startTime : -1,
          };
        }"""
    )


def _cpu_share(pid: int, seconds: float) -> float:
    """Percent of one core used by the dashboard's server process over seconds."""
    proc = psutil.Process(pid)
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / seconds


def _drawn_ms(page: DashboardPage) -> float:
    text = page.page.locator("#connection").inner_text()
    return float(text.rsplit("drawn in ", 1)[1].split(" ")[0])


def _report(title: str, numbers: dict[str, object]) -> None:
    print(f"\n== dashboard numbers: {title}")
    for key, value in numbers.items():
        print(f"  {key}: {value}")


def test_numbers_with_six_partitions(
    stack: Settings,
    names: Names,
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    # no producer: each event the test produces is the only change the page can show
    with running_dashboard(stack, names, tmp_path / "logs", rate=0) as d:
        page = _open(browser, d)
        first = _page_numbers(page)
        state_bytes = len(requests.get(f"{d.url}api/state", timeout=5).content)
        cpu = _cpu_share(d.proc.pid, CPU_SECONDS)
        producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "acks": "all"})
        events = EventGenerator(seed=7)
        delays = []
        for _ in range(DELAY_SAMPLES):
            before = page.number("#produced") or 0
            began = time.monotonic()
            producer.produce(names.topic, encode_event(events.next_event()))
            producer.flush(10)
            page.page.wait_for_function(
                f"Number(document.querySelector('#produced').textContent.replace(/,/g, ''))"
                f" > {before}",
                polling="raf",
                timeout=30_000,
            )
            delays.append(time.monotonic() - began)
            time.sleep(0.37)  # land at different points of the reading interval
        _report(
            "6 partitions x 2 groups, one update a second",
            {
                "page weight (bytes transferred, first load)": first["bytes"],
                "requests on first load": first["requests"],
                "DOMContentLoaded (ms)": round(first["dom_content_loaded_ms"]),
                "time to first render (ms, from navigation)": round(first["first_render_ms"]),
                "one pushed state (bytes of JSON)": state_bytes,
                f"server CPU share over {CPU_SECONDS} s (% of one core)": round(cpu, 1),
                "event produced -> page shows it (s): median": round(statistics.median(delays), 2),
                "event produced -> page shows it (s): max": round(max(delays), 2),
                "render of one update in the page (ms, mean of 60)": _drawn_ms(page),
            },
        )
        assert page.errors == [], page.errors


@pytest.fixture
def wide_names(stack: Settings, names: Names) -> Iterator[Names]:
    """The test's names with a topic of 100 partitions."""
    wide = Names(**{**names.__dict__, "topic": f"{names.prefix}.wide.click-logs"})
    admin = native_stack.admin_client(stack.bootstrap_servers)
    topic = NewTopic(wide.topic, 100, stack.replication_factor)
    for future in admin.create_topics([topic], request_timeout=60).values():
        future.result()
    try:
        yield wide
    finally:
        for future in admin.delete_topics([wide.topic], request_timeout=60).values():
            future.result()


def test_numbers_with_a_group_of_100_partitions(
    stack: Settings,
    wide_names: Names,
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    with running_dashboard(stack, wide_names, tmp_path / "logs", rate=200) as d:
        wait_until(
            lambda: json.loads(requests.get(f"{d.url}api/state", timeout=5).content)["groups"][0][
                "members"
            ],
            timeout=180,
            what="the indexer to join with its 100 partitions",
            describe=d.logs,
        )
        page = _open(browser, d)
        first = _page_numbers(page)
        for role in ("indexer", "archiver"):
            assert page.page.locator(f"#group-{role} .tile").count() == 100
        assert page.page.locator("#topic tr[data-partition]").count() == 100
        state_bytes = len(requests.get(f"{d.url}api/state", timeout=5).content)
        cpu = _cpu_share(d.proc.pid, CPU_SECONDS)
        _report(
            "100 partitions x 2 groups, producer at 200 events/s",
            {
                "page weight (bytes transferred, first load)": first["bytes"],
                "time to first render (ms, from navigation)": round(first["first_render_ms"]),
                "one pushed state (bytes of JSON)": state_bytes,
                f"server CPU share over {CPU_SECONDS} s (% of one core)": round(cpu, 1),
                "render of one update in the page (ms, mean of 60)": _drawn_ms(page),
                "the server's last reading (ms)": json.loads(
                    requests.get(f"{d.url}api/state", timeout=5).content
                )["read_ms"],
            },
        )
        page.shot("dashboard-100-partitions")
        assert page.errors == [], page.errors
