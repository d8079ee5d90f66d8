"""Pure parts of bulk indexing: cutting a batch into requests, judging each item's result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from clickfan.sinks.base import SinkRecord

# action line, separators and a margin: what a document adds to a request besides its source
_PER_DOC_OVERHEAD = 160


@dataclass(frozen=True)
class Doc:
    record: SinkRecord
    index: str
    id: str
    size: int  # bytes it adds to a bulk request (estimate)


class Outcome(Enum):
    INDEXED = "indexed"
    RETRY = "retry"  # 429 or 5xx: the cluster is busy or broken, try again later
    # The cluster's state refuses writes (index closed, write block, index missing with
    # auto-create off): not the document's fault, so it is held and retried until an
    # operator fixes the cluster; it must not be dead-lettered.
    HOLD = "hold"
    # Our credentials may not write there (401, security_exception): no retry helps, the
    # worker stops with the reason (offsets not committed); never dead-lettered.
    REFUSED = "refused"
    REJECTED = "rejected"  # the document's fault (mapping, parsing, a field's value): DLQ


# Error types of a bulk item that say something about the cluster, not the document.
CLUSTER_STATE_ERRORS = frozenset(
    {
        "index_closed_exception",
        "cluster_block_exception",
        "index_not_found_exception",
    }
)


def outcome(status: int, error_type: str = "") -> Outcome:
    """What an item's status and error type mean.

    Any other 4xx (mapper_parsing_exception, document_parsing_exception,
    strict_dynamic_mapping_exception, illegal_argument_exception on a field, or
    a type we do not know) is the document's: it goes to the dead-letter topic
    with the reason, so one document can never stop the indexer.
    """
    if 200 <= status < 300:
        return Outcome.INDEXED
    if status == 429 or status >= 500:
        return Outcome.RETRY
    if status == 401 or error_type == "security_exception":
        return Outcome.REFUSED
    if status == 403 or error_type in CLUSTER_STATE_ERRORS:
        return Outcome.HOLD
    return Outcome.REJECTED


def doc_size(record: SinkRecord) -> int:
    return len(record.value or b"") + _PER_DOC_OVERHEAD


def first_chunk(docs: Sequence[Doc], max_bytes: int) -> Sequence[Doc]:
    """The longest head of ``docs`` within ``max_bytes`` (at least one document)."""
    total = 0
    for i, doc in enumerate(docs):
        total += doc.size
        if total > max_bytes and i > 0:
            return docs[:i]
    return docs


def operations(docs: Sequence[Doc]) -> list[dict[str, Any]]:
    """The bulk body: an ``index`` action (id = event_id, so a replay overwrites) and the event."""
    ops: list[dict[str, Any]] = []
    for doc in docs:
        ops.append({"index": {"_index": doc.index, "_id": doc.id}})
        ops.append(doc.record.event or {})
    return ops


def _result(item: dict[str, Any]) -> dict[str, Any]:
    result = item.get("index") or next(iter(item.values()), {})
    return result if isinstance(result, dict) else {}


def judge(item: dict[str, Any]) -> tuple[Outcome, str]:
    """The outcome of one entry of a bulk response's ``items`` and its error text."""
    status, text = item_status(item)
    error = _result(item).get("error")
    error_type = str(error.get("type", "")) if isinstance(error, dict) else ""
    return outcome(status, error_type), text


def item_status(item: dict[str, Any]) -> tuple[int, str]:
    """Status and error text of one entry of a bulk response's ``items``."""
    result = _result(item)
    error = result.get("error")
    if isinstance(error, dict):
        cause = error.get("caused_by", {}).get("reason")
        text = f"{error.get('type')}: {error.get('reason')}" + (f" ({cause})" if cause else "")
    else:
        text = str(error or "")
    return int(result.get("status", 500)), text
