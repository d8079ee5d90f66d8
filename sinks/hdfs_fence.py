"""One writer per partition, even with a zombie: owner folders and the fence (pure: no I/O).

The problem. An archiver stalls (SIGSTOP, a long GC pause, a frozen VM) past
the session timeout while it holds a partition's records in memory; Kafka
gives the partition to another archiver, which archives the same offsets.
When the stalled one (the zombie) wakes up, its roll timer fires before it
hears from the group coordinator that it lost the partition, and without a
fence it would commit and publish files for offsets its successor publishes.

Kafka Connect's HDFS sink fences through the HDFS lease of a per-partition
write-ahead log that the writer keeps open (FSWAL.acquireLease). WebHDFS
cannot hold a lease across requests, so clickfan fences with the one step
the NameNode performs atomically: a rename.

Layout under ``<root>/_tmp/<topic>+<partition>/``:

    <owner>/                            the folder of one owner (a random id per take-over)
        <start>+<end>~<bucket>~<file>   a roll's file, flat ('/' of the bucket as '~')
        <start>+<end>~commit            the roll's marker, before it is committed
        <other owner>/...               a fenced owner's folder, moved in whole
        <topic>+<p>+<start>+<end>/...   a roll of the layout before owner folders, moved in

Three rules make the owner folder the fence:

1. Taking a partition over: create a new owner folder (one MKDIRS), then
   rename every other entry of ``_tmp/<topic>+<p>/`` (and legacy rolls of the
   partition) into it, and only then list ``_committed/`` and recover: finish
   the committed rolls found in the moved folders, delete the others.
2. An owner writes only inside its own folder, with ``createparent=false``:
   once its folder has been moved away, a write fails instead of quietly
   creating the folder again (MKDIRS would; it is never used inside it).
3. Every step that makes a roll visible is a rename whose source is in the
   owner's folder: committing (``<start>+<end>~commit`` -> ``_committed/``)
   and publishing (each file -> its hour folder). Once the folder has been
   moved, the source is gone and the rename fails; the owner then finds its
   folder missing and knows it is fenced (never a transient error to retry).

How the zombie Z and its successor S interleave (the NameNode orders the
renames; S's fence is the rename of Z's folder into S's):

- Z committed and published before the fence: S lists Z's marker after the
  fence and resumes after it. Z's next write or rename fails: fenced.
- Z committed before the fence, published part of it: S finds the rest of the
  roll in the moved folder, covered by Z's marker, and publishes it. Each file
  is moved by exactly one rename, Z's or S's; Z's next rename fails: fenced.
- Z wrote (some of) a roll's files, had not committed: Z's commit rename (or
  its next write) fails; S finds no marker covering the roll, deletes it and
  archives those offsets itself from Kafka.
- Z wakes during S's recovery: all of Z's steps fail as above, whatever S is
  doing; S's own recovery renames need only S's folder.
- S is itself stalled and fenced by a third owner T during its recovery: Z's
  folder is inside S's, so T's one rename takes both; T finishes both and
  S's renames fail.
- A rename whose answer was lost (timeout): the owner checks whether the
  source left and the target arrived; if its own folder is gone it is fenced
  whatever happened, and the successor finishes or drops that roll.

Whatever the order, a roll becomes committed only by a rename out of the
folder of an owner that was not yet fenced, and the successor reads the
markers only after fencing, so committed ranges never overlap and each
archive file is renamed into place exactly once.

A fenced owner drops the partition until its next assignment: a successor
exists only because the group moved the partition, so the zombie learns that
it lost it (its heartbeat fails) and rejoins; a fence never needs a retry.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from clickfan.sinks.hdfs_layout import TMP_DIR, Marker, Roll

_SEP = "~"  # cannot occur in a Kafka topic name ([a-zA-Z0-9._-]) nor in a bucket
_COMMIT = "commit"


def partition_dir(topic: str, partition: int) -> str:
    """The folder of a partition's owner folders, relative to the root."""
    return posixpath.join(TMP_DIR, f"{topic}+{partition}")


def data_name(start: int, end: int, bucket: str, file_name: str) -> str:
    """The temp name of one file of roll ``start..end``, flat in the owner folder."""
    return _SEP.join([f"{start}+{end}", bucket.replace("/", _SEP), file_name])


def commit_name(start: int, end: int) -> str:
    """The temp name of roll ``start..end``'s marker, renamed into _committed to commit it."""
    return f"{start}+{end}{_SEP}{_COMMIT}"


@dataclass(frozen=True)
class TempFile:
    """A file found in an owner folder: part of roll start..end."""

    start: int
    end: int
    dest: str | None  # where it is published, relative to the root; None: a temp marker


def _range(text: str) -> tuple[int, int] | None:
    fields = text.split("+")
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        return None
    return int(fields[0]), int(fields[1])


def parse_temp(relpath: str, topic: str, partition: int) -> TempFile | None:
    """What a file at ``relpath`` (below an owner folder, at any depth) is; None: unknown."""
    parts = relpath.split("/")
    name = parts[-1]
    if _SEP in name:
        fields = name.split(_SEP)
        span = _range(fields[0])
        if span is None:
            return None
        if fields[1:] == [_COMMIT]:
            return TempFile(*span, dest=None)
        if len(fields) < 3 or not fields[-1]:
            return None
        return TempFile(*span, dest="/".join(fields[1:]))
    # the layout before owner folders: <topic>+<p>+<start>+<end>/<bucket>/<file>
    for i, part in enumerate(parts[:-1]):
        roll = Roll.parse(part)
        if roll is not None and (roll.topic, roll.partition) == (topic, partition):
            return TempFile(roll.start, roll.end, dest="/".join(parts[i + 1 :]))
    return None


@dataclass
class TakeOverPlan:
    """What a new owner does with the leftovers it fenced, before it archives again."""

    committed_end: int | None  # None: nothing of this partition was ever committed
    publish: list[tuple[str, str]] = field(default_factory=list)  # (relpath, dest) to rename
    finished: set[tuple[int, int]] = field(default_factory=set)  # committed rolls finished
    dropped: set[tuple[int, int]] = field(default_factory=set)  # uncommitted rolls deleted
    unknown: list[str] = field(default_factory=list)  # not ours: deleted with the folders
    stale_markers: list[Marker] = field(default_factory=list)  # superseded: delete

    @property
    def resume_offset(self) -> int | None:
        """The first offset not yet archived; earlier ones are skipped when re-read."""
        return None if self.committed_end is None else self.committed_end + 1


def plan_take_over(
    topic: str, partition: int, marker_names: list[str], fenced_files: list[str]
) -> TakeOverPlan:
    """Decide from ``_committed`` (listed after the fence) and the fenced files what to do.

    ``fenced_files`` are paths relative to the new owner's folder. A roll is
    committed when a marker covers its end: the markers of a partition form a
    prefix of its offsets, and a successor resumes after the newest one.
    """
    markers = sorted(
        m
        for m in map(Marker.parse, marker_names)
        if m is not None and (m.topic, m.partition) == (topic, partition)
    )
    committed_end = markers[-1].end if markers else None
    plan = TakeOverPlan(committed_end, stale_markers=markers[:-1])
    for relpath in sorted(fenced_files):
        temp = parse_temp(relpath, topic, partition)
        if temp is None:
            plan.unknown.append(relpath)
            continue
        span = (temp.start, temp.end)
        if committed_end is not None and temp.end <= committed_end:
            # a committed roll's temp marker was renamed away; a leftover one is harmless
            if temp.dest is not None:
                plan.publish.append((relpath, temp.dest))
            plan.finished.add(span)
        else:
            plan.dropped.add(span)
    return plan
