"""Dead letters: exactly the malformed records, each with its reason; valid events all arrive.

Each group dead-letters on its own (header clickfan.dlq.group), so the DLQ is
read per group. Besides the producer's malformed records, a few events are
valid click events that Elasticsearch refuses (their day's index was made
beforehand with a mapping that cannot take them): only the indexer
dead-letters those, the archiver keeps them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from confluent_kafka import Producer

from clickfan.events import decode_event, encode_event
from clickfan.generators.bad_records import BAD_KINDS
from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names

EVENTS = 3_000
BAD_FRACTION = 0.1
ES_REJECTS = 5


def _produce_es_rejects(
    stack: Settings, names: Names, template: dict
) -> dict[str, tuple[int, int]]:
    """Valid events of a day whose index exists already with ``city`` mapped as a number
    (made before the indexer installs its template), so Elasticsearch refuses each as a
    mapping error, the document's fault: event_id -> (partition, offset)."""
    ps.create_refusing_index(stack, f"{names.index_prefix}-2000.01.01")
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "acks": "all"})
    placed: dict[str, tuple[int, int]] = {}

    def delivered(err: object, msg: object) -> None:
        assert err is None, err
        event = json.loads(msg.value())  # type: ignore[attr-defined]
        placed[event["event_id"]] = (msg.partition(), msg.offset())  # type: ignore[attr-defined]

    for _ in range(ES_REJECTS):
        event = {**template, "event_id": str(uuid.uuid4())}
        event["event_time"] = "2000-01-01T12:00:00.000Z"
        value = encode_event(event)
        decode_event(value, stack.max_event_bytes)  # a valid click event
        producer.produce(names.topic, value, key=event["user_id"], on_delivery=delivered)
    assert producer.flush(30) == 0
    return placed


def test_dead_letters_hold_exactly_the_malformed_records(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    summary = ps.produce(stack, names, EVENTS, bad_fraction=BAD_FRACTION)
    assert summary.deliveries is not None
    bad = {(d.partition, d.offset): d.bad_kind for d in summary.deliveries if d.bad_kind}
    assert len(bad) > EVENTS * BAD_FRACTION / 2
    assert set(bad.values()) == set(BAD_KINDS), "every kind of malformed record is in the mix"
    valid_ids = [eid for eid, _, _ in ps.iter_valid(summary)]
    template = next(
        json.loads(r.value)
        for r in ps.read_topic(stack, names.topic)
        if (r.partition, r.offset) not in bad
    )
    es_rejects = _produce_es_rejects(stack, names, template)

    with ps.running_workers(ps.worker_env(stack, names), tmp_path) as workers:
        ps.wait_drained(stack, names, workers, timeout=300)
        source = {(r.partition, r.offset): r for r in ps.read_topic(stack, names.topic)}
        expected = {
            names.es_group: {**bad, **{po: "es_rejected" for po in es_rejects.values()}},
            names.hdfs_group: bad,
        }
        for group, wanted in expected.items():
            letters = ps.dead_letters(stack, names, group)
            coords = [ps.source_of(r) for r in letters]
            assert len(coords) == len(set(coords)), f"{group}: a record dead-lettered twice"
            assert set(coords) == set(wanted), (
                f"{group}: missing {set(wanted) - set(coords)}, extra {set(coords) - set(wanted)}"
            )
            for letter, coord in zip(letters, coords, strict=True):
                h = letter.headers
                assert h["clickfan.error.reason"].decode() == wanted[coord]
                assert h["clickfan.error.message"]
                assert h["clickfan.source.topic"].decode() == names.topic
                original = source[coord]
                assert (letter.key, letter.value) == (original.key, original.value)

        # every valid event still arrives: ES without the ones it refused, HDFS all of them
        ids = ps.es_ids(stack, names)
        assert set(ids) == set(valid_ids)
        archived = {
            e["event_id"] for f in ps.read_archive(stack, names.hdfs_root) for e in f.events
        }
        assert archived == set(valid_ids) | set(es_rejects)
