"""The one place where Elasticsearch and WebHDFS clients are made, for every caller.

Sinks, experiments, the dashboard, the stack's health checks and the tests all
take their clients from here, so a cluster we do not run (several node URLs,
an API key or a user and password, a private CA, an HA pair of NameNodes) is
reached the same way by all of them. Secrets stay :class:`Secret` until the
moment a client sends them; nothing here logs or formats them.
"""

from __future__ import annotations

import base64
import dataclasses
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from hdfs import HdfsError, InsecureClient

from clickfan.errors import ClickfanError
from clickfan.settings import Secret, Settings, read_secret

if TYPE_CHECKING:  # imported where used: `clickfan status` and the like stay light
    from elasticsearch import ApiError, AsyncElasticsearch, Elasticsearch

ES_DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ElasticsearchConnection:
    """Where an Elasticsearch cluster is and how to prove who we are to it."""

    urls: tuple[str, ...]  # nodes, tried in turn; a dead one is skipped for a while
    api_key: Secret = field(default_factory=Secret)  # base64 "id:key" (the API's `encoded`)
    username: str = ""
    password: Secret = field(default_factory=Secret)
    ca_cert: str = ""  # PEM file; empty: the system's CAs
    request_timeout_s: float = ES_DEFAULT_TIMEOUT_S

    @property
    def shown(self) -> str:
        """Where and how, for messages: never a secret."""
        how = "API key" if self.api_key else f"user {self.username}" if self.username else "no auth"
        return f"{','.join(self.urls)} ({how})"


@dataclass(frozen=True)
class WebHdfsConnection:
    urls: tuple[str, ...]  # NameNodes in failover order
    user: str  # simple auth: the user.name every request carries
    ca_cert: str = ""
    request_timeout_s: float = 30.0

    @property
    def shown(self) -> str:
        return f"{';'.join(self.urls)} (user {self.user})"


# The local secure profile (`clickfan up --secure`) keeps its Elasticsearch users'
# passwords here, 0600: a superuser, and the indexer (clicks-* only); and the API key
# the indexer uses by default (made by the superuser, limited as the indexer's role).
ES_ADMIN_USER = "admin"
ES_INDEXER_USER = "es-indexer"


def es_password_file_of(settings: Settings, user: str) -> Path:
    return settings.home / "secure" / "elasticsearch" / f"{user}.password"


def es_api_key_file_of(settings: Settings) -> Path:
    return settings.home / "secure" / "elasticsearch" / f"{ES_INDEXER_USER}.api-key"


def local_ca(settings: Settings) -> Path:
    return settings.home / "secure" / "ca.pem"


def _credentials_given(settings: Settings) -> bool:
    return bool(
        settings.es_api_key
        or settings.es_api_key_file
        or settings.es_username
        or settings.es_password
        or settings.es_password_file
    )


def elasticsearch_connection(
    settings: Settings, timeout_s: float | None = None, *, indexer: bool = False
) -> ElasticsearchConnection:
    """The cluster of ``settings`` with its credentials (an API key wins over a password).

    With none given and the local stack secure: its superuser (password from
    <home>/secure/elasticsearch), or with ``indexer`` the indexer's API key from there.
    """
    if settings.secure and not _credentials_given(settings) and indexer:
        key_file = es_api_key_file_of(settings)
        if not key_file.exists():
            raise ClickfanError(
                f"the indexer's API key {key_file} is missing: `clickfan up --secure` makes "
                "it; or give CLICKFAN_ES_API_KEY(_FILE), or CLICKFAN_ES_USERNAME and a password"
            )
        settings = dataclasses.replace(settings, es_api_key_file=str(key_file))
    elif settings.secure and not _credentials_given(settings):
        settings = dataclasses.replace(
            settings,
            es_username=ES_ADMIN_USER,
            es_password_file=str(es_password_file_of(settings, ES_ADMIN_USER)),
        )
    key = _es_api_key(settings)
    password = Secret() if key else _es_password(settings)
    ca = settings.es_ca_cert or (str(local_ca(settings)) if settings.secure else "")
    return ElasticsearchConnection(
        urls=settings.es_node_urls,
        api_key=key,
        username=settings.es_username if password else "",
        password=password,
        ca_cert=ca,
        request_timeout_s=timeout_s or settings.sink_request_timeout_s,
    )


