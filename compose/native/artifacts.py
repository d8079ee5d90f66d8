"""Fetch the server programs from Maven Central into clickfan's cache.

Each service has a pom under compose/native/maven/<service>/; Maven resolves
its dependencies and copies the jars (or the Elasticsearch zip) into
``<home>/artifacts/<service>-<version>/``. One pom builds instead of copying:
maven/elasticsearch-analysis/, a small Elasticsearch plugin the secure profile
installs (see its pom), compiled for the node's version. A ``.complete`` marker
makes later starts offline: Maven is only needed the first time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from clickfan.compose.native.java import maven_binary
from clickfan.errors import ClickfanError
from clickfan.settings import Settings

POMS = Path(__file__).parent / "maven"


@dataclass(frozen=True)
class Artifact:
    service: str  # kafka | hadoop | elasticsearch | elasticsearch-analysis
    version: str
    version_property: str  # the pom property that carries the version
    root: Path
    built: bool = False  # the pom builds a jar (package) rather than copying dependencies

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def complete(self) -> bool:
        return (self.root / ".complete").exists()


def _artifact(settings: Settings, service: str) -> Artifact:
    # the pom property carrying the version is named like the setting: kafka.version
    version = getattr(settings, f"{service}_version")
    return Artifact(
        service, version, f"{service}.version", settings.artifacts_dir / f"{service}-{version}"
    )


def kafka(settings: Settings) -> Artifact:
    return _artifact(settings, "kafka")


def hadoop(settings: Settings) -> Artifact:
    return _artifact(settings, "hadoop")


def elasticsearch(settings: Settings) -> Artifact:
    return _artifact(settings, "elasticsearch")


def elasticsearch_analysis(settings: Settings) -> Artifact:
    """The clickfan-analysis plugin, built for the Elasticsearch version of ``settings``."""
    version = settings.elasticsearch_version
    root = settings.artifacts_dir / f"elasticsearch-analysis-{version}"
    return Artifact("elasticsearch-analysis", version, "elasticsearch.version", root, built=True)


def all_artifacts(settings: Settings) -> list[Artifact]:
    found = [kafka(settings), hadoop(settings), elasticsearch(settings)]
    # The plugin is written against the 8.x plugin API and only the secure profile needs
    # it: fetched with the 8.x node, so that `clickfan fetch` prepares either profile, and
    # never in the way of an open stack on another major version.
    if settings.secure or settings.elasticsearch_version.startswith("8."):
        found.append(elasticsearch_analysis(settings))
    return found


def ensure(artifact: Artifact, console: Console) -> Artifact:
    """Download the artifact unless the cache already holds it."""
    if artifact.complete:
        return artifact
    staging = artifact.root.with_name(artifact.root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if artifact.built:
        _build_plugin(artifact, staging, console)
    else:
        _copy_dependencies(artifact, staging / "libs", console, final=artifact.libs)
    if artifact.service == "hadoop":
        _extract_hadoop_webapps(staging)
    shutil.rmtree(artifact.root, ignore_errors=True)
    staging.rename(artifact.root)
    (artifact.root / ".complete").write_text(artifact.version + "\n")
    return artifact


def elasticsearch_zip(artifact: Artifact) -> Path:
    zips = sorted(artifact.libs.glob("elasticsearch-*.zip"))
    if not zips:
        raise ClickfanError(
            f"{artifact.libs} holds no Elasticsearch zip; run `clickfan up --refetch`."
        )
    return zips[0]


def elasticsearch_plugin(artifact: Artifact) -> Path:
    """The built plugin's folder: its jar and plugin-descriptor.properties."""
    folder = artifact.libs / "plugin"
    if not (folder / "plugin-descriptor.properties").exists():
        raise ClickfanError(
            f"{folder} holds no built plugin: remove {artifact.root} and run `clickfan fetch`."
        )
    return folder


def _copy_dependencies(artifact: Artifact, target: Path, console: Console, final: Path) -> None:
    _run_maven(
        artifact,
        [
            "dependency:copy-dependencies",
            f"-DoutputDirectory={target}",
            "-DincludeScope=runtime",
        ],
        console,
        final,
    )


def _build_plugin(artifact: Artifact, staging: Path, console: Console) -> None:
    """Compile and package the plugin; the jar and its descriptor land in libs/plugin/."""
    build = staging / "libs"
    _run_maven(artifact, ["package", f"-Dclickfan.build.dir={build}"], console, artifact.libs)
    # only the plugin folder is kept (not Maven's classes/ and the like)
    for entry in build.iterdir():
        if entry.is_dir() and entry.name != "plugin":
            shutil.rmtree(entry)


def _run_maven(artifact: Artifact, goals: list[str], console: Console, final: Path) -> None:
    """Run Maven, streaming its download lines into a progress status."""
    pom = POMS / artifact.service / "pom.xml"
    cmd = [
        maven_binary(),
        "-B",
        "-f",
        str(pom),
        f"-D{artifact.version_property}={artifact.version}",
        *goals,
    ]
    label = f"{artifact.service} {artifact.version}"
    downloaded = 0
    tail: list[str] = []
    with console.status(f"Fetching {label} from Maven Central ...") as status:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-30:]
            if "Downloaded from" in line:
                downloaded += 1
                name = line.rsplit("/", 1)[-1].split(" ")[0]
                status.update(f"Fetching {label}: {downloaded} files downloaded ({name})")
        code = proc.wait()
    if code != 0:
        raise ClickfanError(_explain_maven_failure(label, tail))
    console.print(f"[green]fetched[/] {label} ({downloaded} files downloaded, cached in {final})")


def _explain_maven_failure(label: str, tail: list[str]) -> str:
    errors = [ln for ln in tail if "[ERROR]" in ln] or tail[-5:]
    first = re.sub(r"\x1b\[[0-9;]*m", "", errors[0]).replace("[ERROR]", "").strip()
    if any(w in " ".join(tail) for w in ("UnknownHost", "Connect to", "transfer failed")):
        hint = "Maven Central could not be reached: check the network or ~/.m2/settings.xml."
    else:
        hint = "check the version (CLICKFAN_*_VERSION) and Maven's output above."
    return f"could not fetch {label} with Maven: {first}\n{hint}"


def _extract_hadoop_webapps(root: Path) -> None:
    """The NameNode and DataNode need their webapps/ folder on the classpath.

    The Hadoop jars on Maven Central leave it out; the hadoop-hdfs test jar
    carries it (that is how MiniDFSCluster gets it). Keep only webapps/, so the
    test jar's classes and test configuration stay off the classpath.
    """
    tests_jars = list((root / "libs").glob("hadoop-hdfs-*-tests.jar"))
    if not tests_jars:
        raise ClickfanError("the hadoop-hdfs test jar (webapps/) was not fetched")
    with zipfile.ZipFile(tests_jars[0]) as jar:
        members = [m for m in jar.namelist() if m.startswith("webapps/")]
        jar.extractall(root, members)
    for jar_path in tests_jars:
        jar_path.unlink()
