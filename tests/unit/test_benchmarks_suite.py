"""The suite's summary plot: one panel per kind of result the run has."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from benchmarks.suite import plot_report

STAGE = {"name": "es", "ratio": 0.6, "target": 0.8}
E2E = {"rate": 2000.0, "cpu_s_per_1000": {"es worker": 0.05, "kafka-1": 0.09}}


def _width(png: Path) -> int:
    # a PNG's IHDR chunk: width and height, big-endian, right after the 16 header bytes
    return struct.unpack(">I", png.read_bytes()[16:20])[0]


@pytest.mark.parametrize(
    ("stages", "e2e", "panels"),
    [([STAGE], [E2E], 2), ([], [E2E], 1), ([STAGE], [], 1)],
)
def test_the_plot_has_a_panel_for_each_kind_of_result(
    tmp_path: Path, stages: list[dict[str, Any]], e2e: list[dict[str, Any]], panels: int
) -> None:
    png = tmp_path / "bench.png"
    plot_report({"stages": stages, "end_to_end": e2e}, png)
    one_panel = 6.5 * 100  # inches times matplotlib's default 100 dpi
    assert _width(png) == round(panels * one_panel)


def test_no_plot_when_nothing_ran(tmp_path: Path) -> None:
    png = tmp_path / "bench.png"
    plot_report({"stages": [], "end_to_end": []}, png)
    assert not png.exists()