def _es_api_key(settings: Settings) -> Secret:
    return read_secret(settings.es_api_key, settings.es_api_key_file, "es_api_key")


def _es_password(settings: Settings) -> Secret:
    return read_secret(settings.es_password, settings.es_password_file, "es_password")


# The archive folder's owner in the local secure profile (HDFS permissions on).
HDFS_ARCHIVER_USER = "hdfs-archiver"


def webhdfs_connection(
    settings: Settings, timeout_s: float | None = None, *, archiver: bool = False
) -> WebHdfsConnection:
    """The NameNodes of ``settings``; with ``archiver`` on the local secure stack, as the
    archive's owner (unless CLICKFAN_HDFS_USER names someone else)."""
    user = settings.hdfs_user
    if archiver and settings.secure and user == Settings().hdfs_user:
        user = HDFS_ARCHIVER_USER
    return WebHdfsConnection(
        urls=settings.webhdfs_node_urls,
        user=user,
        ca_cert=settings.webhdfs_ca_cert,
        request_timeout_s=timeout_s or settings.sink_request_timeout_s,
    )


def _es_kwargs(conn: ElasticsearchConnection) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "request_timeout": conn.request_timeout_s,
        # A refused connection moves on to the next node at once (the node is then
        # left out for a while); statuses and timeouts are the caller's to judge.
        "max_retries": len(conn.urls) - 1,
        "retry_on_status": (),
        "retry_on_timeout": False,
    }
    if conn.api_key:
        kwargs["api_key"] = conn.api_key.reveal()
    elif conn.username:
        kwargs["basic_auth"] = (conn.username, conn.password.reveal())
    if conn.ca_cert and any(u.startswith("https://") for u in conn.urls):
        kwargs["ca_certs"] = conn.ca_cert  # the client refuses TLS options for http:// alone
    return kwargs


def elasticsearch_client(conn: ElasticsearchConnection, **extra: Any) -> Elasticsearch:
    from elasticsearch import Elasticsearch

    return Elasticsearch(list(conn.urls), **{**_es_kwargs(conn), **extra})


def async_elasticsearch_client(conn: ElasticsearchConnection, **extra: Any) -> AsyncElasticsearch:
    from elasticsearch import AsyncElasticsearch

    return AsyncElasticsearch(list(conn.urls), **{**_es_kwargs(conn), **extra})


class _Session(requests.Session):
    """A session whose CA is its own: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE of the
    environment override ``session.verify``, so the CA is passed with every request."""

    def __init__(self, ca_cert: str) -> None:
        super().__init__()
        self.ca_cert = ca_cert

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> requests.Response:
        if self.ca_cert:
            kwargs.setdefault("verify", self.ca_cert)
        return super().request(method, url, **kwargs)


def webhdfs_client(conn: WebHdfsConnection) -> InsecureClient:
    """HdfsCLI's client over every NameNode: it moves to the next on a refused connection
    or a StandbyException, and keeps using the one that answered."""
    session = _Session(conn.ca_cert)
    return InsecureClient(
        ";".join(conn.urls), user=conn.user, timeout=conn.request_timeout_s, session=session
    )


