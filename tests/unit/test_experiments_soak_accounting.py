"""The soak's accounting: each kind of misplacement is counted, and a clean run counts none."""

from __future__ import annotations

import json
from collections import Counter

from clickfan.experiments.soak_accounting import (
    HOSTILE_TAG,
    DeadLetter,
    LogRecord,
    account,
)
from clickfan.generators.hostile import INVALID, VALID, Hostile

GROUPS = ("g.es", "g.hdfs")
BAD = Hostile("value:empty", b"k", b"", INVALID, "empty")
GOOD = Hostile("key:none", None, json.dumps({"event_id": "h1"}).encode(), VALID, "", (), "h1")


def _event(event_id: str) -> bytes:
    return json.dumps({"event_id": event_id, "city": "x"}).encode()


def _letter(group: str, coord: tuple[int, int], reason: bytes = b"empty") -> DeadLetter:
    return DeadLetter(
        {
            "clickfan.dlq.group": group.encode(),
            "clickfan.error.reason": reason,
            "clickfan.source.partition": str(coord[0]).encode(),
            "clickfan.source.offset": str(coord[1]).encode(),
        }
    )


def _log() -> list[LogRecord]:
    return [
        LogRecord(0, 0, _event("e0"), {}),
        LogRecord(0, 1, BAD.value, {HOSTILE_TAG: b"value:empty"}),
        LogRecord(1, 0, _event("e1"), {}),
        LogRecord(1, 1, GOOD.value, {HOSTILE_TAG: b"key:none"}),
        # a hostile record without a delivery report: either outcome is fine
        LogRecord(1, 2, _event("u1"), None),
    ]


def _clean() -> dict:
    return {
        "log": _log(),
        "acknowledged": [(0, 0), (1, 0)],
        "placed": {(0, 1): BAD, (1, 1): GOOD},
        "es_ids": Counter({"e0": 1, "e1": 1, "h1": 1, "u1": 1}),
        "archived": [(0, "e0"), (1, "e1"), (1, "h1")],
        "dead_letters": [_letter(g, (0, 1)) for g in GROUPS] + [_letter("g.hdfs", (1, 2))],
        "groups": GROUPS,
    }


def test_a_clean_run_counts_nothing_wrong() -> None:
    a = account(**_clean())
    assert a.ok, a.to_dict()
    assert (a.generated, a.hostile_valid, a.hostile_invalid, a.hostile_unreported) == (2, 1, 1, 1)
    assert a.valid == 3
    assert a.dlq["g.es"].once == a.dlq["g.hdfs"].once == 1


def test_losses_duplicates_and_strays_are_counted() -> None:
    run = _clean()
    run["es_ids"] = Counter({"e0": 2, "h1": 1, "zz": 1})  # e1 lost, e0 in two indices
    run["archived"] = [(0, "e0"), (0, "e0"), (1, "h1"), (1, "nope")]  # e1 lost, e0 twice
    run["acknowledged"] = [(0, 0), (1, 0), (2, 0)]  # (2, 0) acknowledged, not in the log
    a = account(**run)
    assert (a.es_lost, a.es_duplicated, a.es_unexpected) == (1, 1, 1)
    assert (a.hdfs_lost, a.hdfs_duplicated, a.hdfs_unexpected) == (1, 1, 1)
    assert a.acknowledged_not_in_log == 1
    assert a.lost == 3 and a.duplicated == 2 and not a.ok


def test_dead_letters_missing_twice_or_of_valid_records_are_misplaced() -> None:
    run = _clean()
    run["dead_letters"] = [
        _letter("g.es", (0, 1)),
        _letter("g.es", (0, 1)),  # twice
        _letter("g.es", (1, 0), b""),  # a valid record, without a reason
        # g.hdfs: the invalid record is missing
    ]
    a = account(**run)
    es, hdfs = a.dlq["g.es"], a.dlq["g.hdfs"]
    assert (es.once, es.more_than_once, es.valid_dead_lettered, es.without_reason) == (0, 1, 1, 1)
    assert (hdfs.once, hdfs.missing) == (0, 1)
    assert a.hostile_misplaced == 4 and not a.ok


def test_dead_letters_no_client_can_read_are_not_ok() -> None:
    run = _clean()
    run["dead_letters"] = [*run["dead_letters"], DeadLetter(None)]
    a = account(**run)
    assert a.dlq_unreadable == 1 and not a.ok
