"""How long `clickfan up` takes from a warm cache, and how much memory the stack holds.

    python -m benchmarks.stack_up [--runs 3] [--settle 10]

Each run stops the stack, times `clickfan up` until every service is healthy,
waits --settle seconds and sums the resident memory of every service process
(`clickfan status --json`). Prints each run and the median. Targets on a
2-core machine: up in at most 90 s, the whole stack in at most 4 GiB RSS.
The stack is left running afterwards. Data is kept between runs (a warm start
of an existing stack, as a user meets it the second time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLICKFAN = str(Path(sys.executable).with_name("clickfan"))
UP_TARGET_S = 90
RSS_TARGET_MB = 4 * 1024


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLICKFAN, *args], capture_output=True, text=True, check=False)


def one_run(settle_s: float) -> tuple[float, float, dict[str, float]]:
    run("down")
    began = time.monotonic()
    result = run("up")
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        sys.exit(f"clickfan up failed:\n{result.stderr}")
    time.sleep(settle_s)
    report = json.loads(run("status", "--json").stdout)
    per_service = {s["name"]: s["rss_mb"] for s in report["services"]}
    return elapsed, report["total_rss_mb"], per_service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=10.0)
    args = parser.parse_args()

    ups, rsss = [], []
    for i in range(1, args.runs + 1):
        print(f"run {i}/{args.runs}: down, then up ...", file=sys.stderr, flush=True)
        elapsed, rss, per_service = one_run(args.settle)
        ups.append(elapsed)
        rsss.append(rss)
        detail = ", ".join(f"{name} {mb:.0f}" for name, mb in per_service.items())
        print(f"run {i}: up {elapsed:.1f} s, total RSS {rss:.0f} MB ({detail})")
    up_median, rss_median = statistics.median(ups), statistics.median(rsss)
    print(
        f"median of {args.runs}: up {up_median:.1f} s (target <= {UP_TARGET_S} s), "
        f"RSS {rss_median:.0f} MB (target <= {RSS_TARGET_MB} MB)"
    )
    print(
        json.dumps(
            {
                "runs": args.runs,
                "up_s": ups,
                "rss_mb": rsss,
                "up_median_s": up_median,
                "rss_median_mb": rss_median,
            }
        )
    )


if __name__ == "__main__":
    main()
