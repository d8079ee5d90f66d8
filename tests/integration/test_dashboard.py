"""The dashboard in a real browser (Debian's chromium driven by Playwright) on the real stack.

Each test runs `clickfan dashboard --run` confined to its own names (topic,
groups, index prefix, HDFS folder), so the workers and the producer it starts
are the test's own; the page is read as a user reads it (the numbers and the
status badges in the DOM) and driven through its buttons (confirmations
accepted). Screenshots go to reports/screenshots/.

test_stopping_elasticsearch_from_the_page stops the shared Elasticsearch for
a minute or two (others' tests wait on it): it always starts it again.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from rich.console import Console

from clickfan.compose.native import stack as native_stack
from clickfan.settings import Settings
from tests.support import CLICKFAN, Names, free_port, wait_until, worker_env

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "reports" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.integration


@dataclass
class DashboardProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-30:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc.poll() is None:
            # the workers and producer it runs have sessions of their own: should the
            # dashboard not stop them in time, they must not outlive the test
            children: list[psutil.Process] = []
            with contextlib.suppress(psutil.Error):
                children = [
                    c
                    for c in psutil.Process(self.proc.pid).children(recursive=True)
                    if _is_app_process(c)
                ]
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.kill()


def _is_app_process(proc: psutil.Process) -> bool:
    """A worker or producer the dashboard runs; not a service it started from the page
    (Elasticsearch started again by the test is its child too, and must live on)."""
    with contextlib.suppress(psutil.Error):
        argv = proc.cmdline()
        return len(argv) > 2 and argv[1].endswith("clickfan") and argv[2] in ("worker", "produce")
    return False


def start_dashboard(
    settings: Settings, names: Names, log_dir: Path, rate: float, **extra: object
) -> DashboardProcess:
    port = free_port()
    env = worker_env(settings, names, dashboard_interval_s=1, **extra)
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "dashboard.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                CLICKFAN,
                "dashboard",
                "--run",
                "--rate",
                str(rate),
                "--port",
                str(port),
                "--log-dir",
                str(log_dir),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    d = DashboardProcess(f"http://127.0.0.1:{port}/", proc, log_dir, env)

    def answers() -> bool:
        assert proc.poll() is None, f"the dashboard exited ({proc.returncode}):\n{d.logs()}"
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{d.url}api/state", timeout=2).status_code == 200
        return False

    wait_until(answers, timeout=90, what="the dashboard's first reading", describe=d.logs)
    return d


@contextlib.contextmanager
def running_dashboard(
    settings: Settings, names: Names, log_dir: Path, rate: float, **extra: object
) -> Iterator[DashboardProcess]:
    """start_dashboard, stopped (with what it runs) on leaving, whatever happened."""
    d = start_dashboard(settings, names, log_dir, rate, **extra)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def dashboard(stack: Settings, names: Names, tmp_path: Path) -> Iterator[DashboardProcess]:
    with running_dashboard(stack, names, tmp_path / "logs", rate=50) as d:
        yield d


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: `make install` installs Debian's chromium (as root)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class DashboardPage:
    """The page as a user sees it, and its buttons."""

    page: Page
    errors: list[str]

    def number(self, selector: str) -> int | None:
        text = self.page.locator(selector).first.inner_text()
        digits = re.sub(r"[^0-9]", "", text)
        return int(digits) if digits else None

    def status(self, role: str) -> str:
        return self.page.locator(f"#group-{role}").get_attribute("data-status") or ""

    def lag(self, role: str) -> int | None:
        return self.number(f"#group-{role} .lag")

    def click(self, action: str) -> None:
        self.page.locator(f'button[data-action="{action}"]').click()

    def last_entry(self) -> tuple[str, str]:
        """(state, text) of the newest action log entry (a refusal's state: refused)."""
        entry = self.page.locator("#action-log li").first
        return entry.get_attribute("data-state") or "refused", entry.inner_text()

    def run(self, action: str, what: str, timeout: float = 240) -> str:
        """Click an action's button (its confirmation accepted) and wait until it is done."""
        before = self.page.locator("#action-log li").count()
        self.click(action)
        wait_until(
            lambda: (
                self.page.locator("#action-log li").count() > before
                and self.last_entry()[0] != "running"
            ),
            timeout=timeout,
            what=what,
            describe=lambda: self.last_entry()[1],
        )
        state, text = self.last_entry()
        assert state == "ok", f"{what}: {text}"
        return text

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextlib.contextmanager
def open_page(browser: Browser, d: DashboardProcess) -> Iterator[DashboardPage]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    p = context.new_page()
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    p.on("console", on_console)
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("dialog", lambda dialog: dialog.accept())  # each action's confirmation
    p.goto(d.url)
    p.wait_for_selector("#group-indexer")
    try:
        yield DashboardPage(p, errors)
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, dashboard: DashboardProcess) -> Iterator[DashboardPage]:
    with open_page(browser, dashboard) as p:
        yield p


