"""The HDFS archive in JSON Lines vs Parquet: bytes on HDFS and archiver CPU per event.

    python -m benchmarks.archive_formats [--events 50000] [--roll-records 10000] [--roll-s 30]
    python -m benchmarks.archive_formats --offline   # only the in-process numbers

On the live stack: one archiver per format (`clickfan worker hdfs --format
jsonl|parquet`, each its own consumer group and HDFS folder) starts on an
empty topic of its own; once both have taken their partitions over, their CPU
time is read, --events generated events are produced, and when both groups
have committed every offset the CPU time is read again. The difference per
event is the archiver's whole cost (consume, decode, validate, encode, upload,
commit), start-up left out. Bytes per event are the archive files' sizes in
HDFS (one replica) over the events archived; the files are read back with
sinks.hdfs_read to check that each holds every event once.

In-process (no stack): the encoders alone, on the same kind of events, for
files of 100 to 50 000 rows, with each codec: what a roll size costs.
Each run uses its own topic, groups and HDFS folder, and removes them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime

import psutil
from hdfs import InsecureClient

from benchmarks.pipeline import CLICKFAN, Bench
from clickfan.events import encode_event
from clickfan.generators.events import EventGenerator
from clickfan.generators.producer import ClickProducer
from clickfan.settings import load
from clickfan.sinks import hdfs_formats, hdfs_parquet, hdfs_read
from clickfan.sinks.hdfs_layout import FORMATS, bucket
from clickfan.sinks.hdfs_roll import PendingRoll


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def in_process(events: int) -> None:
    sample = EventGenerator(1, start_time=datetime.now(UTC), users=10_000).take(events)
    lines = [encode_event(e) for e in sample]
    jsonl = sum(len(line) + 1 for line in lines) / len(lines)
    print(f"in-process, {events} generated events (JSON Lines: {jsonl:.1f} bytes/event)")
    print("  rows/file  codec   parquet bytes/event  encode us/event")
    codec = hdfs_parquet.CODEC
    try:
        for rows in (100, 1_000, 10_000, 50_000):
            for name in ("snappy", "zstd"):
                hdfs_parquet.CODEC = name
                size, began = 0, time.process_time()
                for at in range(0, len(lines), rows):
                    chunk = lines[at : at + rows]
                    offsets = list(range(at, at + len(chunk)))
                    size += len(hdfs_parquet.encode_lines("click-logs", 0, offsets, chunk))
                cpu = time.process_time() - began
                print(
                    f"  {rows:>9}  {name:<6}  {size / len(lines):>19.1f}  "
                    f"{cpu / len(lines) * 1e6:>15.1f}"
                )
    finally:
        hdfs_parquet.CODEC = codec
    for fmt in FORMATS:
        roll = PendingRoll("click-logs", 0)
        for offset, (e, line) in enumerate(zip(sample, lines, strict=True)):
            roll.add(offset, 0.0, bucket(e["event_time"]), line)
        began = time.process_time()
        for _, _, pending in roll.archive_files(fmt):
            hdfs_formats.encode(fmt, "click-logs", 0, pending)
        cpu = time.process_time() - began
        print(
            f"  one roll of {events} events as {fmt}: {cpu / events * 1e6:.1f} us/event to encode"
        )


def _archive_size(client: InsecureClient, root: str) -> tuple[int, int]:
    """(files, bytes) of the archive files under root (temp and marker folders aside)."""
    files = size = 0
    for (folder, _), _, names in client.walk(root, status=True):
        if any(part.startswith("_") for part in folder[len(root) :].split("/")):
            continue
        for _, status in names:
            files += 1
            size += status["length"]
    return files, size


def live(events: int, roll_records: int, roll_s: float) -> None:
    bench = Bench(load(), roll_s)
    s = bench.settings
    client = InsecureClient(s.webhdfs_url, user=s.hdfs_user)
    bench.create_topics()
    procs: dict[str, psutil.Process] = {}
    logs = {}
    try:
        bench.log_dir.mkdir(parents=True, exist_ok=True)
        for fmt in FORMATS:
            logs[fmt] = bench.log_dir / f"bench-archive-{fmt}.log"
            env = {
                **bench.env,
                "CLICKFAN_HDFS_GROUP": f"{s.hdfs_group}.{fmt}",
                "CLICKFAN_HDFS_ROOT": f"{s.hdfs_root}/{fmt}",
                "CLICKFAN_HDFS_ROLL_RECORDS": str(roll_records),
                "CLICKFAN_HDFS_ROLL_BYTES": str(1 << 30),
            }
            with logs[fmt].open("wb") as log:
                proc = subprocess.Popen(
                    [CLICKFAN, "worker", "hdfs", "--format", fmt],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            bench.workers.append(proc)
            procs[fmt] = psutil.Process(proc.pid)
        deadline = time.monotonic() + 180
        while not all(
            logs[f].read_text(errors="replace").count("resuming after offset") >= s.partitions
            for f in FORMATS
        ):
            if time.monotonic() > deadline or any(p.poll() is not None for p in bench.workers):
                sys.exit(f"the archivers did not take their partitions over; see {bench.log_dir}")
            time.sleep(0.5)
        time.sleep(2)
        before = {fmt: _cpu_s(p) for fmt, p in procs.items()}
        summary = ClickProducer(replace(s, produce_rate=0.0, produce_seed=1)).run(count=events)
        print(
            f"live: {summary.acknowledged} events on {s.topic}; rolls at {roll_records} "
            f"records or {roll_s:g} s"
        )
        began = time.monotonic()
        waiting = set(FORMATS)
        while waiting:
            time.sleep(0.5)
            for fmt in sorted(waiting):
                if bench.lag(f"{s.hdfs_group}.{fmt}") == 0:
                    waiting.discard(fmt)
                    cpu = _cpu_s(procs[fmt]) - before[fmt]
                    files, size = _archive_size(client, f"{s.hdfs_root}/{fmt}")
                    read = time.process_time()
                    archived = sum(1 for _ in hdfs_read.iter_events(client, f"{s.hdfs_root}/{fmt}"))
                    read = time.process_time() - read
                    print(
                        f"  {fmt:<8} {size / events:7.1f} bytes/event on HDFS ({files} files, "
                        f"{size:,} bytes)  archiver CPU {cpu / events * 1e6:6.1f} us/event  "
                        f"read back {archived} events, {read / events * 1e6:.1f} us/event"
                    )
                    if archived != summary.acknowledged:
                        print(f"  !! {fmt}: {archived} archived, {summary.acknowledged} produced")
            if time.monotonic() - began > 900:
                sys.exit(f"the archivers did not drain in 15 minutes: {sorted(waiting)}")
    finally:
        bench.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--roll-records", type=int, default=10_000)
    parser.add_argument("--roll-s", type=float, default=30.0)
    parser.add_argument("--offline", action="store_true", help="only the in-process numbers")
    args = parser.parse_args()
    in_process(min(args.events, 50_000))
    if not args.offline:
        live(args.events, args.roll_records, args.roll_s)


if __name__ == "__main__":
    main()