class HttpNodes:
    """Plain HTTP calls (``_count``, JMX, WebHDFS JSON) to the first node that answers.

    For the callers that read a number or two with ``requests`` rather than a
    client: the dashboard, the demo, the health checks, test clean-up.
    """

    def __init__(self, urls: Iterable[str], session: requests.Session) -> None:
        self.urls = tuple(urls)
        self.session = session

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        last: Exception | None = None
        for url in self.urls:
            try:
                response = self.session.request(method, f"{url}{path}", **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
                continue
            if response.status_code == 403 and "StandbyException" in response.text:
                last = requests.HTTPError(f"{url} is a standby NameNode", response=response)
                continue
            return response
        assert last is not None
        raise last

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()


def elasticsearch_http(conn: ElasticsearchConnection) -> HttpNodes:
    session = _Session(conn.ca_cert)
    if conn.api_key:
        session.headers["Authorization"] = f"ApiKey {conn.api_key.reveal()}"
    elif conn.username:
        token = base64.b64encode(f"{conn.username}:{conn.password.reveal()}".encode()).decode()
        session.headers["Authorization"] = f"Basic {token}"
    return HttpNodes(conn.urls, session)


def webhdfs_http(conn: WebHdfsConnection) -> HttpNodes:
    session = _Session(conn.ca_cert)
    session.params = {"user.name": conn.user}
    return HttpNodes(conn.urls, session)


def speaks_tls(url: str, timeout_s: float = 3.0) -> bool:
    """Whether an http:// URL's port completes a TLS handshake (a plaintext client on
    a TLS port only sees the connection closed, like a node that is down)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        return False
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asking whether it speaks TLS at all
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout_s) as raw:
            with context.wrap_socket(raw, server_hostname=parts.hostname):
                return True
    except (OSError, ssl.SSLError):
        return False


class Refused(ClickfanError):
    """The cluster refuses us for good (credentials, a privilege, a certificate): retrying
    cannot help, so the worker stops with the reason (exit 1, offsets not committed) for
    an operator to fix, instead of waiting silently."""


def refusal(exc: BaseException, system: str) -> Refused | None:
    """A one-line :class:`Refused` when ``exc`` is a refusal that no retry can fix, else None."""
    import elasticsearch as es_errors

    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, es_errors.AuthenticationException):
        return Refused(
            f"{system} refused our credentials (401): check CLICKFAN_ES_API_KEY(_FILE), or "
            "CLICKFAN_ES_USERNAME and CLICKFAN_ES_PASSWORD(_FILE)"
        )
    if isinstance(exc, es_errors.AuthorizationException):
        return Refused(f"{system} does not allow it (403): {_es_reason(exc)}")
    if isinstance(exc, es_errors.SSLError) or _is_tls_failure(exc):
        return Refused(f"TLS with {system} failed: {_tls_reason(exc, system)}")
    if isinstance(exc, HdfsError) and getattr(exc, "exception", None) == "AccessControlException":
        first = str(exc).splitlines()[0] if str(exc) else "permission denied"
        return Refused(f"{system} does not allow it: {first[:300]}")
    return None


def _es_reason(exc: ApiError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error", {})
    reason = error.get("reason") if isinstance(error, dict) else None
    return str(reason or exc.message)[:300]


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (causes, contexts, the transport's ``errors``), bounded."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 12:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [e for e in getattr(current, "errors", ()) if isinstance(e, BaseException)]
        todo += [a for a in current.args if isinstance(a, BaseException)]
    return seen


def _is_tls_failure(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLError | requests.exceptions.SSLError) for e in _chain(exc))


def _tls_reason(exc: BaseException, system: str) -> str:
    text = " ".join(str(e) for e in _chain(exc))
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        why = text.split("certificate verify failed:", 1)[-1].split(" (_ssl")[0].split(")")[0]
        why = why.strip(" '\"") or "unknown CA"
        variable = (
            "CLICKFAN_ES_CA_CERT" if "Elasticsearch" in system else "CLICKFAN_WEBHDFS_CA_CERT"
        )
        return f"the server's certificate is not trusted ({why}): give its CA with {variable}"
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return "the server does not speak TLS on that port: use http://, or the TLS port"
    return text.splitlines()[0][:300] if text else type(exc).__name__


def plaintext_on_tls(conn_urls: Iterable[str]) -> Refused | None:
    """A Refused if an http:// URL points at a port that speaks TLS."""
    for url in conn_urls:
        if speaks_tls(url):
            https = "https://" + url.removeprefix("http://")
            return Refused(
                f"{url} answers only TLS, and a plaintext client is refused there: use {https}"
            )
    return None
