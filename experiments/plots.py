"""Plotting helpers (matplotlib, Agg backend: files only, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _finish(fig, ax, path: Path, title: str, xlabel: str, ylabel: str, legend: bool) -> Path:
    """Labels, legend, and the file; the figure is closed (many plots per run)."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def bars(
    path: Path,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    xlabel: str = "partition",
    ylabel: str = "records",
) -> Path:
    """Grouped bars: one group per label, one bar per series."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [x + i * width - 0.4 + width / 2 for x in range(len(labels))]
        ax.bar(xs, values, width, label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, ax, path, title, xlabel, ylabel, legend=len(series) > 1)


def lines(
    path: Path,
    title: str,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str = "seconds",
    ylabel: str = "lag (records)",
    marks: Sequence[tuple[float, str]] = (),
    step: bool = False,
) -> Path:
    """One line per series (xs, ys); vertical marks for events (x, label)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, (xs, ys) in series.items():
        if step:
            ax.step(xs, ys, where="post", label=name)
        else:
            ax.plot(xs, ys, label=name, marker="." if len(xs) < 60 else None)
    for x, label in marks:
        ax.axvline(x, color="grey", linestyle="--", linewidth=1)
        ax.annotate(
            label,
            (x, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    ax.grid(alpha=0.3)
    return _finish(fig, ax, path, title, xlabel, ylabel, legend=len(series) > 1)


def histogram(
    path: Path,
    title: str,
    series: dict[str, Sequence[float]],
    xlabel: str,
    bins: int = 30,
) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, values in series.items():
        if values:
            ax.hist(values, bins=bins, alpha=0.6, label=name)
    ax.grid(alpha=0.3)
    return _finish(fig, ax, path, title, xlabel, "count", legend=len(series) > 1)
