"""A client of a running monitor's HTTP API: the statuses `clickfan lag` shows."""

from __future__ import annotations

import requests

from clickfan.lagmon.protocol import Status
from clickfan.lagmon.reader import Statuses, StatusSource


def monitor_statuses(url: str) -> StatusSource | None:
    """Statuses from a running monitor's API, or None if no monitor answers at url."""
    try:
        if requests.get(f"{url}/burrow/admin", timeout=2).text != "GOOD":
            return None
    except requests.RequestException:
        return None

    def statuses(cluster: str, group: str) -> Statuses:
        try:
            response = requests.get(f"{url}/v3/kafka/{cluster}/consumer/{group}/lag", timeout=10)
        except requests.RequestException:
            return None
        if response.status_code != 200:
            return None  # the monitor does not know this cluster or group (yet)
        body = response.json()["status"]
        return Status[body["status"]], {
            (p["topic"], p["partition"]): Status[p["status"]] for p in body["partitions"]
        }

    return statuses
