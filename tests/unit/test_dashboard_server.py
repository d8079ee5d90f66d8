"""The dashboard's server without services: pushed state, action refusals, reports.

A replay refused while the group has members needs a real group: see
tests/integration/test_dashboard.py (the replay test clicks it first).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from clickfan.app.dashboard.actions import ActionLog, Actions, ManagedApps, Refused
from clickfan.app.dashboard.server import Dashboard, render_report
from clickfan.app.dashboard.state import Reading
from clickfan.settings import Settings


class FixedReader:
    """Returns the same (empty) reading each time, counting the reads."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self) -> Reading:
        self.reads += 1
        return Reading(
            at_ms=1_000 * self.reads,
            topic="click-logs",
            dlq_topic="click-logs.dlq",
            partitions=[],
            brokers={1: True},
            groups=[],
            elastic=None,
            hdfs=None,
            dead_letters={},
            dlq_records=0,
        )


def _dashboard(tmp_path: Path, local: bool = True) -> Dashboard:
    log = ActionLog()
    actions = Actions(Settings(home=tmp_path), ManagedApps([], None), log, lambda: local)
    return Dashboard(FixedReader(), actions, log, 0.05, tmp_path / "reports")


def _run(dashboard: Dashboard, test: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(dashboard.app())) as client:
            await test(client)

    asyncio.run(main())


async def _token(client: TestClient) -> str:
    page = await (await client.get("/")).text()
    match = re.search(r'name="clickfan-token" content="([^"]+)"', page)
    assert match, "the page carries no token"
    return match.group(1)


async def _post(
    client: TestClient, kind: str, body: Any, headers: dict[str, str]
) -> tuple[int, str]:
    response = await client.post(f"/api/actions/{kind}", json=body, headers=headers)
    return response.status, (await response.json()).get("error", "")


def test_state_is_pushed_by_server_sent_events_and_served_as_json(tmp_path: Path) -> None:
    dashboard = _dashboard(tmp_path)

    async def test(client: TestClient) -> None:
        response = await client.get("/api/events")
        assert response.headers["Content-Type"] == "text/event-stream"
        events = []
        while len(events) < 2:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
        assert events[1]["at"] > events[0]["at"]  # a new reading each interval
        assert events[0]["brokers"] == [{"id": 1, "up": True}]
        state = await (await client.get("/api/state")).json()
        assert state["topic"]["name"] == "click-logs"
        history = await (await client.get("/api/history")).json()
        assert len(history) >= 2 and history[-1]["t"] >= events[1]["at"]

    _run(dashboard, test)


def test_action_refusals(tmp_path: Path) -> None:
    dashboard = _dashboard(tmp_path)

    async def test(client: TestClient) -> None:
        token = await _token(client)
        stop_es = {"name": "elasticsearch", "verb": "stop"}
        origin = f"http://{client.host}:{client.port}"
        ok = {"X-Clickfan-Token": token, "Origin": origin}

        status, error = await _post(client, "service", stop_es, {"Origin": origin})
        assert (status, "missing confirmation token" in error) == (403, True)
        status, error = await _post(
            client, "service", stop_es, {"X-Clickfan-Token": "forged", "Origin": origin}
        )
        assert (status, "wrong confirmation token" in error) == (403, True)
        status, error = await _post(
            client, "service", stop_es, {**ok, "Origin": "http://evil.example"}
        )
        assert (status, "cross-site" in error) == (403, True)
        # DNS rebinding: another name for this address
        status, error = await _post(
            client, "service", stop_es, {**ok, "Host": f"evil.example:{client.port}"}
        )
        assert (status, "unexpected Host" in error) == (403, True)

        status, error = await _post(client, "service", {"name": "namenode", "verb": "stop"}, ok)
        assert (status, "unknown service 'namenode'" in error) == (404, True)
        status, error = await _post(client, "service", {"name": "datanode", "verb": "kill"}, ok)
        assert status == 400 and "datanode can be: start, stop" in error
        status, error = await _post(client, "reboot", {}, ok)
        assert status == 404 and "unknown action 'reboot'" in error
        status, error = await _post(client, "worker", {"name": "es-indexer", "verb": "stop"}, ok)
        assert status == 404 and "this dashboard runs: none" in error
        status, error = await _post(client, "producer", {"rate": 10}, ok)
        assert status == 404 and "runs no producer" in error
        status, error = await _post(client, "replay", {"group": "someone-else", "to": "x"}, ok)
        assert status == 404 and "unknown group 'someone-else'" in error
        status, error = await _post(client, "experiment", {"name": "acks"}, ok)
        assert status == 404 and "unknown quick experiment 'acks'" in error  # not a quick one
        status, error = await _post(client, "service", ["not", "an", "object"], ok)
        assert status == 400 and "JSON object" in error
        # nothing ran
        assert dashboard.log.to_json() == []

    _run(dashboard, test)


