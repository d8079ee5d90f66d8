"""How many click events per second one core generates (and encodes).

    python -m benchmarks.generation [--events N] [--seed S]

Prints events/s for generation alone and for generation plus JSON encoding,
which is what the producer pays per record before librdkafka takes over.
"""

from __future__ import annotations

import argparse
import time

from clickfan.events import encode_event
from clickfan.generators.events import EventGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    started = time.perf_counter()
    generator = EventGenerator(args.seed, rate=2000)
    print(f"pools built in {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    for _ in range(args.events):
        generator.next_event()
    generate_s = time.perf_counter() - started
    print(f"generate:          {args.events / generate_s:>10,.0f} events/s")

    started = time.perf_counter()
    size = 0
    for _ in range(args.events):
        size += len(encode_event(generator.next_event()))
    encode_s = time.perf_counter() - started
    print(f"generate + encode: {args.events / encode_s:>10,.0f} events/s")
    print(f"mean event size:   {size / args.events:>10,.0f} bytes")


if __name__ == "__main__":
    main()
