"""The dashboard's dead letters without services: the counts' JSON, the letters' page,
the refusals, and the actions' child processes (a stand-in for `clickfan`).

The DLQ is a list of records read through streams.dlq.judge, as the real reader does;
reading Kafka, purge positions and the CLI itself are tested on the real stack
(tests/integration/test_dlq_redrive.py, tests/integration/test_dashboard_deadletters.py).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from clickfan.app.dashboard import deadletters as dlmod
from clickfan.app.dashboard.actions import ActionLog, Actions, ManagedApps, Refused
from clickfan.app.dashboard.deadletters import HOLDING, DeadLetters
from clickfan.app.dashboard.server import Dashboard
from clickfan.settings import Settings
from clickfan.streams import dlq as dlqs
from tests.unit.test_dashboard_server import FixedReader

ES, HDFS = "es-indexer", "hdfs-archiver"
HOSTILE = b"<img src=x onerror=alert(1)>"
NOT_UTF8 = b"\xff\xfe<b>\x1b[31m"
T0 = 1_764_000_000_000


def headers(group: str, reason: str, offset: int) -> tuple[tuple[str, bytes], ...]:
    return (
        ("clickfan.error.reason", reason.encode()),
        ("clickfan.error.message", b"why"),
        ("clickfan.source.topic", b"click-logs"),
        ("clickfan.source.partition", b"1"),
        ("clickfan.source.offset", str(offset).encode()),
        ("clickfan.dlq.group", group.encode()),
        ("clickfan.dlq.attempt", b"1"),
    )


class FakeDlq:
    """streams.dlq.read over a list: (partition, offset, time, value, headers)."""

    def __init__(self) -> None:
        self.records: list[tuple[int, int, int, bytes | None, tuple[tuple[str, bytes], ...]]] = []
        self.starts: list[dict[int, int] | None] = []

    def add(self, partition: int, value: bytes | None, hdrs: tuple[tuple[str, bytes], ...]) -> None:
        offset = sum(1 for r in self.records if r[0] == partition)
        self.records.append((partition, offset, T0 + len(self.records) * 1000, value, hdrs))

    def read(
        self,
        bootstrap: str,
        topic: str,
        wanted: dlqs.Filter,
        starts: dict[int, int] | None = None,
        ends: dict[int, int] | None = None,
    ) -> Generator[dlqs.Letter, None, None]:
        self.starts.append(starts)
        if ends is not None:
            for p, o, *_ in self.records:
                ends[p] = max(ends.get(p, 0), o + 1)
        for p, o, ts, value, hdrs in sorted(self.records):
            if starts is not None and o < starts.get(p, 0):
                continue
            letter = dlqs.judge(p, o, ts, b"k", value, hdrs)
            if wanted.matches(letter):
                yield letter


def _setup(
    tmp_path: Path, fake: FakeDlq, command: tuple[str, ...] = ("false",)
) -> tuple[Dashboard, DeadLetters]:
    settings = Settings(home=tmp_path)
    log = ActionLog()
    actions = Actions(settings, ManagedApps([], None), log, lambda: False)
    part = DeadLetters(settings, actions, read=fake.read, command=command)
    dashboard = Dashboard(FixedReader(), actions, log, 0.05, tmp_path / "r", parts=(part,))
    return dashboard, part


def _run(dashboard: Dashboard, test: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(dashboard.app())) as client:
            await test(client)

    asyncio.run(main())


async def _token(client: TestClient) -> dict[str, str]:
    page = await (await client.get("/")).text()
    match = re.search(r'name="clickfan-token" content="([^"]+)"', page)
    assert match
    return {"X-Clickfan-Token": match.group(1)}


def test_counts_are_the_clis_summary_and_only_new_records_are_read(tmp_path: Path) -> None:
    fake = FakeDlq()
    for i in range(3):
        fake.add(i % 2, HOSTILE, headers(ES, "not_json", i))
    fake.add(0, NOT_UTF8, headers(HDFS, "invalid_utf8", 9))
    fake.add(1, b"x", (("other", b"header"),))
    dashboard, part = _setup(tmp_path, fake)

    def full() -> dict[str, Any]:  # what `clickfan dlq --json` prints for the same records
        return dlqs.summary_json(dlqs.summarize(fake.read("", "", dlqs.Filter())))

    async def test(client: TestClient) -> None:
        counts = await (await client.get("/api/deadletters")).json()
        assert counts["groups"] == full()
        assert counts["groups"][ES]["not_json"]["count"] == 3
        assert counts["total"] == 5 and counts["error"] is None
        assert counts["groups"][dlmod.MALFORMED][dlmod.MALFORMED]["count"] == 1

    _run(dashboard, test)

    # new records: the next round reads from where the last one ended, and adds them
    counts = dlmod.DeadLetterCounts("", "click-logs.dlq", fake.read)
    counts.refresh()
    fake.add(0, HOSTILE, headers(ES, "not_json", 7))
    fake.add(1, b"{}", headers(HDFS, "missing_fields", 8))
    fake.starts.clear()
    again = counts.refresh()
    assert fake.starts == [{0: 3, 1: 2}]
    assert again["groups"] == full() and again["total"] == 7
    assert again["groups"][ES]["not_json"]["newest"] == dlqs.show_time(fake.records[5][2])
    # after an action of the page everything is read again
    counts.stale()
    fake.starts.clear()
    assert counts.refresh()["groups"] == full() and fake.starts[0] is None


def test_the_counts_are_pushed_as_server_sent_events(tmp_path: Path) -> None:
    fake = FakeDlq()
    fake.add(0, HOSTILE, headers(ES, "not_json", 1))
    dashboard, part = _setup(tmp_path, fake)
    part.period_s = 0.05

    async def test(client: TestClient) -> None:
        response = await client.get("/api/events")
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("event: deadletters"):
                data = (await response.content.readline()).decode()
                assert '"not_json":{"count":1' in data
                return

    _run(dashboard, test)


def test_letters_are_previewed_escaped_and_paged(tmp_path: Path) -> None:
    fake = FakeDlq()
    for i in range(5):
        fake.add(i % 2, HOSTILE, headers(ES, "not_json", i))
    fake.add(0, NOT_UTF8, headers(ES, "invalid_utf8", 10))
    fake.add(0, b"\x1b[2J", (("clickfan.error.reason", b"\xff"),))
    dashboard, _ = _setup(tmp_path, fake)

    async def test(client: TestClient) -> None:
        ok = await _token(client)
        url = "/api/deadletters/letters"
        # record contents: asked with an action's protections
        refused = await client.get(url, params={"group": ES})
        assert refused.status == 403 and "token" in (await refused.json())["error"]

        asked = {"group": ES, "reason": "not_json", "limit": "2"}
        first = await client.get(url, params=asked, headers=ok)
        body = await first.json()
        assert first.status == 200 and len(body["letters"]) == 2 and body["next"] == "0:1"
        letter = body["letters"][0]
        assert letter["value"] == HOSTILE.decode()  # JSON; the page adds it as text
        assert letter["source"] == {"topic": "click-logs", "partition": 1, "offset": 0}
        assert letter["reason"] == "not_json" and letter["attempt"] == 1
        assert ["clickfan.dlq.group", ES] in letter["headers"]
        seen = [(x["partition"], x["offset"]) for x in body["letters"]]
        while body["next"]:
            params = {"group": ES, "reason": "not_json", "limit": "2", "after": body["next"]}
            body = await (await client.get(url, params=params, headers=ok)).json()
            seen += [(x["partition"], x["offset"]) for x in body["letters"]]
        assert seen == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]  # each once, in order

        bad = await client.get(url, params={"group": ES, "reason": "invalid_utf8"}, headers=ok)
        value = (await bad.json())["letters"][0]["value"]
        assert value == "\\xff\\xfe<b>\\x1b[31m"
        malformed = dlmod.MALFORMED
        odd = await client.get(url, params={"group": malformed, "reason": malformed}, headers=ok)
        [letter] = (await odd.json())["letters"]
        assert letter["problem"] == "header clickfan.error.reason is not UTF-8"
        assert letter["source"] is None
        assert letter["value"] == "\\x1b[2J" and letter["headers"] == [
            ["clickfan.error.reason", "\\xff"]
        ]

        for params, status, words in (
            ({"group": "nobody"}, 404, "no dead letters of 'nobody'"),
            ({"group": ES, "reason": "es_rejected"}, 404, "it has: invalid_utf8, not_json"),
            ({"group": ES, "limit": "0"}, 400, "between 1 and"),
            ({"group": ES, "after": "x"}, 400, "partition:offset"),
        ):
            response = await client.get(url, params=params, headers=ok)
            assert response.status == status and words in (await response.json())["error"]

    _run(dashboard, test)


def test_dead_letter_actions_are_refused_before_anything_runs(tmp_path: Path) -> None:
    fake = FakeDlq()
    fake.add(0, HOSTILE, headers(ES, "not_json", 1))
    dashboard, _ = _setup(tmp_path, fake)

    async def test(client: TestClient) -> None:
        ok = await _token(client)

        async def refused(kind: str, body: dict[str, Any]) -> tuple[int, str]:
            response = await client.post(f"/api/actions/{kind}", json=body, headers=ok)
            return response.status, (await response.json())["error"]

        # the same protections as every action
        response = await client.post("/api/actions/dlq-purge", json={"group": ES})
        assert response.status == 403
        cases = [
            ("dlq-redrive", {"group": "nobody"}, 404, "unknown group 'nobody'"),
            ("dlq-redrive", {"group": ES, "reason": "bad_luck"}, 404, "unknown reason"),
            ("dlq-redrive", {"group": ES, "reason": "empty"}, 409, "it has: not_json"),
            ("dlq-redrive", {"group": HDFS}, 409, f"no dead letters of {HDFS}"),
            ("dlq-redrive", {"group": ES, "since": "soon"}, 400, "since: 'soon' is not a time"),
            ("dlq-purge", {"group": ES}, 400, "before: a time is needed"),
            ("dlq-purge", {"group": HDFS, "before": "now"}, 409, "no dead letters"),
            ("dlq-purge", {"group": "x", "before": "now"}, 404, "unknown group"),
            ("dlq-stop", {"group": ES}, 409, f"no re-drive of {ES} is running"),
        ]
        for kind, body, status, words in cases:
            got = await refused(kind, body)
            assert got[0] == status and words in got[1], (kind, body, got)
        assert dashboard.log.to_json() == []  # nothing ran

    _run(dashboard, test)


FAKE_CLICKFAN = """
import signal, sys, time
print("argv:", " ".join(sys.argv[1:]), flush=True)
if "redrive" in sys.argv and "--dry-run" not in sys.argv:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    print("WARNING index on http://127.0.0.1:1 failed (ConnectionError); "
          "retrying with backoff up to 2s, offsets held", flush=True)
    while True:
        time.sleep(0.1)
