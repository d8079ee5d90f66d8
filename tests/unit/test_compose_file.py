"""compose/docker-compose.yml runs the native stack's own services, not a copy of them.

Each server container runs `clickfan serve NAME` (the launcher of `clickfan up`), so
their configuration cannot differ; what is left to check is that the file names every
service of the native stack, probes the ports the settings give, and wires the app.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from clickfan.compose.native.services import core_services, optional_services
from clickfan.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())["services"]


def test_every_native_service_is_served_by_the_same_launcher(services: dict) -> None:
    served = {
        name: spec["command"][1]
        for name, spec in services.items()
        if spec.get("command", [None])[0] == "serve"
    }
    native = [s.name for s in core_services(Settings()) + optional_services(Settings())]
    assert served == {name: name for name in native}


def test_health_checks_are_cheap_and_probe_the_settings_ports(services: dict) -> None:
    by_name = {s.name: s for s in core_services(Settings()) + optional_services(Settings())}
    for name, service in by_name.items():
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert "java" not in probe and "kafka-" not in probe, f"{name}: a JVM per probe"
        ports = {int(p) for p in re.findall(r"127\.0\.0\.1'?[,:] ?(\d+)", probe)}
        assert ports and ports <= set(service.ports.values()), f"{name} probes {ports}"


def test_every_container_shares_the_hosts_network_and_one_image(services: dict) -> None:
    for name, spec in services.items():
        assert spec["network_mode"] == "host", name
        assert spec["image"] == "clickfan:local", name


def test_the_app_waits_for_the_topics_and_the_sinks(services: dict) -> None:
    for app in ("es-indexer", "hdfs-archiver", "producer", "monitor"):
        needs = services[app]["depends_on"]
        assert needs["topics"]["condition"] == "service_completed_successfully", app
        assert needs["elasticsearch"]["condition"] == "service_healthy", app
    assert set(services["demo"]["depends_on"]) >= {"es-indexer", "hdfs-archiver", "producer"}


def test_the_root_compose_file_is_the_readmes_project() -> None:
    root = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert root["name"] == "clickfan"
    assert root["include"] == ["compose/docker-compose.yml"]
