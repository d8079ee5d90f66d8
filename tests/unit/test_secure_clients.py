"""Client settings for clusters we do not run, secrets kept out of sight, refusals named.

Pure: no service is reached (the one TLS probe talks to a socket of this test).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import elasticsearch
import pytest
import requests
from aiohttp import web
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from hdfs import HdfsError

from clickfan.errors import ClickfanError
from clickfan.lagmon.httpauth import HttpSecurity, is_loopback, presented_token
from clickfan.settings import Secret, SettingsError, load
from clickfan.sinks import clients
from clickfan.streams import configs

SECRET = "s3cr3t-Very-Unlikely-Value"


def test_es_urls_and_credentials_from_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    settings = load(
        {
            "CLICKFAN_ES_URLS": "https://es-1:9200, https://es-2:9200/",
            "CLICKFAN_ES_API_KEY_FILE": str(key_file),
            "CLICKFAN_ES_CA_CERT": "/etc/ca.pem",
        }
    )
    conn = configs.elasticsearch(settings).connection
    assert conn.urls == ("https://es-1:9200", "https://es-2:9200")
    assert conn.api_key.reveal() == SECRET
    assert conn.ca_cert == "/etc/ca.pem"
    assert settings.es_url == "https://es-1:9200"


def test_a_password_from_the_environment_wins_over_none(tmp_path: Path) -> None:
    settings = load({"CLICKFAN_ES_USERNAME": "ingest", "CLICKFAN_ES_PASSWORD": SECRET})
    conn = clients.elasticsearch_connection(settings)
    assert (conn.username, conn.password.reveal(), conn.api_key) == ("ingest", SECRET, Secret())


def test_an_unreadable_secret_file_is_one_line() -> None:
    settings = load({"CLICKFAN_ES_PASSWORD_FILE": "/nonexistent/pw", "CLICKFAN_ES_USERNAME": "u"})
    with pytest.raises(
        SettingsError, match=r"^CLICKFAN_ES_PASSWORD_FILE='/nonexistent/pw': cannot"
    ):
        clients.elasticsearch_connection(settings)


def test_secrets_are_in_no_repr_of_settings_or_configs(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET)
    settings = load(
        {
            "CLICKFAN_ES_API_KEY": SECRET,
            "CLICKFAN_ES_PASSWORD": SECRET,
            "CLICKFAN_MONITOR_TOKEN": SECRET,
            "CLICKFAN_DASHBOARD_TOKEN": SECRET,
        }
    )
    shown = [
        repr(settings),
        str(settings),
        repr(dataclasses.asdict(settings)),
        repr(configs.elasticsearch(settings)),
        configs.elasticsearch(settings).connection.shown,
        repr(clients.elasticsearch_connection(dataclasses.replace(settings, es_api_key_file=""))),
        repr(HttpSecurity.of(settings, "monitor")),
    ]
    assert all(SECRET not in text for text in shown), [t for t in shown if SECRET in t]
    assert settings.es_api_key.reveal() == SECRET  # kept, only not shown


def test_webhdfs_urls_fail_over_in_order_as_hdfscli_expects() -> None:
    settings = load(
        {"CLICKFAN_WEBHDFS_URLS": "http://nn-1:9870;https://nn-2:9871", "CLICKFAN_HDFS_USER": "arc"}
    )
    client = clients.webhdfs_client(clients.webhdfs_connection(settings))
    assert client.urls == ["http://nn-1:9870", "https://nn-2:9871"]
    assert client._session.params == {"user.name": "arc"}


def test_the_secure_local_stack_defaults_to_its_own_key_users_and_ca(tmp_path: Path) -> None:
    settings = load({"CLICKFAN_HOME": str(tmp_path), "CLICKFAN_SECURE": "1"})
    with pytest.raises(ClickfanError, match="API key .* is missing"):
        configs.elasticsearch(settings)
    key = clients.es_api_key_file_of(settings)
    key.parent.mkdir(parents=True)
    key.write_text(SECRET + "\n")
    conn = configs.elasticsearch(settings).connection
    assert conn.urls[0].startswith("https://")
    assert (conn.api_key.reveal(), conn.username) == (SECRET, "")
    assert conn.ca_cert == str(tmp_path / "secure" / "ca.pem")
    # the indexer's file-realm user, when asked for by name
    pw = clients.es_password_file_of(settings, clients.ES_INDEXER_USER)
    pw.write_text("pw-of-the-user")
    by_user = dataclasses.replace(
        settings, es_username=clients.ES_INDEXER_USER, es_password_file=str(pw)
    )
    conn = configs.elasticsearch(by_user).connection
    assert (conn.username, conn.password.reveal()) == ("es-indexer", "pw-of-the-user")
    assert not conn.api_key
    clients.es_password_file_of(settings, clients.ES_ADMIN_USER).write_text("pw-of-admin")
    admin = clients.elasticsearch_connection(settings)  # everyone else: the superuser
    assert admin.username == clients.ES_ADMIN_USER and not admin.api_key
    assert configs.hdfs(settings).connection.user == clients.HDFS_ARCHIVER_USER


def _api_error(cls: type[elasticsearch.ApiError], status: int) -> elasticsearch.ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.01, NodeConfig("https", "h", 1))
    body = {"error": {"type": "security_exception", "reason": "unable to authenticate user"}}
    return cls(message="security_exception", meta=meta, body=body)


def test_refusals_are_named_and_down_services_are_not() -> None:
    unauthorized = clients.refusal(
        _api_error(elasticsearch.AuthenticationException, 401), "Elasticsearch"
    )
    assert unauthorized is not None and "401" in str(unauthorized)
    forbidden = clients.refusal(
        _api_error(elasticsearch.AuthorizationException, 403), "Elasticsearch"
    )
    assert forbidden is not None and "unable to authenticate user" in str(forbidden)
    denied = HdfsError("Permission denied: user=arc, access=WRITE, inode=/x")
    denied.exception = "AccessControlException"
    assert "Permission denied" in str(clients.refusal(denied, "HDFS"))
    untrusted = requests.exceptions.SSLError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer"
    )
    assert "not trusted" in str(clients.refusal(untrusted, "HDFS"))
    # a node that is down is waited for, not refused
    assert clients.refusal(requests.ConnectionError("refused"), "HDFS") is None
    assert clients.refusal(HdfsError("Cannot create file, safe mode is on"), "HDFS") is None


def test_a_plaintext_url_on_a_tls_port_is_recognised(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def serve_one() -> None:
            conn, _ = server.accept()
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass

        import threading

        thread = threading.Thread(target=serve_one)
        thread.start()
        refused = clients.plaintext_on_tls([f"http://127.0.0.1:{port}"])
        thread.join(10)
    assert refused is not None and f"use https://127.0.0.1:{port}" in str(refused)
    with socket.create_server(("127.0.0.1", 0)) as closed:
        free = closed.getsockname()[1]
    assert clients.plaintext_on_tls([f"http://127.0.0.1:{free}"]) is None


def _self_signed(folder: Path) -> tuple[str, str]:
    from clickfan.compose.native import pki

    settings = load({"CLICKFAN_HOME": str(folder)})
    paths = pki.issue_certificate(settings, "probe", ["127.0.0.1"])
    return str(paths.cert), str(paths.key)


# -- the lag monitor's and dashboard's HTTP guard ------------------------------------------


def test_loopback_is_recognised() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.0.2.2", "::", "example.org"))


def test_binding_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(Exception, match="beyond 127.0.0.1.*CLICKFAN_MONITOR_TOKEN_FILE"):
        HttpSecurity("monitor").check_exposure("0.0.0.0")
    HttpSecurity("monitor").check_exposure("127.0.0.1")
    HttpSecurity("monitor", Secret("t")).check_exposure("0.0.0.0")


def test_the_token_is_read_from_bearer_or_basic() -> None:
    assert presented_token("Bearer abc") == "abc"
    assert presented_token("Basic " + base64.b64encode(b"anyone:abc").decode()) == "abc"
    assert presented_token("Basic !!!") is None
    assert presented_token("") is None


def _non_loopback_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))  # no packet is sent: only picks the route's address
        address = probe.getsockname()[0]
    if is_loopback(address):
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


def test_a_server_bound_to_all_addresses_refuses_requests_without_the_token() -> None:
    address = _non_loopback_address()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="GOOD")

    async def scenario() -> list[int]:
        app = web.Application()
        app.router.add_get("/burrow/admin", hello)
        security = HttpSecurity("monitor", Secret(SECRET))
        security.check_exposure("0.0.0.0")
        security.protect(app)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "0.0.0.0", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://{address}:{port}/burrow/admin"
        basic = base64.b64encode(f"x:{SECRET}".encode()).decode()
        try:
            return [
                (await asyncio.to_thread(requests.get, url, headers=h, timeout=10)).status_code
                for h in (
                    {},
                    {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Bearer {SECRET}"},
                    {"Authorization": f"Basic {basic}"},
                )
            ]
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == [401, 401, 200, 200]


@pytest.mark.parametrize("command", ["monitor", "dashboard"])
def test_clickfan_refuses_to_listen_beyond_loopback_without_a_token(command: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    clickfan = str(Path(sys.executable).with_name("clickfan"))
    result = subprocess.run(
        [clickfan, command, "--host", "0.0.0.0", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "beyond 127.0.0.1" in lines[0], result.stderr


@pytest.mark.parametrize("variable", ["CLICKFAN_ES_URLS", "CLICKFAN_WEBHDFS_URLS"])
def test_a_url_carrying_credentials_is_refused_without_showing_them(variable: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load({variable: f"https://ingest:{SECRET}@es-1:9200"})
    assert variable in str(refused.value) and SECRET not in str(refused.value)
