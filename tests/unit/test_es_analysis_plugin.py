"""Which Elasticsearch versions get the clickfan-analysis plugin built at fetch time.

It is written against the 8.x plugin API and only the secure profile needs it: fetched
with an 8.x node (either profile), and with any version when the profile is secure (so
that a missing build says so), never in the way of an open stack on another major.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clickfan.compose.native import artifacts
from clickfan.errors import ClickfanError
from clickfan.settings import load


@pytest.mark.parametrize(
    ("version", "secure", "built"),
    [
        ("8.19.7", False, True),
        ("8.19.7", True, True),
        ("9.1.0", False, False),
        ("9.1.0", True, True),
    ],
)
def test_the_plugin_is_fetched_with_8x_or_for_the_secure_profile(
    tmp_path: Path, version: str, secure: bool, built: bool
) -> None:
    settings = load(
        {
            "CLICKFAN_HOME": str(tmp_path),
            "CLICKFAN_ELASTICSEARCH_VERSION": version,
            "CLICKFAN_SECURE": "1" if secure else "0",
        }
    )
    plugins = [a for a in artifacts.all_artifacts(settings) if a.built]
    assert plugins == ([artifacts.elasticsearch_analysis(settings)] if built else [])
    if built:
        assert plugins[0].root.name == f"elasticsearch-analysis-{version}"  # one per version


def test_a_missing_build_is_one_clear_line(tmp_path: Path) -> None:
    artifact = artifacts.elasticsearch_analysis(load({"CLICKFAN_HOME": str(tmp_path)}))
    with pytest.raises(ClickfanError, match="holds no built plugin.*clickfan fetch"):
        artifacts.elasticsearch_plugin(artifact)