print("would re-drive 1 dead letters" if "--dry-run" in sys.argv else "purged 1", flush=True)
"""


def _entry(dashboard: Dashboard, title: str, done: bool = True) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for e in dashboard.log.to_json():
            if e["action"] == title and (e["state"] != "running" or not done):
                if done or e["lines"][-1:] == [HOLDING]:
                    return e
        time.sleep(0.05)
    raise AssertionError(f"no entry {title!r}: {dashboard.log.to_json()}")


def test_actions_run_the_cli_as_a_child_with_its_output_in_the_log(tmp_path: Path) -> None:
    fake = FakeDlq()
    fake.add(0, HOSTILE, headers(ES, "not_json", 1))
    script = tmp_path / "fake_clickfan.py"
    script.write_text(FAKE_CLICKFAN)
    dashboard, part = _setup(tmp_path, fake, (sys.executable, str(script)))
    since_ms = dlqs.parse_time("2026-11-28T10:00")
    topic = "click-logs.dlq"

    dry_title = f"re-drive {ES} reason not_json since {dlqs.show_time(since_ms)} (dry run)"
    entry = dashboard.actions.request(
        "dlq-redrive",
        {"group": ES, "reason": "not_json", "since": "2026-11-28T10:00", "dry_run": 1},
    )
    assert entry.action == dry_title
    done = _entry(dashboard, dry_title)
    assert done["state"] == "ok" and done["lines"] == [
        f"argv: dlq redrive --group {ES} --dlq-topic {topic} --bootstrap-servers "
        f"127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094 --loglevel warning --reason not_json "
        f"--since 2026-11-28T10:00:00.000Z --dry-run",
        "would re-drive 1 dead letters",
    ]

    # a re-drive into a sink that is down: it holds, retries, and says so
    dashboard.actions.request("dlq-redrive", {"group": ES})
    holding = _entry(dashboard, f"re-drive {ES}", done=False)
    assert holding["state"] == "running" and "retrying with backoff" in holding["lines"][-2]
    for kind, body in (
        ("dlq-redrive", {"group": ES}),
        ("dlq-purge", {"group": ES, "before": "now"}),
    ):
        try:
            dashboard.actions.request(kind, body)
        except Refused as exc:
            assert exc.status == 409 and "re-drive of es-indexer is running" in str(exc)
        else:
            raise AssertionError(f"{kind} was not refused while a re-drive runs")
    dashboard.actions.request("dlq-stop", {"group": ES})
    stopped = _entry(dashboard, f"re-drive {ES}")
    assert stopped["state"] == "failed" and stopped["lines"][-1] == "exited with 1"
    assert part.redrives == {} and part.children == set()

    before = "2026-11-28T11:00:00.000Z"
    dashboard.actions.request("dlq-purge", {"group": ES, "before": "2026-11-28T11:00"})
    purged = _entry(dashboard, f"purge {ES} before {before}")
    assert purged["state"] == "ok", purged
    assert purged["lines"][0].startswith(f"argv: dlq purge --group {ES} --yes --dlq-topic {topic}")
    assert purged["lines"][0].endswith(f"--before {before}") and purged["lines"][1] == "purged 1"
