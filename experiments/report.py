"""A run's report folder: report.md for people, report.json for machines, plus plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clickfan import __version__


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return text if len(text) <= 120 else text[:117] + "..."
    return str(value)


def _cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def report_json(experiment: Any, ctx: Any, duration_s: float) -> dict[str, Any]:
    ok = bool(ctx.checks) and all(c.ok for c in ctx.checks)
    return {
        "name": experiment.name,
        "expected": {c.name: c.expected for c in ctx.checks},
        "measured": {c.name: c.measured for c in ctx.checks},
        "ok": ok,
        "checks": [
            {
                "name": c.name,
                "expected": c.expected,
                "measured": c.measured,
                "ok": c.ok,
                "note": c.note,
            }
            for c in ctx.checks
        ],
        "title": experiment.title,
        "claim": experiment.claim,
        "started": ctx.started.isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 1),
        "events": ctx.events,
        "names": ctx.names.prefix,
        "bootstrap_servers": ctx.settings.bootstrap_servers,
        "clickfan_version": __version__,
        "plots": [p.file for p in ctx.plots],
        "notes": ctx.notes,
        "details": ctx.details,
    }


def report_markdown(experiment: Any, ctx: Any, data: dict[str, Any]) -> str:
    verdict = "**The claim holds.**" if data["ok"] else "**EXPECTATION FAILED.**"
    lines = [
        f"# Experiment `{experiment.name}`: {experiment.title}",
        "",
        f"Run {data['started']} for {data['duration_s']} s with {ctx.events} events on "
        f"`{ctx.settings.bootstrap_servers}` (names `{ctx.names.prefix}`).",
        "",
        "## The claim",
        "",
        *[f"> {line}" for line in experiment.claim_ko.strip().splitlines()],
        "",
        experiment.claim.strip(),
        "",
        "## How it was tested",
        "",
        experiment.method.strip(),
        "",
        "## Expected versus measured",
        "",
        "| check | expected | measured | verdict |",
        "|---|---|---|---|",
    ]
    for c in ctx.checks:
        mark = "ok" if c.ok else "**FAILED**"
        lines.append(f"| {_cell(c.name)} | {_cell(c.expected)} | {_cell(c.measured)} | {mark} |")
    notes = [f"- {c.name}: {c.note}" for c in ctx.checks if c.note]
    if notes:
        lines += ["", *notes]
    lines += ["", f"Verdict: {verdict}", ""]
    for title, body in ctx.sections:
        lines += [f"## {title}", "", body.strip(), ""]
    if ctx.plots:
        lines += ["## Plots", ""]
        for p in ctx.plots:
            lines += [f"![{p.caption}]({p.file})", "", f"*{p.caption}*", ""]
    if ctx.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in ctx.notes], ""]
    return "\n".join(lines)


def write_report(experiment: Any, ctx: Any, duration_s: float) -> dict[str, Any]:
    out: Path = ctx.out_dir
    out.mkdir(parents=True, exist_ok=True)
    data = report_json(experiment, ctx, duration_s)
    (out / "report.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (out / "report.md").write_text(report_markdown(experiment, ctx, data))
    return data
