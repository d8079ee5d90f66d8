"""What every service of the native stack has: a name, its folders, a pid file, a probe.

One module per family beside this one (kafka, elasticsearch, hdfs). Each class
knows its ports, writes its own configuration files, builds its command line
from the cached artifacts, and answers `probe()` with whether it is really
healthy (not merely running).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clickfan.compose.native.process import LaunchSpec
from clickfan.settings import Settings


@dataclass(frozen=True)
class Probe:
    healthy: bool
    detail: str


class Service:
    """A server process of the stack."""

    name: str
    kind: str

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.home / "run" / f"{self.name}.pid"

    @property
    def marker(self) -> str:
        """Carried on the command line so a pid can be recognised as this service."""
        return f"-Dclickfan.service={self.name}@{self.settings.home}"

    @property
    def ports(self) -> dict[str, int]:
        raise NotImplementedError

    def prepare(self, java: str) -> None:
        """Write configuration, and initialise storage the first time."""
        raise NotImplementedError

    def launch_spec(self, java: str) -> LaunchSpec:
        raise NotImplementedError

    def probe(self) -> Probe:
        raise NotImplementedError

    def after_healthy(self) -> None:
        """Set-up that needs the running service (the secure profile's users and keys)."""

    def _spec(self, argv: list[str], **extra: object) -> LaunchSpec:
        return LaunchSpec(
            name=self.name,
            argv=argv,
            marker=self.marker,
            log_file=self.log_file,
            pid_file=self.pid_file,
            cwd=self.data_dir,
            **extra,
        )
