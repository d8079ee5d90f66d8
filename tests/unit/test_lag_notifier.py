"""Group status changes: logged always, POSTed to a webhook (a local HTTP server here)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from clickfan.lagmon.notifier import Notifier
from clickfan.lagmon.protocol import GroupStatus, Status


def group(name: str, status: Status) -> GroupStatus:
    return GroupStatus("local", name, status, 1.0, (), 0, None, 12)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_changes_are_posted_and_logged(
    webhook: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    url, received = webhook
    notifier = Notifier(url)
    with caplog.at_level(logging.WARNING, logger="clickfan.lagmon.notifier"):
        assert notifier.observe("local", [group("a", Status.OK), group("b", Status.ERR)])
        assert notifier.observe("local", [group("a", Status.OK), group("b", Status.ERR)]) == []
        notifier.observe("local", [group("a", Status.WARN), group("b", Status.OK)])
    notifier.close()  # waits for the posts
    assert [(n["group"], n["previous_status"], n["status"]) for n in received] == [
        ("b", "OK", "ERR"),
        ("a", "OK", "WARN"),
        ("b", "ERR", "OK"),
    ]
    assert received[0]["cluster"] == "local"
    assert received[0]["result"]["totallag"] == 12
    assert "group b on cluster local: OK -> ERR" in caplog.text


def test_a_group_that_left_starts_afresh() -> None:
    notifier = Notifier()
    notifier.observe("local", [group("a", Status.ERR)])
    notifier.observe("local", [])
    notices = notifier.observe("local", [group("a", Status.ERR)])
    assert [(n["previous_status"], n["status"]) for n in notices] == [("OK", "ERR")]


def test_an_unreachable_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier("http://127.0.0.1:9/nothing-listens-here", timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="clickfan.lagmon.notifier"):
        notifier.observe("local", [group("a", Status.ERR)])
        notifier.close()
    assert "did not take the notice" in caplog.text
