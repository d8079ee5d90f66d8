"""The real lag monitor of the secure stack bound beyond 127.0.0.1: every request needs
the token (it reads Kafka as the profile's `monitor` user)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from clickfan.lagmon.httpauth import is_loopback
from clickfan.settings import Settings
from tests.secure.conftest import secure_env
from tests.support import CLICKFAN, wait_until


def _non_loopback_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))  # sends nothing: picks the route's source address
        address = str(probe.getsockname()[0])
    if is_loopback(address):
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


def _free_port() -> int:
    with socket.create_server(("0.0.0.0", 0)) as s:
        return int(s.getsockname()[1])


def test_the_monitor_on_all_addresses_refuses_requests_without_its_token(
    secure_stack: Settings, tmp_path: Path
) -> None:
    address, port = _non_loopback_address(), _free_port()
    token = "tok-" + os.urandom(12).hex()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    log = tmp_path / "monitor.log"
    env = secure_env(secure_stack, CLICKFAN_MONITOR_TOKEN_FILE=str(token_file))
    with log.open("wb") as out:
        monitor = subprocess.Popen(
            [CLICKFAN, "monitor", "--host", "0.0.0.0", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{address}:{port}"
    try:

        def answers() -> int | None:
            try:
                return requests.get(f"{url}/burrow/admin", timeout=5).status_code
            except requests.ConnectionError:
                return None

        wait_until(answers, 60, "the monitor to answer", log.read_text)
        bearer = {"Authorization": f"Bearer {token}"}
        for path in ("/burrow/admin", "/v3/kafka", "/metrics"):
            assert requests.get(f"{url}{path}", timeout=10).status_code == 401
            wrong = {"Authorization": "Bearer not-it"}
            assert requests.get(f"{url}{path}", headers=wrong, timeout=10).status_code == 401
            assert requests.get(f"{url}{path}", headers=bearer, timeout=10).status_code == 200
        assert requests.get(f"{url}/burrow/admin", auth=("any", token), timeout=10).text == "GOOD"
    finally:
        monitor.send_signal(signal.SIGTERM)
        monitor.wait(timeout=30)
    assert token not in log.read_text()
