"""One Elasticsearch node, unpacked from the integ-test-zip and run as a non-root user.

The secure profile (settings.secure) switches on the x-pack security the 8.19
integ-test-zip ships (modules/x-pack-security): TLS on HTTP and transport with a
certificate from the local CA (compose/native/pki.py), and two users of the file
realm, made with bin/elasticsearch-users (passwords on its stdin, never argv):
`admin` (superuser) and `es-indexer`, whose file role may only write
`<index_prefix>-*` and install index templates. Their passwords are 0600 files
under <home>/secure/elasticsearch.

The indexer uses an API key by default: once the node is healthy, `admin` creates
one whose role descriptor is the file role's (POST /_security/api_key), kept 0600
in <home>/secure/elasticsearch/es-indexer.api-key. API keys live in the `.security`
system index, whose mapping has an `email` analyzer built of analysis-common
components (pattern_capture, unique, uax_url_email), a module the integ-test-zip
leaves out ("Unknown filter type [pattern_capture] for [email]"); no other 8.x
distribution is on Maven Central. So the secure node gets clickfan-analysis, a
small plugin that provides exactly those three (compose/native/maven/
elasticsearch-analysis, built by Maven at fetch time). The file-realm `es-indexer`
stays for configurations that log in with a user and password.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from clickfan.compose.native import artifacts, pki
from clickfan.compose.native.process import LaunchSpec
from clickfan.compose.native.services.base import Probe, Service
from clickfan.errors import ClickfanError
from clickfan.settings import Settings
from clickfan.sinks import clients

INDEXER_ROLE = "clickfan_indexer"

# the analysis plugin's folder under the node's plugins/ (the name in its descriptor)
ANALYSIS_PLUGIN = "clickfan-analysis"

# how long a new node may answer 503 (the .security index not ready) to the key request
API_KEY_WAIT_S = 60.0

# where the node's certificate is copied, inside its config folder (Elasticsearch reads
# files only from there)
CERTS = "clickfan-certs"


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
        if self.settings.secure:
            settings.update(_security_settings())
        elif (self.install_dir / "modules" / "x-pack-security").exists():
            settings["xpack.security.enabled"] = "false"
        return settings

    def _prepare_secure(self, java: str) -> None:
        if not (self.install_dir / "modules" / "x-pack-security").exists():
            raise ClickfanError(
                f"the Elasticsearch {self.settings.elasticsearch_version} build in "
                f"{self.install_dir} has no x-pack-security module: the secure profile "
                "needs a distribution with it (8.x integ-test-zip or the default one)"
            )
        cert = pki.issue_certificate(
            self.settings, "elasticsearch", [self.settings.host, "localhost", "127.0.0.1"]
        )
        certs = self.config_dir / CERTS
        certs.mkdir(mode=0o700, exist_ok=True)
        for source, name in (
            (cert.cert, "node.pem"),
            (cert.key, "node-key.pem"),
            (pki.ensure_ca(self.settings), "ca.pem"),
        ):
            pki.write_secret(certs / name, source.read_bytes())
        (self.config_dir / "roles.yml").write_text(
            roles_yml(INDEXER_ROLE, indexer_role(self.settings.index_prefix))
        )
        for user, role in (
            (clients.ES_ADMIN_USER, "superuser"),
            (clients.ES_INDEXER_USER, INDEXER_ROLE),
        ):
            self._file_realm_user(java, user, role)

    def _install_analysis_plugin(self) -> None:
        """Copy clickfan-analysis into plugins/ (fresh each start: the build may be newer)."""
        built = artifacts.elasticsearch_plugin(artifacts.elasticsearch_analysis(self.settings))
        target = self.install_dir / "plugins" / ANALYSIS_PLUGIN
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(built, target)

    def after_healthy(self) -> None:
        if self.settings.secure:
            self._ensure_indexer_api_key()

    def _ensure_indexer_api_key(self) -> None:
        """The indexer's API key in its 0600 file: kept while it still authenticates and
        carries today's role, else a new one (and the old one invalidated)."""
        role = indexer_role(self.settings.index_prefix)
        # the role is in the key's name: a changed index prefix makes a new key
        digest = hashlib.sha1(json.dumps(role, sort_keys=True).encode()).hexdigest()[:10]
        name = f"clickfan-{clients.ES_INDEXER_USER}-{digest}"
        key_file = clients.es_api_key_file_of(self.settings)
        local = dataclasses.replace(self.settings, es_urls="")  # this home's node
        admin = clients.elasticsearch_http(clients.elasticsearch_connection(local))
        try:
            old = _api_key_of(local) if key_file.exists() else None
            if old is not None and old.get("name") == name:
                return
            body = {"name": name, "role_descriptors": {INDEXER_ROLE: role}}
            answer = _wait_while_unavailable(
                lambda: admin.request("POST", "/_security/api_key", json=body, timeout=30)
            )
            if answer.status_code != 200:
                raise ClickfanError(
                    f"Elasticsearch refused to create the indexer's API key "
                    f"({answer.status_code}): {_reason(answer)}"
                )
            pki.write_secret(key_file, answer.json()["encoded"] + "\n")
            if old is not None:  # it still works, with yesterday's role: no longer
                gone = admin.request(
                    "DELETE", "/_security/api_key", json={"ids": [old["id"]]}, timeout=30
                )
                if gone.status_code != 200:
                    raise ClickfanError(
                        f"the indexer's previous API key ({old['id']}) could not be "
                        f"invalidated ({gone.status_code}): {_reason(gone)}"
                    )
        except requests.RequestException as exc:
            raise ClickfanError(f"could not make the indexer's API key: {exc}") from None
        finally:
            admin.close()

    def _file_realm_user(self, java: str, user: str, role: str) -> None:
        """A user of the file realm with a random password, kept 0600 under <home>/secure."""
        password_file = clients.es_password_file_of(self.settings, user)
        users = self.config_dir / "users"
        known = users.exists() and any(
            line.split(":", 1)[0] == user for line in users.read_text().splitlines()
        )
        if known and password_file.exists():
            return
        if known:
            self._tool(java, "elasticsearch-users", ["userdel", user], None)
        password = secrets.token_urlsafe(24)
        # the tool asks for the password twice, on stdin: never on a command line
        self._tool(
            java,
            "elasticsearch-users",
            ["useradd", user, "-r", role],
            f"{password}\n{password}\n",
        )
        pki.write_secret(password_file, password + "\n")

    def _tool(self, java: str, tool: str, args: list[str], stdin: str | None) -> None:
        result = subprocess.run(
            [str(self.install_dir / "bin" / tool), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, **self._env(java)},
            check=False,
        )
        if result.returncode != 0:
            raise ClickfanError(
                f"{tool} {args[0]} failed: {(result.stderr or result.stdout).strip()[-400:]}"
            )

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
        if self.settings.secure:
            self._prepare_secure(java)
            self._install_analysis_plugin()
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

    def _env(self, java: str) -> dict[str, str]:
        return {
            "ES_JAVA_HOME": str(Path(java).parent.parent),
            "ES_PATH_CONF": str(self.config_dir),
            "ES_TMPDIR": str(self.data_dir / "tmp"),
            "HOME": str(self.data_dir),
        }

    def launch_spec(self, java: str) -> LaunchSpec:
        return self._spec(
            [str(self.install_dir / "bin" / "elasticsearch")], env=self._env(java), user=self.run_as
        )

    def probe(self) -> Probe:
        # the node of this home, whatever CLICKFAN_ES_URLS points the clients at
        conn = clients.elasticsearch_connection(
            dataclasses.replace(self.settings, es_urls=""), timeout_s=2
        )
        try:
            http = clients.elasticsearch_http(conn)
        except ClickfanError as exc:  # the password file not written yet
            return Probe(False, str(exc))
        try:
            answer = http.get("/_cluster/health", timeout=2)
            health = answer.json()
        except (requests.RequestException, ValueError):
            return Probe(False, f"no answer on {self.settings.es_port}")
        finally:
            http.close()
        if answer.status_code in (401, 403):
            return Probe(False, f"refuses the admin credentials ({answer.status_code})")
        status = health.get("status", "?")
        return Probe(status in ("green", "yellow"), f"cluster health {status}")


