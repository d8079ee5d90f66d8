"""Kafka client settings from one client-properties file, in the Java clients' own format.

The file `kafka-console-producer --producer.config` and `--command-config` take
is the one every clickfan component reads (`--kafka-config FILE` or
CLICKFAN_KAFKA_CONFIG), mapped here to confluent-kafka's configuration and to
aiokafka's (and so Faust's) keyword arguments. What is read:

    bootstrap.servers, security.protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
    sasl.mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), sasl.jaas.config
    (PlainLoginModule or ScramLoginModule with username and password),
    ssl.truststore.type=PEM with ssl.truststore.location or ssl.truststore.certificates,
    ssl.keystore.type=PEM with ssl.keystore.location (key and certificate chain in one
    file) and ssl.key.password, ssl.endpoint.identification.algorithm (https or empty)

A key outside this list stops the command with one line naming it (a JKS store, a
Kerberos login, a tuning key): a half-applied security configuration would
connect differently from what the file says, and silently is worse than loudly.

One process is one Kafka identity: a command activates its config once
(`activate`), and every client it makes takes the security settings from it.
Secrets are never printed: `redacted()` is what may be shown.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clickfan.errors import ClickfanError
from clickfan.settings import Settings

# the users of the secure profile, one properties file each under <home>/secure/clients
ROLES = ("admin", "producer", "es-indexer", "hdfs-archiver", "monitor")

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_LOGIN_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
}
KNOWN_KEYS = (
    "bootstrap.servers",
    "security.protocol",
    "sasl.mechanism",
    "sasl.jaas.config",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
)
SECRET_KEYS = ("sasl.jaas.config", "ssl.key.password", "ssl.truststore.certificates")


class KafkaConfigError(ClickfanError):
    """A client-properties file clickfan cannot use as written; one line says why."""

    exit_code = 2


@dataclass(frozen=True)
class KafkaClientConfig:
    bootstrap_servers: str = ""  # empty: the caller's default (the local stack)
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""  # PEM
    ca_pem: str = field(default="", repr=False)  # inline PEM (ssl.truststore.certificates)
    keystore_file: str = ""  # PEM: private key and certificate chain, for mutual TLS
    key_password: str = field(default="", repr=False)
    check_hostname: bool = True
    source: str = ""  # where it was read from, for messages

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def confluent(self, bootstrap: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """confluent-kafka (librdkafka) configuration for ``bootstrap``, plus ``extra``."""
        conf: dict[str, Any] = {"bootstrap.servers": bootstrap}
        if self.security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.security_protocol.lower()
        if self.uses_sasl:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.username
            conf["sasl.password"] = self.password
        if self.uses_ssl:
            if self.ca_file:
                conf["ssl.ca.location"] = self.ca_file
            if self.ca_pem:
                conf["ssl.ca.pem"] = self.ca_pem
            if self.keystore_file:
                # librdkafka reads the key and the certificate from the same PEM file
                conf["ssl.key.location"] = self.keystore_file
                conf["ssl.certificate.location"] = self.keystore_file
                if self.key_password:
                    conf["ssl.key.password"] = self.key_password
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.check_hostname else "none"
            )
        conf.update(extra or {})
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context aiokafka and Faust take; None without TLS."""
        if not self.uses_ssl:
            return None
        try:
            context = ssl.create_default_context(
                cafile=self.ca_file or None, cadata=self.ca_pem or None
            )
            context.check_hostname = self.check_hostname
            if self.keystore_file:
                context.load_cert_chain(self.keystore_file, password=self.key_password or None)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise KafkaConfigError(f"{self._where()}: cannot load the TLS files: {exc}") from None
        return context

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients (security only; add bootstrap_servers)."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_ssl:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password
        return kwargs

    def faust_credentials(self) -> Any:
        """Faust's broker_credentials, or None for plaintext."""
        import faust  # imported here: the foundation does not pull Faust into every command

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context(),
            )
        if self.uses_ssl:
            return faust.SSLCredentials(self.ssl_context())
        return None

    def redacted(self) -> dict[str, str]:
        """What may be shown: no password, no key password, no inline certificate."""
        shown = {
            "bootstrap.servers": self.bootstrap_servers or "(default)",
            "security.protocol": self.security_protocol,
        }
        if self.uses_sasl:
            shown["sasl.mechanism"] = self.sasl_mechanism
            shown["username"] = self.username
            shown["password"] = "[hidden]"
        if self.uses_ssl:
            shown["ssl.truststore"] = self.ca_file or ("(inline)" if self.ca_pem else "(system)")
            if self.keystore_file:
                shown["ssl.keystore"] = self.keystore_file
        if self.source:
            shown["file"] = self.source
        return shown

    def _where(self) -> str:
        return self.source or "Kafka client config"


