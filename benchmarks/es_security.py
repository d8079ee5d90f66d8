"""What TLS and authentication cost Elasticsearch bulk indexing: one run, two nodes alike.

    python -m benchmarks.es_security --plain-home H1 --secure-home H2 [--docs 50000] [--rounds 3]

Starts (if not running) one plain node and one secure node (TLS on HTTP, the
indexer's file-realm user) from the same distribution with the same heap, each in
its own CLICKFAN_HOME on its own ports, then indexes the same generated click
events into each with the sink's own bulk body (orjson NDJSON, id = event_id,
5 MB requests), alternating which node goes first, --rounds times after an
uncounted warm-up load. Prints the
median documents/s of each and their ratio. Stops the nodes it started.
The machine is shared: only the ratio of one run means much.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from rich.console import Console

from clickfan.compose.native import stack
from clickfan.compose.native.services.elasticsearch import Elasticsearch
from clickfan.events import encode_event
from clickfan.generators.events import EventGenerator
from clickfan.settings import Settings, load
from clickfan.sinks import clients, es_bulk, es_index
from clickfan.sinks.base import SinkRecord
from clickfan.sinks.elasticsearch_sink import BULK_SERIALIZER

PREFIX = "clicks-bench"
BULK_BYTES = 5 * 1024 * 1024


def _settings(home: str, port: int, secure: bool) -> Settings:
    return load(
        {
            "CLICKFAN_HOME": home,
            "CLICKFAN_CACHE_DIR": str(load().artifacts_dir),
            "CLICKFAN_SECURE": "1" if secure else "0",
            "CLICKFAN_ES_PORT": str(port),
            "CLICKFAN_ES_TRANSPORT_PORT": str(port + 100),
        }
    )


def _docs(count: int) -> list[es_bulk.Doc]:
    generator = EventGenerator(seed=11)
    docs = []
    for offset in range(count):
        event = generator.next_event()
        record = SinkRecord("bench", 0, offset, None, encode_event(event), None, (), event)
        docs.append(
            es_bulk.Doc(
                record=record,
                index=es_index.index_name(PREFIX, event["event_time"]),
                id=event["event_id"],
                size=es_bulk.doc_size(record),
            )
        )
    return docs


def _index(settings: Settings, indexer: bool, docs: list[es_bulk.Doc]) -> float:
    """Documents per second for one full load into a fresh index."""
    admin = clients.elasticsearch_client(clients.elasticsearch_connection(settings, timeout_s=120))
    admin.indices.delete(index=f"{PREFIX}-*", allow_no_indices=True)
    admin.indices.put_index_template(
        name=es_index.template_name(PREFIX), **es_index.template_body(PREFIX, 1, 0)
    )
    conn = clients.elasticsearch_connection(settings, timeout_s=120, indexer=indexer)
    es = clients.elasticsearch_client(conn, serializers={BULK_SERIALIZER.mimetype: BULK_SERIALIZER})
    began = time.perf_counter()
    todo: Any = docs
    while todo:
        chunk = es_bulk.first_chunk(todo, BULK_BYTES)
        answer = es.bulk(operations=es_bulk.operations(chunk), filter_path="errors")
        if answer.get("errors"):
            raise SystemExit(f"bulk errors on {conn.shown}")
        todo = todo[len(chunk) :]
    admin.indices.refresh(index=f"{PREFIX}-*")
    elapsed = time.perf_counter() - began
    count = int(admin.count(index=f"{PREFIX}-*")["count"])
    if count != len({d.id for d in docs}):
        raise SystemExit(f"{count} documents indexed, expected {len(docs)}")
    admin.indices.delete(index=f"{PREFIX}-*")
    return len(docs) / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain-home", default="/tmp/clickfan-bench-plain")
    parser.add_argument("--secure-home", default="/tmp/clickfan-secure-es-hdfs")
    parser.add_argument("--plain-port", type=int, default=19250)
    parser.add_argument("--secure-port", type=int, default=19210)
    parser.add_argument("--docs", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    nodes = {
        "plain http, no auth": (_settings(args.plain_home, args.plain_port, False), False),
        "TLS + es-indexer user": (_settings(args.secure_home, args.secure_port, True), True),
    }
    started = []
    try:
        for settings, _ in nodes.values():
            service = Elasticsearch(settings)
            if stack.running_pid(service) is None:
                stack.start_one(settings, "elasticsearch", console)
                started.append(settings)
        docs = _docs(args.docs)
        for settings, indexer in nodes.values():  # warm-up, not counted: JIT, first index
            _index(settings, indexer, docs[: max(len(docs) // 5, 1)])
        rates: dict[str, list[float]] = {name: [] for name in nodes}
        names = list(nodes)
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                settings, indexer = nodes[name]
                rates[name].append(_index(settings, indexer, docs))
                console.print(f"round {round_ + 1}: {name}: {rates[name][-1]:,.0f} docs/s")
        medians = {name: statistics.median(r) for name, r in rates.items()}
        plain, secure = medians[names[0]], medians[names[1]]
        print(f"{args.docs} click events per load, {args.rounds} rounds, median docs/s:")
        for name, value in medians.items():
            print(f"  {name:24s} {value:>10,.0f}")
        print(f"  TLS+auth / plain         {secure / plain:>10.2f}")
    finally:
        for settings in started:
            stack.stop_one(settings, "elasticsearch", console)


if __name__ == "__main__":
    sys.exit(main())
