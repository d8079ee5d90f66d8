"""A header key that is not UTF-8, as a C producer can send: both workers go on.

aiokafka (under Faust) decodes header keys strictly and used to raise inside its
fetcher, so the record stopped the worker at every restart. Here such records sit
among valid traffic: the valid one is indexed and archived, the invalid one is
dead-lettered once per group with the key's bytes escaped in the dead letter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from clickfan.events import encode_event
from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names

# aiokafka's pure-Python producer writes a header key's bytes as its encode() gives them
# (the C one refuses); librdkafka's C API can send the same bytes.
_RAW_PRODUCER = """
import asyncio, json, sys
from aiokafka import AIOKafkaProducer

class RawKey(str):
    def encode(self, *args, **kwargs):
        return bytes.fromhex(self)

async def main(bootstrap, topic, records):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value_hex, key_hex in records:
            await producer.send_and_wait(
                topic, bytes.fromhex(value_hex), key=b"user-x",
                headers=[(RawKey(key_hex), b"h"), ("plain", b"p")],
            )
    finally:
        await producer.stop()

asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
"""


def test_records_with_a_header_key_that_is_not_utf8(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    before = ps.produce(stack, names, 300, seed=11)
    valid = json.loads(_an_event(stack, names))
    valid["event_id"] = "0f0f0f0f-0000-4000-8000-000000000001"
    records = [
        (encode_event(valid).hex(), b"\xff\xfekey".hex()),
        (b"not json".hex(), b"\xc3\x28".hex()),
    ]
    subprocess.run(
        [
            sys.executable,
            "-c",
            _RAW_PRODUCER,
            stack.bootstrap_servers,
            names.topic,
            json.dumps(records),
        ],
        env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"},
        check=True,
        timeout=60,
    )
    after = ps.produce(stack, names, 300, seed=12)

    with ps.running_workers(ps.worker_env(stack, names), tmp_path) as workers:
        ps.wait_drained(
            stack,
            names,
            workers,
            timeout=180,
            what="both groups past the records with odd header keys",
        )
        assert all(w.running for w in workers), ps.logs(workers)

    expected = {eid for s in (before, after) for eid, _, _ in ps.iter_valid(s)} | {
        valid["event_id"]
    }
    assert set(ps.es_ids(stack, names)) == expected
    archived = {e["event_id"] for f in ps.read_archive(stack, names.hdfs_root) for e in f.events}
    assert archived == expected
    for group in (names.es_group, names.hdfs_group):
        letters = ps.dead_letters(stack, names, group)
        assert [r.value for r in letters] == [b"not json"], group
        assert letters[0].headers.get("\\xc3(") == b"h"
        assert letters[0].headers.get("plain") == b"p"


def _an_event(stack: Settings, names: Names) -> bytes:
    """One valid event as the producer wrote it, to copy."""
    return next(r.value for r in ps.read_topic(stack, names.topic))