def _api_key_of(settings: Settings) -> dict[str, Any] | None:
    """The id and name of the indexer's current API key, or None if it no longer
    authenticates (invalidated, expired, or from a node that was wiped)."""
    http = clients.elasticsearch_http(clients.elasticsearch_connection(settings, indexer=True))
    try:
        answer = _wait_while_unavailable(lambda: http.get("/_security/_authenticate", timeout=30))
    finally:
        http.close()
    if answer.status_code == 401:
        return None
    if answer.status_code != 200:
        raise ClickfanError(
            f"Elasticsearch could not check the indexer's API key ({answer.status_code}): "
            f"{_reason(answer)}"
        )
    key: dict[str, Any] | None = answer.json().get("api_key")
    return key


def _wait_while_unavailable(send: Callable[[], requests.Response]) -> requests.Response:
    """``send()`` again while the node answers 503 (its security index is still being
    set up just after start), for up to API_KEY_WAIT_S."""
    deadline = time.monotonic() + API_KEY_WAIT_S
    answer = send()
    while answer.status_code == 503 and time.monotonic() < deadline:
        time.sleep(1)
        answer = send()
    return answer


def _reason(answer: requests.Response) -> str:
    try:
        error = answer.json().get("error", {})
    except ValueError:
        return answer.text[:300]
    reason = error.get("reason") if isinstance(error, dict) else error
    return str(reason)[:300]


def _security_settings() -> dict[str, object]:
    certs = {
        "key": f"{CERTS}/node-key.pem",
        "certificate": f"{CERTS}/node.pem",
        "certificate_authorities": f"{CERTS}/ca.pem",
    }
    settings: dict[str, object] = {
        "xpack.security.enabled": "true",
        "xpack.security.http.ssl.enabled": "true",
        "xpack.security.transport.ssl.enabled": "true",
        "xpack.security.transport.ssl.verification_mode": "certificate",
        # users and roles from files; the API key is kept in the .security index
        "xpack.security.authc.realms.file.file1.order": 0,
    }
    for layer in ("http", "transport"):
        for key, path in certs.items():
            settings[f"xpack.security.{layer}.ssl.{key}"] = path
    return settings


def roles_yml(name: str, role: dict[str, Any]) -> str:
    """One role in roles.yml (read a role block at a time, so in block style; the lists
    are JSON, which YAML reads as flow sequences)."""
    lines = [f"{name}:", f"  cluster: {json.dumps(role['cluster'])}", "  indices:"]
    for entry in role["indices"]:
        lines.append(f"    - names: {json.dumps(entry['names'])}")
        lines.append(f"      privileges: {json.dumps(entry['privileges'])}")
    return "\n".join(lines) + "\n"


def indexer_role(index_prefix: str) -> dict[str, Any]:
    """What the indexer may do: its indices and their template, nothing else.

    Elasticsearch has no privilege for one template: manage_index_templates covers all
    of them (the indexer could install a template for other indices, never write them);
    monitor lets it read cluster health, nothing of other indices.
    """
    return {
        "cluster": ["manage_index_templates", "monitor"],
        "indices": [
            {
                "names": [f"{index_prefix}-*"],
                "privileges": ["create_index", "index", "write", "manage"],
            }
        ],
    }


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
