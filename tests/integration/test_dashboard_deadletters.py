"""The dashboard's dead letters in a real browser (Debian's chromium) on the real stack.

The dashboard runs both workers on the test's names; hostile records (markup, invalid
UTF-8) sent to the topic are dead-lettered by both groups, and valid events are put
on the DLQ as the indexer's (as an Elasticsearch mapping, fixed since, would have
left them). The page must show what `clickfan dlq --json` says, show the letters as
text (a record never injects markup), purge one group without touching the other's,
and re-drive the other into Elasticsearch after a dry run.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer
from playwright.sync_api import Browser

from clickfan.app.dashboard.deadletters import HOLDING
from clickfan.events import encode_event
from clickfan.generators.events import EventGenerator
from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.integration.test_dashboard import (  # noqa: F401 (browser: a fixture)
    DashboardPage,
    browser,
    open_page,
    running_dashboard,
)
from tests.support import Names, clickfan, committed, free_port, wait_until

HOSTILE = b"<img src=x onerror=alert(1)>"
NOT_UTF8 = b"\xff\xfe<b>bold</b>\x1b[31m"
SHOWN_NOT_UTF8 = "\\xff\\xfe<b>bold</b>\\x1b[31m"  # as `clickfan dlq show` escapes it
VALID = 20
DAY = datetime(2001, 1, 2, 8, 0, tzinfo=UTC)

Rows = dict[tuple[str, str], tuple[str, str, str]]  # (group, reason) -> (count, oldest, newest)


def _send_bad_records(stack: Settings, names: Names) -> None:
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "acks": "all"})
    for i in range(3):
        producer.produce(names.topic, HOSTILE, key=f"h{i}".encode(), partition=i)
    for i in range(2):
        producer.produce(names.topic, NOT_UTF8, partition=3 + i)
    assert producer.flush(30) == 0


def _inject_es_dead_letters(stack: Settings, names: Names) -> set[str]:
    """Valid events as the indexer's dead letters (es_rejected); their ids."""
    events = EventGenerator(11, start_time=DAY).take(VALID)
    ps.put_dead_letters(
        stack,
        names,
        [encode_event(e) for e in events],
        group=names.es_group,
        reason=b"es_rejected",
        message=b"a mapping since fixed",
        first_offset=1_000_000,
        source_timestamp=False,  # none: a re-drive carries it over as empty
    )
    return {e["event_id"] for e in events}


def _rows(page: DashboardPage) -> Rows:
    # read in one step in the page: the table is drawn anew on every push, and a row
    # read cell by cell can be replaced half-way
    table = page.page.evaluate(
        """() => [...document.querySelectorAll('#dlq-table tr[data-group]')].map(
            (row) => [...row.querySelectorAll('td')].map((td) => td.innerText))"""
    )
    return {(c[0], c[1]): (c[2].replace(",", ""), c[3], c[4]) for c in table}


