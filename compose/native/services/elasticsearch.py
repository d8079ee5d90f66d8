"""One Elasticsearch node, unpacked from the integ-test-zip and run as a non-root user."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import zipfile
from pathlib import Path

import requests

from clickfan.compose.native import artifacts
from clickfan.compose.native.process import LaunchSpec
from clickfan.compose.native.services.base import Probe, Service
from clickfan.errors import ClickfanError
from clickfan.settings import Settings


class Elasticsearch(Service):
    """One Elasticsearch node, run as an unprivileged user when clickfan runs as root."""

    kind = "elasticsearch"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "elasticsearch")
        self.run_as = settings.es_user if os.geteuid() == 0 else None

    @property
    def data_dir(self) -> Path:
        if self.run_as is None:
            return super().data_dir
        # Elasticsearch refuses to run as root, and root's home (where the cache
        # lives) is closed to other users: as root, the node's install, config
        # and data live in a folder the service user owns, one per CLICKFAN_HOME.
        tag = hashlib.sha1(str(self.settings.home).encode()).hexdigest()[:10]
        return Path("/var/lib/clickfan") / tag / "elasticsearch"

    @property
    def ports(self) -> dict[str, int]:
        return {
            "elasticsearch http": self.settings.es_port,
            "elasticsearch transport": self.settings.es_transport_port,
        }

    @property
    def install_dir(self) -> Path:
        return self.data_dir / f"elasticsearch-{self.settings.elasticsearch_version}"

    @property
    def marker(self) -> str:
        # bin/elasticsearch is a shell script that execs the launcher JVM: the
        # install path is on both command lines (as the script, then es.path.home)
        return str(self.install_dir)

    @property
    def config_dir(self) -> Path:
        return self.data_dir / "config"

    def elasticsearch_yml(self) -> dict[str, object]:
        settings = {
            "cluster.name": "clickfan",
            "node.name": "es-1",
            "network.host": self.settings.host,
            "http.port": self.settings.es_port,
            "transport.port": self.settings.es_transport_port,
            # single-node on loopback keeps production bootstrap checks as warnings
            "discovery.type": "single-node",
            "path.data": str(self.data_dir / "data"),
            "path.logs": str(self.data_dir / "logs"),
            "action.destructive_requires_name": "false",
            # a laptop's disk is often fuller than the default watermarks allow
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        # 8.x integ-test-zips carry x-pack-security, which would switch on TLS
        # and passwords; builds without it reject any xpack.* setting.
        if (self.install_dir / "modules" / "x-pack-security").exists():
            settings["xpack.security.enabled"] = "false"
        return settings

    def prepare(self, java: str) -> None:
        if self.run_as is not None:
            _ensure_user(self.run_as)
        if not (self.install_dir / "bin" / "elasticsearch").exists():
            zip_path = artifacts.elasticsearch_zip(artifacts.elasticsearch(self.settings))
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(self.data_dir)
            for script in (self.install_dir / "bin").iterdir():
                script.chmod(0o755)
            jdk_bin = self.install_dir / "jdk" / "bin"  # absent in integ-test-zips
            if jdk_bin.exists():
                for binary in jdk_bin.iterdir():
                    binary.chmod(0o755)
        if not self.config_dir.exists():
            shutil.copytree(self.install_dir / "config", self.config_dir)
        (self.config_dir / "elasticsearch.yml").write_text(
            "".join(f"{k}: {v}\n" for k, v in self.elasticsearch_yml().items())
        )
        heap = self.settings.es_heap
        (self.config_dir / "jvm.options.d" / "clickfan.options").write_text(
            f"-Xms{heap}\n-Xmx{heap}\n"
        )
        for sub in ("data", "logs", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            subprocess.run(["chown", "-R", f"{self.run_as}:", str(self.data_dir)], check=True)

    def launch_spec(self, java: str) -> LaunchSpec:
        jdk = str(Path(java).parent.parent)
        return self._spec(
            [str(self.install_dir / "bin" / "elasticsearch")],
            env={
                "ES_JAVA_HOME": jdk,
                "ES_PATH_CONF": str(self.config_dir),
                "ES_TMPDIR": str(self.data_dir / "tmp"),
                "HOME": str(self.data_dir),
            },
            user=self.run_as,
        )

    def probe(self) -> Probe:
        try:
            health = requests.get(f"{self.settings.es_url}/_cluster/health", timeout=2).json()
        except (requests.RequestException, ValueError):
            return Probe(False, f"no answer on {self.settings.es_port}")
        status = health.get("status", "?")
        return Probe(status in ("green", "yellow"), f"cluster health {status}")


def _ensure_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClickfanError(
                f"Elasticsearch refuses to run as root and the user {user!r} could not be "
                f"created: {result.stderr.strip()}. Create it, or run clickfan as a normal user."
            ) from None
