"""`clickfan lag` as text: one table per group, or one line per group."""

from __future__ import annotations

from clickfan.lagmon.protocol import Status
from clickfan.lagmon.reader import GroupRow, status_name


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, *rows]
    )


def _shown(status: Status | None) -> str:
    return status_name(status) or "-"


def render(rows: list[GroupRow], one_group: bool) -> str:
    """A partition without a commit shows COMMITTED "-" as Kafka's tool does; its LAG
    is the whole log, so that the total adds up; a note line says so."""
    if one_group:
        g = rows[0]
        head = (
            f"cluster {g.cluster}  group {g.group}  status {_shown(g.status)}  "
            f"total lag {g.totallag}  records-lag-max {g.records_lag_max}"
        )
        if g.note:
            head += f"  ({g.note}: lag counts the whole log)"
        body = [
            [
                p.topic,
                str(p.partition),
                "-" if p.committed is None else str(p.committed),
                str(p.log_end),
                str(p.lag),
                _shown(p.status),
            ]
            for p in g.partitions
        ]
        headers = ["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "STATUS"]
        return f"{head}\n{_table(headers, body)}"
    body = [
        [g.group, _shown(g.status), str(g.totallag), str(g.records_lag_max), str(len(g.partitions))]
        for g in rows
    ]
    headers = ["GROUP", "STATUS", "TOTAL-LAG", "RECORDS-LAG-MAX", "PARTITIONS"]
    notes = [f"{g.group}: {g.note} (its lag counts the whole log)" for g in rows if g.note]
    return "\n".join([_table(headers, body), *notes])
