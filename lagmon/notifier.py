"""Tells when a group's status changes: always in the log, and to a webhook if set.

A simplified form of Burrow's HTTP notifier: one JSON notice per change,
POSTed by a background worker so that a slow webhook never holds up the
collector. A group seen for the first time counts as having been OK, so a
monitor that starts on a group already in trouble says so.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import requests

from clickfan.lagmon.protocol import GroupStatus, Status

log = logging.getLogger(__name__)


def notice(status: GroupStatus, previous: Status) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "cluster": status.cluster,
        "group": status.group,
        "status": status.status.name,
        "previous_status": previous.name,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "result": status.to_json(show_all=False),
    }


class Notifier:
    def __init__(self, webhook_url: str = "", timeout_s: float = 5.0) -> None:
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self._last: dict[tuple[str, str], Status] = {}
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lagmon-notifier")

    def observe(self, cluster: str, statuses: list[GroupStatus]) -> list[dict[str, Any]]:
        """Take the current status of every group of a cluster; returns the notices sent.

        Groups no longer listed are forgotten, so one that comes back starts afresh.
        """
        last = {g: s for (c, g), s in self._last.items() if c == cluster}
        for group in last:
            del self._last[(cluster, group)]
        notices = []
        for status in statuses:
            previous = last.get(status.group, Status.OK)
            self._last[(cluster, status.group)] = status.status
            if status.status != previous:
                notices.append(self._send(status, previous))
        return notices

    def _send(self, status: GroupStatus, previous: Status) -> dict[str, Any]:
        body = notice(status, previous)
        log.warning(
            "group %s on cluster %s: %s -> %s (total lag %d)",
            status.group,
            status.cluster,
            previous.name,
            status.status.name,
            status.totallag,
        )
        if self.webhook_url:
            self._sender.submit(self._post, body)
        return body

    def close(self) -> None:
        self._sender.shutdown(wait=True)

    def _post(self, body: dict[str, Any]) -> None:
        try:
            response = requests.post(self.webhook_url, json=body, timeout=self.timeout_s)
            response.raise_for_status()
        except requests.RequestException as exc:
            log.warning("webhook %s did not take the notice: %s", self.webhook_url, exc)
