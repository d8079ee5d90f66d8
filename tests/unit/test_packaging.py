"""The wheel: `clickfan` is its only top-level name, and it lives beside docker-compose v1.

docker-compose 1.29 installs a top-level package `compose`; clickfan's compose/
folder must install as clickfan.compose, or one would silently overwrite the
other. The test builds the wheel, installs it with PyPI's docker-compose 1.29.2
into a fresh venv and checks that both import and both RECORDs are intact.

Needs PyPI the first time (marked `pypi`): docker-compose's wheel and a
setuptools wheel for the build are downloaded into the pytest cache
(.pytest_cache/d/packaging-wheels), so later runs are offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER_COMPOSE = "docker-compose==1.29.2"
# build-system.requires of pyproject.toml, downloaded once so that later builds are offline
BUILD_REQUIRES = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "setuptools"
]["package-dir"]
# files the stack reads at run time, beside the Python modules
DATA_FILES = [
    "compose/docker-compose.yml",
    "compose/native/maven/kafka/pom.xml",
    "compose/native/maven/elasticsearch/pom.xml",
    "compose/native/maven/hadoop/pom.xml",
    # the secure profile's Elasticsearch plugin, built by Maven at fetch time
    "compose/native/maven/elasticsearch-analysis/pom.xml",
    "compose/native/maven/elasticsearch-analysis/src/main/plugin/plugin-descriptor.properties",
    "compose/native/maven/elasticsearch-analysis/src/main/java/dev/clickfan/analysis/"
    "ClickfanAnalysisPlugin.java",
    "compose/native/maven/elasticsearch-analysis/src/main/java/dev/clickfan/analysis/"
    "UniqueTokenFilter.java",
]

pytestmark = pytest.mark.pypi

# Run in the fresh venv: where each name imports from, and every RECORD entry whose
# file is missing or differs from its recorded hash.
CHECK_SCRIPT = """
import base64, hashlib, importlib, importlib.metadata as md, json, sys

def damaged(dist):
    bad = []
    for f in dist.files:
        path = f.locate()
        if not path.exists():
            bad.append(f"{f}: missing")
        elif f.hash is not None:
            digest = hashlib.new(f.hash.mode, path.read_bytes()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != f.hash.value:
                bad.append(f"{f}: differs from its RECORD hash")
    return bad

report = {}
for module, dist_name in [("compose", "docker-compose"), ("clickfan", "clickfan")]:
    dist = md.distribution(dist_name)
    mod = importlib.import_module(module)
    report[module] = {
        "file": mod.__file__,
        "version": getattr(mod, "__version__", None),
        "dist_version": dist.version,
        "dist_location": str(dist.locate_file("")),
        "damaged": damaged(dist),
        # what the distribution put into site-packages (scripts are under ../../bin)
        "top_level": sorted({f.parts[0] for f in dist.files if f.parts[0] != ".."}),
    }
importlib.import_module("clickfan.compose.native.stack")
report["stack"] = sys.modules["clickfan.compose.native.stack"].__file__
print(json.dumps(report))
"""


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"


@pytest.fixture(scope="module")
def downloads(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docker-compose's wheel and the build requirements, from PyPI once, then from the cache."""
    if getattr(request.config, "cache", None) is not None:
        cache = request.config.cache.mkdir("packaging-wheels")
    else:  # -p no:cacheprovider: this run's own folder
        cache = tmp_path_factory.mktemp("packaging-wheels")
    have = {p.name.split("-")[0].lower() for p in cache.glob("*.whl")}
    if not {"docker_compose", "setuptools"} <= have:
        result = _pip(
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(cache),
            DOCKER_COMPOSE,
            *BUILD_REQUIRES,
        )
        _ok(result, f"downloading {DOCKER_COMPOSE} and {BUILD_REQUIRES} from PyPI")
    return cache


@pytest.fixture(scope="module")
def wheel(downloads: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # build isolation as `pip install .` does, with setuptools from the cache (offline)
    result = _pip(
        "wheel",
        "--no-deps",
        "--no-index",
        "--find-links",
        str(downloads),
        "-w",
        str(out),
        str(ROOT),
    )
    _ok(result, "building the wheel")
    (built,) = out.glob("clickfan-*.whl")
    return built


def test_the_only_top_level_name_in_the_wheel_is_clickfan(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_info) == 1 and dist_info.pop().startswith("clickfan-")
    assert {t for t in top if not t.endswith(".dist-info")} == {"clickfan"}


def test_the_wheel_holds_every_module_and_the_data_the_stack_reads(wheel: Path) -> None:
    """A sub-package missing from pyproject's package list would be left out silently."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).as_posix()
            expected[path.relative_to(ROOT).as_posix()] = f"{package.replace('.', '/')}/{rel}"
    for data in DATA_FILES:
        folder, rel = data.split("/", 1)
        expected[data] = f"clickfan/{folder}/{rel}"
    assert all(f"{folder}/__init__.py" in expected for folder in PACKAGE_DIRS.values())
    missing = sorted(source for source, arcname in expected.items() if arcname not in names)
    assert not missing, "left out of the wheel (pyproject.toml packages?):\n" + "\n".join(missing)


def test_installs_beside_docker_compose_1_29_without_overwriting_it(
    wheel: Path, downloads: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = Path(
        subprocess.run(
            [python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (compose_wheel,) = downloads.glob("docker_compose-1.29.2-*.whl")

    # docker-compose's own dependencies (PyYAML<6) do not build on 3.11: both --no-deps
    install = ("--python", python, "install", "--no-deps", "--no-index")
    _ok(_pip(*install, str(compose_wheel)), "installing docker-compose 1.29.2")
    _ok(_pip(*install, str(wheel)), "installing the clickfan wheel")

    # our real dependencies come from this test's venv; a path added by a .pth does
    # not have its own .pth files run, so the editable checkout stays invisible there
    (site / "clickfan_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    checked = subprocess.run(
        [python, "-I", "-c", CHECK_SCRIPT],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the checkout, whose compose/ and clickfan/ would shadow both
        env=clean_env,
        check=False,
    )
    _ok(checked, "importing compose and clickfan in the fresh venv")
    report = json.loads(checked.stdout)

    compose, clickfan = report["compose"], report["clickfan"]
    assert [t for t in clickfan["top_level"] if not t.endswith(".dist-info")] == ["clickfan"]
    assert "compose" in compose["top_level"]
    assert compose["version"] == compose["dist_version"] == "1.29.2", compose
    for name, found in (("compose", compose), ("clickfan", clickfan)):
        assert Path(found["file"]).is_relative_to(site), f"{name} imported from {found['file']}"
        assert Path(found["dist_location"]) == site, found
        assert found["damaged"] == [], f"{name}'s installed files changed: {found['damaged']}"
    assert Path(report["stack"]).is_relative_to(site / "clickfan" / "compose")

    help_run = subprocess.run(
        [str(venv / "bin" / "clickfan"), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env,
        check=False,
    )
    _ok(help_run, "clickfan --help from the fresh venv")
    assert "Usage: clickfan" in help_run.stdout
    assert "worker" in help_run.stdout and "status" in help_run.stdout