def _cli(env: dict[str, str]) -> Rows:
    done = clickfan("dlq", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return {
        (g, r): (str(t["count"]), t["oldest"], t["newest"])
        for g, reasons in json.loads(done.stdout).items()
        for r, t in reasons.items()
    }


def _counts(rows: Rows) -> dict[tuple[str, str], int]:
    return {k: int(v[0]) for k, v in rows.items()}


def _entry(page: DashboardPage, title: str, timeout: float = 120, state: str = "ok") -> str:
    """The text of the finished action log entry whose title matches ``title`` (a regular
    expression); it must end in ``state``."""
    entry = page.page.locator("#action-log li[data-entry]").filter(
        has_text=re.compile(f" {title}: (ok|failed|running)")
    )

    def finished() -> bool:
        return any(e.get_attribute("data-state") != "running" for e in entry.all())

    wait_until(
        finished,
        timeout=timeout,
        what=f"the action {title!r} to finish",
        describe=lambda: "\n".join(page.page.locator("#action-log li").all_inner_texts()[:5]),
    )
    done = next(e for e in entry.all() if e.get_attribute("data-state") != "running")
    text = done.inner_text()
    assert done.get_attribute("data-state") == state, text
    return text


def _show(page: DashboardPage, group: str, reason: str, count: int) -> list[str]:
    page.page.locator(f'#dlq-table tr[data-group="{group}"][data-reason="{reason}"] button').click()
    letters = page.page.locator("#dlq-letters li.letter")
    wait_until(
        lambda: (
            page.page.locator("#dlq-letters h3").filter(has_text=reason).count() == 1
            and letters.count() == count
        ),
        timeout=60,
        what=f"{count} letters of {group} ({reason}) shown",
        describe=lambda: page.page.locator("#dlq-letters").inner_text(),
    )
    return page.page.locator("#dlq-letters pre.value").all_inner_texts()


def test_dead_letters_on_the_page(
    stack: Settings,
    names: Names,
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    es, hdfs = names.es_group, names.hdfs_group
    with running_dashboard(stack, names, tmp_path / "logs", rate=0) as d:
        _send_bad_records(stack, names)
        valid = _inject_es_dead_letters(stack, names)
        with open_page(browser, d) as page:
            dialogs: list[tuple[str, str]] = []  # open_page's own handler accepts them
            page.page.on("dialog", lambda dialog: dialogs.append((dialog.type, dialog.message)))

            # counts by group and reason: what `clickfan dlq --json` says
            expected = {
                (es, "not_json"): 3,
                (es, "invalid_utf8"): 2,
                (es, "es_rejected"): VALID,
                (hdfs, "not_json"): 3,
                (hdfs, "invalid_utf8"): 2,
            }
            wait_until(
                lambda: _counts(_rows(page)) == expected,
                timeout=240,
                what="the page to count each group's dead letters by reason",
                describe=lambda: f"{_rows(page)}\n{d.logs()}",
            )
            before = _cli(d.env)
            assert _rows(page) == before
            assert "null" not in page.page.locator("#deadletters").inner_text()

            # show: headers and previews, as text
            values = _show(page, es, "not_json", 3)
            assert values == [HOSTILE.decode()] * 3
            shown = page.page.locator("#dlq-letters").inner_text()
            assert f"from {names.topic}[" in shown and "attempt 1" in shown
            assert page.page.locator("img").count() == 0, "a record's value became markup"
            page.shot("dashboard-dead-letters")
            assert _show(page, hdfs, "invalid_utf8", 2) == [SHOWN_NOT_UTF8] * 2
            assert page.page.locator("#dlq-letters b").count() == 0

            # purge the archiver's: the indexer's stay as they were
            page.page.select_option("#dlq-purge-group", value=hdfs)
            page.page.fill("#dlq-purge-before", "now")
            page.click("dlq-purge")
            text = _entry(page, rf"purge {re.escape(hdfs)} before \S+")
            assert f"purged 5 dead letters of {hdfs}" in text, text
            wait_until(
                lambda: not any(g == hdfs for g, _ in _rows(page)),
                timeout=60,
                what="the purged group to leave the page",
                describe=lambda: str(_rows(page)),
            )
            es_before = {k: v for k, v in before.items() if k[0] == es}
            assert _rows(page) == es_before and _cli(d.env) == es_before
            # nothing left to re-drive for it: refused, nothing runs
            page.page.select_option("#dlq-redrive-group", value=hdfs)
            page.click("dlq-redrive")
            refused = page.page.locator('#action-log li[data-refused="dlq-redrive"]')
            wait_until(lambda: refused.count() == 1, timeout=30, what="a refused re-drive")
            assert f"no dead letters of {hdfs}" in refused.inner_text()

            # re-drive the indexer's: a dry run, its numbers in the confirmation, the run
            page.page.select_option("#dlq-redrive-group", value=es)
            page.click("dlq-redrive")
            dry = _entry(page, rf"re-drive {re.escape(es)} \(dry run\)")
            assert f"would re-drive {VALID + 5} dead letters of {es}" in dry, dry
            text = _entry(page, f"re-drive {re.escape(es)}", timeout=400)
            assert f"re-drove {VALID} dead letters of {es}, 5 failed again" in text, text
            asked = [message for kind, message in dialogs if kind == "confirm"]
            assert any(f"would re-drive {VALID + 5}" in m for m in asked), asked
            assert not [d for d in dialogs if d[0] == "alert"], "a record ran a script"
            assert set(ps.es_ids(stack, names)) == valid
            # the malformed ones failed again: dead-lettered once more, attempt 2
            again = {**expected, (es, "not_json"): 6, (es, "invalid_utf8"): 4}
            del again[(hdfs, "not_json")], again[(hdfs, "invalid_utf8")]
            wait_until(
                lambda: _counts(_rows(page)) == again,
                timeout=60,
                what="the failed-again dead letters counted",
                describe=lambda: str(_rows(page)),
            )
            assert _rows(page) == _cli(d.env)
            page.shot("dashboard-dead-letters-redriven")
            # the browser logs the refused request's 409 itself; nothing else went wrong
            conflict = "the server responded with a status of 409 (Conflict)"
            assert [e for e in page.errors if conflict not in e] == [], page.errors


def test_a_redrive_from_the_page_into_a_sink_that_is_down_holds_until_stopped(
    stack: Settings,
    names: Names,
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    # this dashboard (its workers and its re-drives) finds nothing on Elasticsearch's port
    es = names.es_group
    with running_dashboard(stack, names, tmp_path / "logs", rate=0, es_port=free_port()) as d:
        _inject_es_dead_letters(stack, names)
        with open_page(browser, d) as page:
            wait_until(
                lambda: _counts(_rows(page)) == {(es, "es_rejected"): VALID},
                timeout=120,
                what="the injected dead letters on the page",
                describe=lambda: str(_rows(page)),
            )
            page.page.select_option("#dlq-redrive-group", value=es)
            page.click("dlq-redrive")
            _entry(page, rf"re-drive {re.escape(es)} \(dry run\)")
            running = page.page.locator('#action-log li[data-state="running"]').filter(
                has_text=f" re-drive {es}: running"
            )
            wait_until(
                lambda: running.count() == 1 and HOLDING in running.inner_text(),
                timeout=240,
                what="the re-drive to say it holds and retries",
                describe=lambda: "\n".join(page.page.locator("#action-log li").all_inner_texts()),
            )
            assert "retrying with backoff" in running.inner_text()
            page.shot("dashboard-dead-letters-holding")
            progress = committed(stack, f"{es}.redrive", names.dlq_topic, stack.partitions)
            assert not any(progress.values()), "nothing is committed while the sink is down"

            page.click("dlq-stop")
            _entry(page, f"stop the re-drive of {re.escape(es)}")
            text = _entry(page, f"re-drive {re.escape(es)}", timeout=120, state="failed")
            assert "run it again to finish the round" in text, text
            progress = committed(stack, f"{es}.redrive", names.dlq_topic, stack.partitions)
            assert not any(progress.values())
            assert _counts(_rows(page)) == {(es, "es_rejected"): VALID}
