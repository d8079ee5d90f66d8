"""A day's index closed, or write-blocked, while the indexer runs: held, never dead-lettered.

Elasticsearch answers each document of a bulk request for a closed index
with index_closed_exception, and for a write-blocked one with
cluster_block_exception. Neither is the document's fault: the indexer must
hold its offsets, retry with backoff and say why in its log, and when the
index is writable again index every event, with nothing in the dead-letter
topic.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from clickfan.settings import Settings
from tests.integration import pipeline_support as ps
from tests.support import Names

EVENTS = 1_000
# every event of the test on one day, so one index is blocked for all of them
DAY = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _close(es: Elasticsearch, index: str) -> None:
    es.indices.close(index=index)


def _open(es: Elasticsearch, index: str) -> None:
    es.indices.open(index=index, wait_for_active_shards="all")


def _block(es: Elasticsearch, index: str) -> None:
    es.indices.put_settings(index=index, settings={"index.blocks.write": True})


def _unblock(es: Elasticsearch, index: str) -> None:
    es.indices.put_settings(index=index, settings={"index.blocks.write": False})


Change = Callable[[Elasticsearch, str], None]


def _indexed(stack: Settings, names: Names, workers: ps.Workers, what: str) -> None:
    ps.wait_drained(stack, names, workers, groups=[names.es_group], timeout=180, what=what)


@pytest.mark.parametrize(
    ("block", "lift", "error"),
    [
        (_close, _open, "index_closed_exception"),
        (_block, _unblock, "cluster_block_exception"),
    ],
    ids=["closed", "write-block"],
)
def test_a_blocked_index_holds_offsets_and_nothing_is_dead_lettered(
    stack: Settings, names: Names, tmp_path: Path, block: Change, lift: Change, error: str
) -> None:
    es = ps.es_client(stack)
    index = f"{names.index_prefix}-{DAY:%Y.%m.%d}"
    with ps.running_workers(ps.worker_env(stack, names), tmp_path, kinds=["es"]) as workers:
        (worker,) = workers
        before = ps.produce(stack, names, EVENTS, start_time=DAY, seed=7)
        _indexed(stack, names, workers, "the indexer to index the first events")
        block(es, index)
        try:
            after = ps.produce(stack, names, EVENTS, start_time=DAY.replace(hour=13), seed=8)
            ps.wait_until(
                lambda: error in worker.log_path.read_text(),
                timeout=120,
                what=f"the indexer to log {error}",
                describe=worker.tail,
            )
            assert worker.running, worker.tail()
            assert ps.lag(stack, names.es_group, names.topic) > 0, "committed while blocked"
            assert ps.dead_letters(stack, names, names.es_group) == []
        finally:
            lift(es, index)
        _indexed(stack, names, workers, "the indexer to catch up once the index is writable")
        produced = {eid for s in (before, after) for eid, _, _ in ps.iter_valid(s)}
        ids = ps.es_ids(stack, names)
        assert set(ids) == produced, (
            f"{len(produced - set(ids))} events missing, {len(set(ids) - produced)} unexpected"
        )
        assert ps.dead_letters(stack, names, names.es_group) == []
        log = worker.log_path.read_text()
        assert "open the index, lift the block" in log  # it says what to do
        assert "is back after" in log
    assert workers.codes == [0], worker.tail()  # a clean stop after all that
