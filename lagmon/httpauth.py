"""Who may reach an HTTP server of clickfan (the lag monitor, the dashboard), and over what.

On 127.0.0.1 (the default) they are as open as the machine's own users. Bound
anywhere else they refuse to start without a token (CLICKFAN_<NAME>_TOKEN_FILE,
or CLICKFAN_<NAME>_TOKEN), and every request must then carry it: as
``Authorization: Bearer <token>`` (scripts, Prometheus' ``authorization``) or
as the password of HTTP Basic with any user name (browsers ask for it).
With a certificate and key (CLICKFAN_<NAME>_TLS_CERT/_KEY) they serve HTTPS.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import ssl
from dataclasses import dataclass, field

from aiohttp import web

from clickfan.errors import ClickfanError
from clickfan.settings import Secret, Settings, read_secret

REALM = "clickfan"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True)
class HttpSecurity:
    name: str  # monitor | dashboard: names the CLICKFAN_<NAME>_* settings in messages
    token: Secret = field(default_factory=Secret)
    tls_cert: str = ""
    tls_key: str = ""

    @classmethod
    def of(cls, settings: Settings, name: str) -> HttpSecurity:
        token = read_secret(
            getattr(settings, f"{name}_token"),
            getattr(settings, f"{name}_token_file"),
            f"{name}_token",
        )
        return cls(
            name, token, getattr(settings, f"{name}_tls_cert"), getattr(settings, f"{name}_tls_key")
        )

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def check_exposure(self, host: str) -> None:
        """Refuse to serve beyond loopback without a token (one line, exit 2)."""
        if not self.token and not is_loopback(host):
            var = f"CLICKFAN_{self.name.upper()}_TOKEN"
            raise ClickfanError(
                f"the {self.name} would listen on {host}, beyond 127.0.0.1, open to anyone: "
                f"give it a token ({var}_FILE or {var}) or bind it to 127.0.0.1",
                exit_code=2,
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            var = f"CLICKFAN_{self.name.upper()}_TLS"
            raise ClickfanError(f"{var}_CERT and {var}_KEY go together: give both", exit_code=2)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ClickfanError(
                f"cannot serve the {self.name} over TLS with {self.tls_cert} and "
                f"{self.tls_key}: {exc}",
                exit_code=2,
            ) from None
        return context

    def protect(self, app: web.Application) -> None:
        """Check the token on every request of ``app`` (before its own middlewares)."""
        if self.token:
            app.middlewares.insert(0, _token_middleware(self.token))


def presented_token(header: str) -> str | None:
    """The token of an Authorization header: Bearer's, or Basic's password."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def _token_middleware(token: Secret) -> web.Middleware:
    expected = token.reveal().encode()

    @web.middleware
    async def require_token(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        given = presented_token(request.headers.get("Authorization", ""))
        if given is None or not hmac.compare_digest(given.encode(), expected):
            raise web.HTTPUnauthorized(
                text="a token is required: Authorization: Bearer <token> (or Basic)\n",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}", Bearer realm="{REALM}"'},
            )
        return await handler(request)

    return require_token