def test_page_loads_without_errors_and_its_counts_rise(
    page: DashboardPage, dashboard: DashboardProcess
) -> None:
    first = page.number("#produced") or 0
    wait_until(
        lambda: (
            (page.number("#produced") or 0) > first + 200
            and (page.number("#es-docs") or 0) > 0
            and (page.number("#hdfs-files") or 0) > 0
        ),
        timeout=180,
        what="the page's counts to rise: appended records, documents, HDFS files",
        describe=dashboard.logs,
    )
    docs = page.number("#es-docs") or 0
    wait_until(
        lambda: (page.number("#es-docs") or 0) > docs,
        timeout=60,
        what="the document count to rise again",
        describe=dashboard.logs,
    )
    # both groups are drawn with their six partitions, each coloured by a status
    for role in ("indexer", "archiver"):
        assert page.page.locator(f"#group-{role} .tile").count() == 6
    assert page.page.locator("#topic tr[data-partition]").count() == 6
    assert page.page.locator(".broker.up").count() == 3
    assert page.page.locator("#chart-lag canvas").count() == 1, "the lag chart was not drawn"
    path = page.shot("dashboard-running")
    print(f"screenshot: {path}")
    assert page.errors == [], f"console errors: {page.errors}"


def _until_caught_up(page: DashboardPage, role: str, what: str, d: DashboardProcess) -> None:
    wait_until(
        lambda: page.lag(role) == 0 and page.status(role) == "OK",
        timeout=240,
        what=what,
        describe=lambda: f"lag {page.lag(role)}, status {page.status(role)}\n{d.logs()}",
    )


def test_stopping_elasticsearch_from_the_page(
    stack: Settings, page: DashboardPage, dashboard: DashboardProcess
) -> None:
    wait_until(
        lambda: page.status("indexer") == "OK" and page.status("archiver") == "OK",
        timeout=180,
        what="both groups OK while the producer runs",
        describe=dashboard.logs,
    )
    seen_indexer: list[str] = []
    seen_archiver: list[str] = []

    def watch() -> bool:
        for role, seen in (("indexer", seen_indexer), ("archiver", seen_archiver)):
            status = page.status(role)
            if not seen or seen[-1] != status:
                seen.append(status)
        return seen_indexer[-1] == "ERR"

    try:
        page.run("stop-elasticsearch", "stopping Elasticsearch from the page")
        wait_until(
            watch,
            timeout=180,
            what="the indexer's status to turn ERR while Elasticsearch is down",
            describe=lambda: f"indexer {seen_indexer}, archiver {seen_archiver}",
            interval=0.5,
        )
        page.shot("dashboard-elasticsearch-down")
        print(f"indexer statuses while Elasticsearch was down: {seen_indexer}")
        assert seen_archiver == ["OK"], f"the archiver was disturbed: {seen_archiver}"
        page.run("start-elasticsearch", "starting Elasticsearch from the page", timeout=300)
    finally:
        service = native_stack.find_service(stack, "elasticsearch")
        if native_stack.running_pid(service) is None:
            native_stack.start_one(stack, "elasticsearch", Console(stderr=True))
    # no more events, so that "drained" means lag 0
    page.page.fill("#producer-rate", "0")
    page.run("producer-rate", "stopping the producer from the page")
    _until_caught_up(page, "indexer", "the indexer to drain its lag and turn OK", dashboard)
    assert page.status("archiver") == "OK"
    # the status log on the page tells the story
    log = page.page.locator('#status-log li[data-group="indexer"]').all_inner_texts()
    assert any("→ ERR" in line for line in log) and any("→ OK" in line for line in log), log
    assert page.errors == [], f"console errors: {page.errors}"


