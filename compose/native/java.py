"""Find the tools the native stack needs (Java, Maven) and say clearly when one is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from clickfan.errors import ClickfanError
from clickfan.settings import Settings

MIN_JAVA = 17


def java_home(settings: Settings) -> Path:
    """The JDK to run every service with: CLICKFAN_JAVA_HOME, JAVA_HOME, then PATH."""
    for candidate in (settings.java_home, os.environ.get("JAVA_HOME", "")):
        if candidate and (Path(candidate) / "bin" / "java").exists():
            return Path(candidate)
    on_path = shutil.which("java")
    if on_path:
        return Path(os.path.realpath(on_path)).parent.parent
    raise ClickfanError(
        "Java was not found: install a JDK 17 or newer (Debian: apt-get install "
        "openjdk-17-jdk-headless) or point CLICKFAN_JAVA_HOME at one."
    )


def java_binary(settings: Settings) -> str:
    return str(java_home(settings) / "bin" / "java")


def java_major_version(java: str) -> int:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except OSError as exc:
        raise ClickfanError(f"{java} cannot be run ({exc}); check CLICKFAN_JAVA_HOME.") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise ClickfanError(f"could not read the version of {java}: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major  # "1.8.0" means 8


def check_java(settings: Settings) -> str:
    """Return the java binary, or explain in one line why it cannot run the stack."""
    java = java_binary(settings)
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise ClickfanError(
            f"{java} is Java {major}; Kafka 4, Elasticsearch 8.19 and Hadoop 3.5 need Java "
            f"{MIN_JAVA} or newer: install one and set CLICKFAN_JAVA_HOME to it."
        )
    return java


def maven_binary() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise ClickfanError(
            "Maven (mvn) was not found, and the first start downloads the services from "
            "Maven Central with it: install it (Debian: apt-get install maven)."
        )
    return mvn
