"""RabbitMQ and Redis from Debian's packages, started beside the stack on demand.

`clickfan up --with rabbitmq,redis` (or `clickfan start rabbitmq`) runs them on
127.0.0.1, on ports of their own (not the packages' defaults, so a system
instance does not clash), with their data under clickfan's home. They are not
part of the core stack: the fan-out pipeline does not need them; the `brokers`
experiment compares them with Kafka.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from clickfan.compose.native.process import LaunchSpec
from clickfan.compose.native.services.base import Probe, Service
from clickfan.errors import ClickfanError
from clickfan.settings import Settings, SettingsError

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")


def env_port(name: str, default: int) -> int:
    """A port from CLICKFAN_<NAME>, as the settings read theirs."""
    raw = os.environ.get(f"CLICKFAN_{name.upper()}")
    if raw is None:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"CLICKFAN_{name.upper()}={raw!r}: not a port number") from None
    if not 0 < port < 65536:
        raise SettingsError(f"CLICKFAN_{name.upper()}={raw!r}: not a port number")
    return port


def rabbitmq_port() -> int:
    return env_port("rabbitmq_port", 5682)


def redis_port() -> int:
    return env_port("redis_port", 6390)


def _exchange(host: str, port: int, send: bytes, size: int = 64) -> bytes:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.settimeout(2)
            if send:
                sock.sendall(send)
            return sock.recv(size)
    except OSError:
        return b""


class DebianService(Service):
    """A server program from a Debian package rather than from Maven Central."""

    package: str

    @property
    def marker(self) -> str:
        return f"clickfan.service={self.name}@{self.settings.home}"

    def installed(self) -> bool:
        raise NotImplementedError


class RabbitMQ(DebianService):
    """One RabbitMQ node (Debian's rabbitmq-server), with its own node name and folders."""

    kind = "rabbitmq"
    package = "rabbitmq-server"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "rabbitmq")
        self.port = rabbitmq_port()
        # Erlang distribution (rabbitmqctl talks to the node over it); epmd is Erlang's
        # own name server, shared by every node on the machine, on 4369
        self.dist_port = self.port + 20000

    @property
    def ports(self) -> dict[str, int]:
        return {"rabbitmq amqp": self.port, "rabbitmq erlang distribution": self.dist_port}

    def installed(self) -> bool:
        return RABBITMQ_SERVER.exists()

    def env(self) -> dict[str, str]:
        data = self.data_dir
        host = self.settings.host
        return {
            "HOME": str(data),  # the Erlang cookie lives here; rabbitmqctl needs the same
            "RABBITMQ_NODENAME": f"clickfan-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
            "RABBITMQ_LOG_BASE": str(data / "logs"),
            "RABBITMQ_LOGS": "-",  # to stdout: the log file, or the container's log
            "RABBITMQ_CONFIG_FILE": str(data / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(data / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-kernel inet_dist_use_interface {" + host.replace(".", ",") + "}"
            ),
            "ERL_EPMD_ADDRESS": host,
        }

    def prepare(self, java: str) -> None:
        if not self.installed():
            raise ClickfanError(missing_message(self))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {self.settings.host}:{self.port}\n"
            # the guest user may connect from 127.0.0.1 only, which is where clients are
            "default_user = guest\ndefault_pass = guest\n"
        )
        (self.data_dir / "enabled_plugins").write_text("[].\n")

    def launch_spec(self, java: str) -> LaunchSpec:
        # rabbitmq-server is a script that stays the parent of the Erlang VM; sh -c
        # carries the marker as $0 so the pid can be recognised as this service
        return self._spec(
            ["/bin/sh", "-c", f'"{RABBITMQ_SERVER}"; exit $?', self.marker], env=self.env()
        )

    def probe(self) -> Probe:
        # the AMQP listener opens only when the node has fully booted
        reply = _exchange(self.settings.host, self.port, b"AMQP\x00\x00\x09\x01")
        if reply[:1] == b"\x01":  # a Connection.Start frame
            return Probe(True, f"AMQP on {self.port}")
        return Probe(False, f"AMQP port {self.port} not answering")


class Redis(DebianService):
    """One Redis server (Debian's redis-server): an append-only file under clickfan's home."""

    kind = "redis"
    package = "redis-server"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "redis")
        self.port = redis_port()

    @property
    def ports(self) -> dict[str, int]:
        return {"redis": self.port}

    def installed(self) -> bool:
        return shutil.which("redis-server") is not None

    def prepare(self, java: str) -> None:
        if not self.installed():
            raise ClickfanError(missing_message(self))
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def launch_spec(self, java: str) -> LaunchSpec:
        server = shutil.which("redis-server") or "redis-server"
        return self._spec(
            [
                server,
                "--bind",
                self.settings.host,
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--daemonize",
                "no",
                "--appendonly",
                "yes",
                "--save",
                "",
                # Redis rewrites its command line; the marker stays in the new one
                "--proc-title-template",
                f"{{title}} {{listen-addr}} {self.marker}",
            ]
        )

    def probe(self) -> Probe:
        reply = _exchange(self.settings.host, self.port, b"PING\r\n")
        if reply.startswith(b"+PONG"):
            return Probe(True, f"PONG on {self.port}")
        if reply.startswith(b"-LOADING"):
            return Probe(False, "loading its append-only file")
        return Probe(False, f"port {self.port} not answering")


def missing_message(service: DebianService) -> str:
    return (
        f"{service.name} is not installed: install Debian's package "
        f"(`apt-get install {service.package}`, or `make install` as root)"
    )


def messaging_services(settings: Settings) -> list[DebianService]:
    """The optional brokers, by name: rabbitmq, redis."""
    return [RabbitMQ(settings), Redis(settings)]
