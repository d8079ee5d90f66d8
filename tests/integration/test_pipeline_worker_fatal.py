"""Workers whose agent meets an error they cannot handle exit non-zero; a restart catches up.

The fault is real, not a test hook: the dead-letter topic's max.message.bytes
is lowered below the size of any record batch, so the broker refuses every
dead letter with MESSAGE_TOO_LARGE, which Kafka does not flag retriable. The
first invalid record then raises out of the agent. The worker must not skip
that record or sit alive doing nothing: it logs why (naming the topic and the
error), exits non-zero, and has committed nothing past the record. Once the
topic takes records again, a restarted worker reads from its last commit and
every valid event is in Elasticsearch and HDFS and every invalid one in the DLQ,
for both groups (they share one builder, so both must behave alike).
"""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from clickfan.compose.native import stack as native_stack
from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names

EVENTS = 2_000


def _set_max_message_bytes(settings: Settings, topic: str, value: str | None) -> None:
    """Set the topic's max.message.bytes, or back to the broker's default (None)."""
    entry = ConfigEntry(
        "max.message.bytes",
        value,
        incremental_operation=AlterConfigOpType.SET if value else AlterConfigOpType.DELETE,
    )
    resource = ConfigResource("topic", topic, incremental_configs=[entry])
    admin = native_stack.admin_client(settings.bootstrap_servers)
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def test_agent_error_exits_non_zero_and_a_restart_catches_up(
    stack: Settings, names: Names, tmp_path: Path
) -> None:
    # smaller than any dead letter (its headers alone are longer), but not than a
    # transaction marker: with a limit below that, Kafka's coordinator cannot end the
    # aborted transaction and the writer's id stays stuck until it moves ("Received
    # fatal error RecordTooLargeException while sending txn marker")
    _set_max_message_bytes(stack, names.dlq_topic, "160")
    env = ps.worker_env(stack, names)
    groups = {"es": names.es_group, "hdfs": names.hdfs_group}
    with ps.running_workers(env, tmp_path) as workers:
        summary = ps.produce(stack, names, EVENTS, bad_fraction=0.02)
        bad = [(d.partition, d.offset) for d in summary.deliveries or [] if d.bad_kind]
        assert bad, "the producer made no invalid records"
        first_bad = {p: min(o for q, o in bad if q == p) for p, _ in bad}
        for w in workers:
            ps.wait_until(
                lambda w=w: not w.running,
                timeout=180,
                what=f"the {w.kind} worker to exit after its agent failed",
                describe=w.tail,
            )
            assert w.proc is not None and w.proc.returncode != 0, w.tail()
            log = w.log_path.read_text()
            assert f"dead-letter topic {names.dlq_topic}" in log, w.tail()
            assert "MessageSizeTooLargeError" in log, w.tail()
            assert "Traceback" not in log, "a known failure is one clear line, not a traceback"
            # nothing committed past a record that could not be dead-lettered
            done = ps.committed(stack, groups[w.kind], names.topic, stack.partitions)
            past = {p: done[p] for p, o in first_bad.items() if done[p] > o}
            assert not past, f"{w.kind}: committed past an invalid record: {past} vs {first_bad}"

        _set_max_message_bytes(stack, names.dlq_topic, None)
        for w in workers:
            w.start()
        ps.wait_drained(
            stack, names, workers, timeout=240, what="the restarted workers to catch up"
        )
        assert all(w.running for w in workers), ps.logs(workers)
        ps.assert_exact(stack, names, summary)
        for group in groups.values():
            dead = {ps.source_of(r) for r in ps.dead_letters(stack, names, group)}
            assert dead == set(bad), group