def test_services_cannot_be_stopped_unless_the_stack_is_local(tmp_path: Path) -> None:
    dashboard = _dashboard(tmp_path, local=False)

    async def test(client: TestClient) -> None:
        headers = {"X-Clickfan-Token": await _token(client)}
        status, error = await _post(
            client, "service", {"name": "elasticsearch", "verb": "stop"}, headers
        )
        assert status == 403 and "native stack" in error
        meta = await (await client.get("/api/meta")).json()
        assert meta["actions"]["services"] == [] and meta["actions"]["workers"] == []

    _run(dashboard, test)


def test_actions_only_from_the_loopback_address(tmp_path: Path) -> None:
    dashboard = _dashboard(tmp_path)
    token = dashboard.issue_token()
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: {
        "peername": ("192.0.2.7", 40000),
        "sockname": ("0.0.0.0", 8080),
    }.get(key, default)
    request = make_mocked_request(
        "POST",
        "/api/actions/service",
        headers={"Host": "127.0.0.1:8080", "X-Clickfan-Token": token},
        transport=transport,
    )
    try:
        dashboard.check_request(request)
    except Refused as exc:
        assert exc.status == 403 and "only taken from 127.0.0.1 (not 192.0.2.7)" in str(exc)
    else:
        raise AssertionError("a request from 192.0.2.7 was accepted")
    # and such a page is offered none
    page = make_mocked_request("GET", "/api/meta", transport=transport)
    meta = json.loads(asyncio.run(dashboard.api_meta(page)).text)
    assert meta["actions"]["services"] == [] and meta["actions"]["groups"] == []
    local = make_mocked_request(
        "GET",
        "/api/meta",
        transport=mock.Mock(**{"get_extra_info.return_value": ("127.0.0.1", 40000)}),
    )
    assert json.loads(asyncio.run(dashboard.api_meta(local)).text)["actions"]["services"]


def test_reports_are_listed_and_rendered_with_their_plots(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "fanout-20260101-120000"
    folder.mkdir(parents=True)
    (folder / "report.md").write_text(
        "# fan-out\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![lag](lag.png)\n\n<script>x()</script>\n"
    )
    (folder / "lag.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "reports" / "not-a-report").mkdir()
    dashboard = _dashboard(tmp_path)

    async def test(client: TestClient) -> None:
        listing = await (await client.get("/api/reports")).json()
        assert [(r["name"], r["title"]) for r in listing["reports"]] == [
            ("fanout-20260101-120000", "fan-out")
        ]
        html = (await (await client.get("/api/reports/fanout-20260101-120000")).json())["html"]
        assert "<table>" in html
        assert '<img src="/reports/fanout-20260101-120000/lag.png" alt="lag"' in html
        assert "<script>" not in html and "&lt;script&gt;" in html
        plot = await client.get("/reports/fanout-20260101-120000/lag.png")
        assert plot.status == 200 and await plot.read() == b"\x89PNG fake"
        assert (await client.get("/reports/fanout-20260101-120000/report.md")).status == 404
        assert (await client.get("/reports/..%2F..%2Fetc/passwd")).status == 404
        assert (await client.get("/api/reports/not-a-report")).status == 404

    _run(dashboard, test)


def test_render_report_keeps_absolute_image_links() -> None:
    html = render_report("![x](https://example.org/a.png)", "r")
    assert 'src="https://example.org/a.png"' in html


def test_a_busy_port_is_one_clear_message(tmp_path: Path) -> None:
    from clickfan.app.dashboard import commands
    from clickfan.errors import ClickfanError

    async def main() -> None:
        runner = web.AppRunner(web.Application())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            settings = Settings(home=tmp_path)
            await commands._start(settings, ManagedApps([], None), "127.0.0.1", port)
        except ClickfanError as exc:
            assert f"cannot serve the dashboard on 127.0.0.1:{port}: the port is taken" in str(exc)
            assert "CLICKFAN_DASHBOARD_PORT" in str(exc)
        else:
            raise AssertionError("a taken port was not reported")
        finally:
            await runner.cleanup()

    asyncio.run(main())