def _settled(page: DashboardPage, selector: str) -> int | None:
    """The number once it shows the same value 3 s apart."""
    previous: list[int | None] = [None]

    def same() -> int | None:
        now = page.number(selector)
        settled = now if now is not None and now == previous[0] else None
        previous[0] = now
        return settled

    return wait_until(same, timeout=60, what=f"{selector} to settle", interval=3)


def test_replay_from_the_page_raises_the_lag_to_the_log_size_and_it_drains(
    page: DashboardPage, dashboard: DashboardProcess
) -> None:
    wait_until(
        lambda: (page.number("#records") or 0) >= 1500,
        timeout=180,
        what="some records on the topic",
        describe=dashboard.logs,
    )
    page.page.fill("#producer-rate", "0")
    page.run("producer-rate", "stopping the producer from the page")
    _until_caught_up(page, "indexer", "the indexer to catch up", dashboard)
    records = page.number("#records")
    docs = _settled(page, "#es-docs")  # Elasticsearch counts what it refreshed (every 1 s)

    page.page.select_option("#replay-group", value=dashboard.env["CLICKFAN_ES_GROUP"])
    page.page.select_option("#replay-mode", "earliest")
    # refused while the indexer has a member, as `clickfan replay` refuses
    page.click("replay")
    wait_until(
        lambda: page.page.locator('#action-log li[data-refused="replay"]').count() > 0,
        timeout=30,
        what="the replay to be refused while the group has members",
    )
    assert "active member" in page.page.locator("#action-log li").first.inner_text()

    page.run("stop-es-indexer", "stopping the indexer from the page", timeout=90)
    wait_until(
        lambda: "no members" in page.page.locator("#group-indexer").inner_text(),
        timeout=90,
        what="the indexer group to have no members",
    )
    text = page.run("replay", "the replay from the page", timeout=60)
    assert f"{records:,} records to read again" in text, text
    wait_until(
        lambda: page.lag("indexer") == records,
        timeout=60,
        what=f"the indexer's lag to show the whole log ({records})",
        describe=lambda: f"lag {page.lag('indexer')}",
    )
    page.shot("dashboard-replayed")
    page.run("start-es-indexer", "starting the indexer from the page")
    _until_caught_up(page, "indexer", "the replayed indexer to drain", dashboard)
    # document ids are the events' ids: a replay overwrites, it does not add
    wait_until(
        lambda: page.number("#es-docs") == docs,
        timeout=60,
        what=f"the document count to be {docs} again",
        describe=lambda: f"{page.number('#es-docs')} documents",
    )
    # the browser logs the refused request's 409 itself; nothing else went wrong
    conflict = "the server responded with a status of 409 (Conflict)"
    assert [e for e in page.errors if conflict not in e] == [], page.errors


def test_a_quick_experiment_from_the_page_and_its_report(
    stack: Settings, names: Names, tmp_path: Path, browser: Browser
) -> None:
    reports = tmp_path / "reports"
    with (
        running_dashboard(stack, names, tmp_path / "logs", rate=0, experiment_out=reports) as d,
        open_page(browser, d) as page,
    ):
        assert "no reports" in page.page.locator("#reports").inner_text()
        page.page.select_option("#experiment-name", "partitioner")  # Kafka only
        text = page.run("experiment", "the partitioner experiment", timeout=600)
        assert "partitioner" in text
        link = page.page.locator("#reports a", has_text="partitioner")
        wait_until(lambda: link.count() == 1, timeout=30, what="the new report in the list")
        link.click()
        page.page.wait_for_selector("#report h1")
        images = page.page.locator("#report img")
        assert images.count() >= 1, "the report shows no plot"
        page.page.wait_for_function(
            "[...document.querySelectorAll('#report img')].every((i) => i.naturalWidth > 0)",
            timeout=30_000,
        )
        page.shot("dashboard-report")
        assert page.errors == [], page.errors
