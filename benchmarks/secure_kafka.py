"""What TLS + SASL/SCRAM costs the producer: the same benchmark on two Kafka clusters in one run.

Two three-broker clusters of the same version and settings, one plaintext and one
started with `clickfan up --secure`, each in its own home (so it runs beside the
usual stack). Rounds alternate between them so both see the same machine load.
Numbers, never a pass/fail::

    clickfan up --kafka-only                    # in CLICKFAN_HOME=PLAIN_HOME, own ports
    clickfan up --secure --kafka-only           # in CLICKFAN_HOME=SECURE_HOME, own ports
    python -m benchmarks.secure_kafka PLAIN_HOME:PORTS SECURE_HOME:PORTS [--count N]

e.g. ``python -m benchmarks.secure_kafka /tmp/h14k-plain:9592,9593,9594
/tmp/clickfan-secure-kafka:9492,9493,9494 --count 200000 --rounds 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from statistics import median

from clickfan import kafka_client
from clickfan.settings import load

CLICKFAN = str(Path(sys.executable).with_name("clickfan"))


def _env(home: str, ports: str) -> dict[str, str]:
    controllers = ",".join(str(int(p) + 10000) for p in ports.split(","))
    env = {k: v for k, v in os.environ.items() if k != "CLICKFAN_KAFKA_CONFIG"}
    env.update(
        CLICKFAN_HOME=home,
        CLICKFAN_CACHE_DIR=str(load().artifacts_dir),
        CLICKFAN_KAFKA_PORTS=ports,
        CLICKFAN_KAFKA_CONTROLLER_PORTS=controllers,
    )
    return env


def produce(env: dict[str, str], count: int) -> float:
    """`clickfan produce --count N --json`: acknowledged events per second."""
    out = subprocess.run(
        [CLICKFAN, "produce", "--count", str(count), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    summary = json.loads(out.stdout)
    return summary["acknowledged"] / summary["elapsed_s"]


def perf_test(env: dict[str, str], ports: str, count: int, config: Path | None) -> float:
    """Kafka's own kafka-producer-perf-test (Java client, 200-byte records): records/s."""
    bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports.split(","))
    args = [
        CLICKFAN, "kafka", "kafka-producer-perf-test", "--topic", "click-logs",
        "--num-records", str(count), "--record-size", "200", "--throughput", "-1",
        "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
        "linger.ms=5", "batch.size=262144", "compression.type=lz4",
    ]  # fmt: skip
    if config is not None:
        args += ["--producer.config", str(config)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True, timeout=900)
    last = [line for line in out.stdout.splitlines() if "records sent" in line][-1]
    match = re.search(r"([\d.]+) records/sec", last)
    assert match, last
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plain", help="HOME:PORTS of the plaintext cluster")
    parser.add_argument("secure", help="HOME:PORTS of the secure cluster")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    clusters = {}
    for label, spec in (("plaintext", args.plain), ("SASL_SSL", args.secure)):
        home, ports = spec.split(":")
        config = None
        if label == "SASL_SSL":
            config = kafka_client.clients_dir(load().with_overrides(home=Path(home))) / (
                "producer.properties"
            )
        clusters[label] = (_env(home, ports), ports, config)
    results: dict[str, dict[str, list[float]]] = {k: {"clickfan": [], "perf": []} for k in clusters}
    for round_ in range(1, args.rounds + 1):
        for label, (env, ports, config) in clusters.items():
            results[label]["clickfan"].append(produce(env, args.count))
            results[label]["perf"].append(perf_test(env, ports, args.count, config))
            print(
                f"round {round_} {label:9}  clickfan produce {results[label]['clickfan'][-1]:9,.0f}"
                f"/s   kafka-producer-perf-test {results[label]['perf'][-1]:9,.0f}/s",
                flush=True,
            )
    print(f"\nmedians of {args.rounds} rounds, {args.count:,} records each (acks=all, lz4):")
    for tool in ("clickfan", "perf"):
        plain, secure = median(results["plaintext"][tool]), median(results["SASL_SSL"][tool])
        name = "clickfan produce" if tool == "clickfan" else "kafka-producer-perf-test"
        print(
            f"  {name:25} plaintext {plain:9,.0f}/s   SASL_SSL {secure:9,.0f}/s   "
            f"cost {100 * (1 - secure / plain):5.1f}%"
        )


if __name__ == "__main__":
    main()
