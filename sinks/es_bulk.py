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
    REJECTED = "rejected"  # any other 4xx: this document will never be accepted


def outcome(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.INDEXED
    if status == 429 or status >= 500:
        return Outcome.RETRY
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


def item_status(item: dict[str, Any]) -> tuple[int, str]:
    """Status and error text of one entry of a bulk response's ``items``."""
    result = item.get("index") or next(iter(item.values()), {})
    error = result.get("error")
    if isinstance(error, dict):
        cause = error.get("caused_by", {}).get("reason")
        text = f"{error.get('type')}: {error.get('reason')}" + (f" ({cause})" if cause else "")
    else:
        text = str(error or "")
    return int(result.get("status", 500)), text
