"""The pipeline's two workers as subprocesses, pointed at one run's names.

`clickfan worker es|hdfs` is started exactly as a user would start it, with the
run's topic, dead-letter topic, group, index prefix or HDFS root as flags; the
environment (CLICKFAN_*) carries the stack's addresses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clickfan.errors import ClickfanError
from clickfan.experiments.framework import Context
from clickfan.experiments.offsets import GroupOffsets
from clickfan.supervision import child_env


def clickfan_executable() -> list[str]:
    beside = Path(sys.executable).with_name("clickfan")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("clickfan")
    if found:
        return [found]
    return [sys.executable, "-c", "from clickfan.app.cli import main; main()"]


class Worker:
    def __init__(
        self,
        ctx: Context,
        kind: str,
        dlq_topic: str,
        topic: str | None = None,
        group: str | None = None,
        hdfs_root: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.kind = kind
        names = ctx.names
        self.group = group or (names.es_group if kind == "es" else names.hdfs_group)
        self.args = [
            "worker",
            kind,
            "--topic",
            topic or names.topic,
            "--dlq-topic",
            dlq_topic,
            "--group",
            self.group,
            "--bootstrap-servers",
            ctx.settings.bootstrap_servers,
        ]
        if kind == "es":
            self.args += ["--index-prefix", names.index_prefix]
        else:
            # small, quick files: the experiments look at the archive within seconds
            root = hdfs_root or names.hdfs_root
            self.args += ["--hdfs-root", root, "--roll-seconds", "2"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = ctx.out_dir / f"worker-{kind}-{self.group.rsplit('.', 1)[-1]}.log"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.ctx.out_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"\n--- start {self.starts}: clickfan {' '.join(self.args)}\n".encode())
            self.proc = subprocess.Popen(
                [*clickfan_executable(), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=child_env(),  # stops by itself should the experiment be killed
            )

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM (the worker flushes and commits), SIGKILL after the timeout."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            raise ClickfanError(
                f"clickfan worker {self.kind} exited with code {self.proc.returncode}:\n"
                + "\n".join(tail)
            )


def lag(offsets: GroupOffsets, group: str, topic: str, partitions: int) -> int:
    """Total lag of ``group`` on ``topic`` (log end - committed; no commit = whole log)."""
    tps = [(topic, p) for p in range(partitions)]
    ends = offsets.log_end(tps)
    starts = offsets.log_start(tps)
    committed = offsets.committed(group)
    return sum(ends[tp] - committed.get(tp, starts[tp]) for tp in tps)


def wait_until(
    what: str,
    probe: Callable[[], Any],
    timeout_s: float,
    workers: tuple[Worker, ...] = (),
    pause_s: float = 1.0,
) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        for w in workers:
            w.check_alive()
        last = probe()
        if last:
            return last
        time.sleep(pause_s)
    raise ClickfanError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


def wait_group_empty(offsets: GroupOffsets, group: str, timeout_s: float = 60) -> None:
    def empty() -> bool:
        state, members = offsets.active_members(group)
        return not members

    wait_until(f"group {group} to have no members", empty, timeout_s)


def create_dlq(ctx: Context, partitions: int | None = None) -> str:
    return ctx.create_topic(f"{ctx.names.topic}.dlq", partitions=partitions)


def es_cleanup(ctx: Context) -> None:
    from clickfan.experiments.elastic import client

    def delete() -> None:
        es = client(ctx.settings)
        es.indices.delete(
            index=f"{ctx.names.index_prefix}-*", ignore_unavailable=True, allow_no_indices=True
        )
        es.options(ignore_status=404).indices.delete_index_template(name=ctx.names.index_prefix)

    ctx.on_cleanup(f"delete indices {ctx.names.index_prefix}-* and their template", delete)


def hdfs_client(ctx: Context) -> Any:
    from clickfan.sinks import clients

    return clients.webhdfs_client(clients.webhdfs_connection(ctx.settings, timeout_s=30))


def hdfs_cleanup(ctx: Context) -> None:
    ctx.on_cleanup(
        f"delete HDFS {ctx.names.hdfs_root}",
        lambda: hdfs_client(ctx).delete(ctx.names.hdfs_root, recursive=True),
    )


def hdfs_archive(ctx: Context, root: str | None = None) -> dict[str, Any]:
    """What the archive holds: files (by name, outside _tmp) and the event ids in them."""
    from hdfs.util import HdfsError

    from clickfan.sinks.hdfs_layout import ArchiveFile
    from clickfan.sinks.hdfs_read import read_archive

    client = hdfs_client(ctx)
    root = root or ctx.names.hdfs_root
    files: list[ArchiveFile] = []
    event_ids: list[str] = []
    try:
        for f in read_archive(client, root):  # JSON Lines and Parquet alike
            files.append(f.name)
            event_ids.extend(e["event_id"] for e in f.events)
    except HdfsError:
        return {"files": [], "event_ids": []}
    return {"files": files, "event_ids": event_ids}