PLAINTEXT = KafkaClientConfig()


# ----------------------------------------------------------- Java properties


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def parse_properties(text: str) -> list[tuple[int, str, str]]:
    """(line number, key, value) in file order, read as java.util.Properties reads them."""
    entries: list[tuple[int, str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number = i + 1
        logical = lines[i].lstrip(" \t\f")
        i += 1
        if not logical or logical[0] in "#!":
            continue
        # a line ending in an odd number of backslashes continues on the next one
        while _continues(logical) and i < len(lines):
            logical = logical[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        if _continues(logical):
            logical = logical[:-1]
        key, value = _split(logical)
        entries.append((number, _unescape(key), _unescape(value)))
    return entries


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split(line: str) -> tuple[str, str]:
    j = 0
    while j < len(line):
        ch = line[j]
        if ch == "\\":
            j += 2
            continue
        if ch in "=: \t\f":
            break
        j += 1
    key = line[:j]
    rest = line[j:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


def _unescape(raw: str) -> str:
    out: list[str] = []
    j = 0
    while j < len(raw):
        ch = raw[j]
        if ch != "\\" or j + 1 >= len(raw):
            out.append(ch)
            j += 1
            continue
        nxt = raw[j + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[j + 2 : j + 6] or ""):
            out.append(chr(int(raw[j + 2 : j + 6], 16)))
            j += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        j += 2
    return "".join(out)


_JAAS = re.compile(
    r"\s*(?P<module>[A-Za-z0-9_.$]+)\s+(?P<flag>required|requisite|sufficient|optional)"
    r"(?P<options>.*?);?\s*",
    re.S,
)
_OPTION = re.compile(r'\s*([A-Za-z0-9_.\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s";]+))', re.S)


def parse_jaas(value: str) -> tuple[str, dict[str, str]]:
    """(login module, options) of a one-entry sasl.jaas.config; ValueError when malformed."""
    match = _JAAS.fullmatch(value)
    if match is None:
        raise ValueError('expected \'<LoginModule> required username=".." password="..";\'')
    options: dict[str, str] = {}
    rest = match["options"]
    pos = 0
    while pos < len(rest) and rest[pos:].strip():
        option = _OPTION.match(rest, pos)
        if option is None:
            raise ValueError('an option is not name=value or name="value"')
        quoted, bare = option[2], option[3]
        options[option[1]] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        pos = option.end()
    return match["module"], options


def read_config(path: Path, bootstrap_default: str = "") -> KafkaClientConfig:
    """The client config in ``path``; KafkaConfigError (one line) on anything unusable."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise KafkaConfigError(f"cannot read the Kafka client config {where}: {reason}") from None
    return config_from_text(text, where, bootstrap_default)


def config_from_text(text: str, where: str, bootstrap_default: str = "") -> KafkaClientConfig:
    values: dict[str, str] = {}
    for number, key, value in parse_properties(text):
        if key not in KNOWN_KEYS:
            raise KafkaConfigError(
                f"{where} line {number}: unsupported key {key!r} (clickfan reads "
                f"{', '.join(KNOWN_KEYS)})"
            )
        values[key] = value.strip()

    def fail(key: str, why: str) -> KafkaConfigError:
        return KafkaConfigError(f"{where}: {key}: {why}")

    protocol = values.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise fail("security.protocol", f"expected one of {', '.join(PROTOCOLS)}")
    config: dict[str, Any] = {
        "bootstrap_servers": values.get("bootstrap.servers", "") or bootstrap_default,
        "security_protocol": protocol,
        "source": where,
    }
    bootstrap = config["bootstrap_servers"]
    if bootstrap and not re.fullmatch(r"[^\s,]+:\d{1,5}(,[^\s,]+:\d{1,5})*", bootstrap):
        raise fail("bootstrap.servers", "expected host:port[,host:port...]")
    if protocol.startswith("SASL_"):
        config.update(_sasl(values, fail))
    if protocol in ("SSL", "SASL_SSL"):
        config.update(_tls(values, fail, Path(where).parent))
    return KafkaClientConfig(**config)


def _sasl(values: dict[str, str], fail: Any) -> dict[str, Any]:
    mechanism = values.get("sasl.mechanism", "GSSAPI").upper()
    if mechanism not in MECHANISMS:
        raise fail("sasl.mechanism", f"{mechanism!r} is not supported; use {', '.join(MECHANISMS)}")
    jaas = values.get("sasl.jaas.config")
    if not jaas:
        raise fail("sasl.jaas.config", "missing: SASL needs a username and a password")
    try:
        module, options = parse_jaas(jaas)
    except ValueError as exc:
        raise fail("sasl.jaas.config", str(exc)) from None
    if mechanism not in _LOGIN_MODULES.get(module, ()):
        raise fail("sasl.jaas.config", f"login module {module!r} does not do {mechanism}")
    if not options.get("username") or "password" not in options:
        raise fail("sasl.jaas.config", 'needs username=".." and password=".."')
    return {
        "sasl_mechanism": mechanism,
        "username": options["username"],
        "password": options["password"],
    }


def _tls(values: dict[str, str], fail: Any, base: Path) -> dict[str, Any]:
    def located(key: str) -> str:
        try:
            path = Path(values[key]).expanduser()
        except RuntimeError:  # ~user of a user this machine does not know
            raise fail(key, f"cannot expand {values[key]!r}") from None
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise fail(key, f"no such file: {str(path)!r}")
        return str(path)

    config: dict[str, Any] = {}
    if "ssl.truststore.location" in values or "ssl.truststore.certificates" in values:
        if values.get("ssl.truststore.type", "JKS").upper() != "PEM":
            raise fail("ssl.truststore.type", "only PEM is supported (convert JKS/PKCS12 to PEM)")
        if "ssl.truststore.location" in values:
            config["ca_file"] = located("ssl.truststore.location")
        if "ssl.truststore.certificates" in values:
            config["ca_pem"] = values["ssl.truststore.certificates"]
    if "ssl.keystore.location" in values:
        if values.get("ssl.keystore.type", "JKS").upper() != "PEM":
            raise fail("ssl.keystore.type", "only PEM is supported (convert JKS/PKCS12 to PEM)")
        config["keystore_file"] = located("ssl.keystore.location")
        config["key_password"] = values.get("ssl.key.password", "")
    algorithm = values.get("ssl.endpoint.identification.algorithm", "https").lower()
    if algorithm not in ("https", ""):
        raise fail("ssl.endpoint.identification.algorithm", "expected https or empty")
    config["check_hostname"] = algorithm == "https"
    return config


# ------------------------------------------------------------------ refusals

# Broker error codes that no retry can fix: the ACLs say no.
AUTHORIZATION_CODES = (
    "TOPIC_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
)


# What a group's coordinator answers while __consumer_offsets is created and loaded, or
# while the coordinator moves to another broker: asked again, for a bounded time
# (librdkafka marks only some of these retriable). By KafkaError.name().
COORDINATOR_NOT_READY = frozenset(
    {"COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR", "_TIMED_OUT"}
)


def refusal(name: str, text: str, protocol: str = "") -> str | None:
    """A one-line reason when a client error means "refused", never to be cured by retrying.

    ``name``/``text``: a KafkaError's name() and str() (librdkafka), or an aiokafka
    exception's class name and message. None for everything else (a broker away, say).
    """
    lowered = text.lower()
    if name in ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "SaslAuthenticationFailed"):
        return f"authentication refused: {_short(text)}"
    if name in AUTHORIZATION_CODES or name.endswith("AuthorizationFailedError"):
        return f"not authorised by the broker's ACLs ({name}): {_short(text)}"
    if name == "_SSL" or "certificate verify failed" in lowered or "ssl routines" in lowered:
        return f"TLS handshake failed: {_short(text)}"
    return None


def _short(text: str) -> str:
    # librdkafka's hints about ca-certificates packages are not ours to give
    return text.split(", verify that ssl.ca.location")[0].strip()


def connection_hint(text: str, protocol: str) -> str | None:
    """What a librdkafka "Disconnected" log line says about a wrong security setting.

    Only a hint: a broker going away looks the same, so it is used only when no
    broker could be reached at all.
    """
    if "Disconnected" not in text:
        return None
    if "APIVERSION_QUERY" in text and protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        # a TLS listener closes a connection whose first bytes are not a TLS hello
        return (
            f"every broker closed the connection at the first request: security.protocol is "
            f"{protocol}; does the listener want SSL or SASL_SSL (--kafka-config)?"
        )
    if "in state UP" in text and protocol in ("PLAINTEXT", "SSL"):
        # a SASL listener closes a connection that sends requests without authenticating
        return (
            f"every broker closed the connection once requests began: security.protocol is "
            f"{protocol}, without credentials; does the listener want SASL (sasl.jaas.config)?"
        )
    return None


class RefusalWatch:
    """Collects a librdkafka client's errors and logs; says the first refusal in one line.

    Pass ``error_cb`` and ``log`` as the client's error_cb and logger (callbacks are
    served on poll()). ``reason``: a definite refusal (stop now); ``hint``: what the
    disconnections suggest, for when nothing could be reached.
    """

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.reason: str | None = None
        self.hint: str | None = None
        self.log = _WatchLogger(self)

    def error_cb(self, err: Any) -> None:
        self.note(err.name(), err.str())

    def note(self, name: str, text: str) -> str | None:
        reason = refusal(name, text, self.protocol)
        if reason is not None and self.reason is None:
            self.reason = reason
        return reason


class _WatchLogger:
    """The least of logging.Logger that librdkafka's `logger` setting calls."""

    def __init__(self, watch: RefusalWatch) -> None:
        self._watch = watch

    def log(self, level: int, msg: str, *args: object) -> None:
        text = msg % args if args else msg
        hint = connection_hint(text, self._watch.protocol)
        if hint is not None:
            self._watch.hint = hint


# ------------------------------------------------------------- one identity


def config_path(settings: Settings, role: str) -> Path | None:
    """CLICKFAN_KAFKA_CONFIG when given; on a secure local stack, the role's own file."""
    if settings.kafka_config:
        return Path(settings.kafka_config).expanduser()
    if settings.secure:
        return clients_dir(settings) / f"{role}.properties"
    return None


def clients_dir(settings: Settings) -> Path:
    return settings.home / "secure" / "clients"


def for_role(settings: Settings, role: str) -> KafkaClientConfig:
    path = config_path(settings, role)
    if path is None:
        return PLAINTEXT
    if not path.exists() and not settings.kafka_config:
        raise KafkaConfigError(
            f"the local stack runs the secure profile but {path} is missing: run "
            "`clickfan up --secure` (it writes one client file per user)"
        )
    return read_config(path)


_active: KafkaClientConfig | None = None


def activate(config: KafkaClientConfig) -> KafkaClientConfig:
    """Make ``config`` the identity of every Kafka client this process makes from now on."""
    global _active
    _active = config
    return config


def active() -> KafkaClientConfig:
    """The identity activated; unless a command chose one, CLICKFAN_KAFKA_CONFIG's, or
    on a secure local stack `admin` (operators' commands: experiments, dlq, replay...)."""
    if _active is None:
        from clickfan.settings import load

        return activate(for_role(load(), "admin"))
    return _active


def confluent(bootstrap: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """confluent-kafka configuration for ``bootstrap`` under the active identity."""
    return active().confluent(bootstrap, extra)


def use(settings: Settings, role: str, path: str | None = None) -> Settings:
    """A command's start: ``--kafka-config`` (if given) over CLICKFAN_KAFKA_CONFIG, activated.

    Returns the settings with kafka_config set to the file's absolute path.
    """
    if path:
        settings = settings.with_overrides(kafka_config=str(Path(path).expanduser().resolve()))
    activate(for_role(settings, role))
    return settings


def bootstrap(settings: Settings, given: str | None = None) -> str:
    """--bootstrap-servers, else the config file's bootstrap.servers, else the local stack."""
    return given or active().bootstrap_servers or settings.bootstrap_servers
