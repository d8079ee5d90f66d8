"""The layout: one installable name, and a foundation that imports nothing above it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the root folders that install as clickfan.<name>
MAPPED = ("app", "compose", "generators", "streams", "sinks", "lagmon", "experiments", "analysis")
SOURCES = [
    p
    for folder in ("clickfan", *MAPPED, "tests", "benchmarks")
    for p in (ROOT / folder).rglob("*.py")
]


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_no_bare_import_of_a_root_folder() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{line}: import {name}"
        for path in SOURCES
        for line, name in _imported_modules(path)
        if name.split(".")[0] in MAPPED
    ]
    assert not bare, "import these as clickfan.<name>:\n" + "\n".join(bare)


def test_the_foundation_imports_nothing_above_it() -> None:
    upward = [
        f"{path.relative_to(ROOT)}:{line}: import {name}"
        for path in (ROOT / "clickfan").rglob("*.py")
        for line, name in _imported_modules(path)
        if name.startswith("clickfan.") and name.split(".")[1] in MAPPED
    ]
    assert not upward, "clickfan/ is the ground floor:\n" + "\n".join(upward)


@pytest.mark.parametrize("argv", [["--help"], ["status", "--help"], ["up", "--help"]])
def test_the_cli_imports_only_the_command_that_runs(argv: list[str]) -> None:
    code = (
        "import sys, contextlib, io\n"
        "from clickfan.app.cli import main\n"
        f"sys.argv = ['clickfan', *{argv!r}]\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main()\n"
        "heavy = [m for m in ('faust', 'aiohttp', 'matplotlib', 'elasticsearch')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
