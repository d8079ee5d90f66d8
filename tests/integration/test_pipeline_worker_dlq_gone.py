"""The dead-letter topic deleted while the indexer runs: offsets held, the worker says why.

The brokers run with auto.create.topics.enable=false, so once the DLQ topic
is deleted no dead letter can be written; Kafka flags that failure
(unknown topic, or a request timing out waiting for it) retriable. The
indexer must not drop the invalid records nor commit past them: it retries
with backoff, logs the DLQ topic and the error, and stays alive. When the
topic exists again it writes the dead letters and catches up.
"""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import NewTopic

from clickfan.compose.native import stack as native_stack
from clickfan.settings import Settings
from tests.conftest import _wait_until_every_broker_knows
from tests.integration import pipeline_support as ps
from tests.support import Names

EVENTS = 1_000


def _topic_exists(settings: Settings, topic: str) -> bool:
    admin = native_stack.admin_client(settings.bootstrap_servers)
    return topic in admin.list_topics(timeout=10).topics


def test_deleted_dead_letter_topic_holds_offsets_until_it_is_back(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    admin = native_stack.admin_client(stack.bootstrap_servers)
    with ps.running_workers(ps.worker_env(stack, names), tmp_path, kinds=["es"]) as workers:
        (worker,) = workers
        first = ps.produce(stack, names, EVENTS, seed=7)
        ps.wait_drained(
            stack,
            names,
            workers,
            groups=[names.es_group],
            timeout=180,
            what="the indexer to index the first events",
        )
        admin.delete_topics([names.dlq_topic], request_timeout=30)[names.dlq_topic].result()
        ps.wait_until(
            lambda: not _topic_exists(stack, names.dlq_topic),
            timeout=60,
            what=f"{names.dlq_topic} to be deleted",
        )
        second = ps.produce(stack, names, EVENTS, bad_fraction=0.05, seed=8)
        bad = [(d.partition, d.offset) for d in second.deliveries or [] if d.bad_kind]
        assert bad, "the producer made no invalid records"
        ps.wait_until(
            lambda: f"on dead-letter topic {names.dlq_topic}" in worker.log_path.read_text(),
            timeout=180,
            what="the indexer to say it cannot write dead letters",
            describe=worker.tail,
        )
        assert worker.running, worker.tail()
        done = ps.committed(stack, names.es_group, names.topic, stack.partitions)
        first_bad = {p: min(o for q, o in bad if q == p) for p, _ in bad}
        past = {p: done[p] for p, o in first_bad.items() if done[p] > o}
        assert not past, f"committed past an invalid record: {past} vs {first_bad}"

        topic = NewTopic(
            names.dlq_topic,
            stack.partitions,
            stack.replication_factor,
            config={"min.insync.replicas": str(stack.min_insync_replicas)},
        )
        admin.create_topics([topic], request_timeout=30)[names.dlq_topic].result()
        _wait_until_every_broker_knows(stack, [names.dlq_topic])
        ps.wait_drained(
            stack,
            names,
            workers,
            groups=[names.es_group],
            timeout=240,
            what="the indexer to catch up once the dead-letter topic is back",
        )
        assert worker.running, worker.tail()
        produced = {eid for s in (first, second) for eid, _, _ in ps.iter_valid(s)}
        assert set(ps.es_ids(stack, names)) == produced
        dead = {ps.source_of(r) for r in ps.dead_letters(stack, names, names.es_group)}
        assert dead == set(bad)
        assert "is back after" in worker.log_path.read_text()
