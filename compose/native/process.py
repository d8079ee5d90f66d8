"""Start, find and stop the services' OS processes.

Every service runs in its own session (process group) so that stopping it
also stops what it spawned (Elasticsearch's launcher starts the server JVM as
a child). A pid file alone is not trusted: a pid counts as the service only
while its command line still carries the service's marker, so a stale pid file
left by a crash (or a pid reused by another program) never blocks a start.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import psutil

from clickfan.errors import ClickfanError


@dataclass
class LaunchSpec:
    name: str
    argv: list[str]
    marker: str  # a string only this service's command line carries
    log_file: Path
    pid_file: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # run as this user (Elasticsearch refuses root)


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The live pid recorded in pid_file, or None (a stale file is removed)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        alive = proc.status() != psutil.STATUS_ZOMBIE and marker in " ".join(proc.cmdline())
    except psutil.Error:
        alive = False
    if not alive:
        pid_file.unlink(missing_ok=True)
        return None
    return pid


def start(spec: LaunchSpec) -> int:
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **spec.env}
    with open(spec.log_file, "ab") as log:
        proc = subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=spec.user,
            group=spec.user,
        )
    spec.pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def exec_foreground(spec: LaunchSpec) -> NoReturn:
    """Become the service: the main process of a container, logging to its stdout.

    No pid file and no log file: the container engine keeps both.
    """
    os.chdir(spec.cwd)
    if spec.user:
        account = pwd.getpwnam(spec.user)
        os.setgroups([])
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    os.execvpe(spec.argv[0], spec.argv, {**os.environ, **spec.env})


def exited_early(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stop(pid: int, timeout_s: float) -> bool:
    """SIGTERM the service's process group, SIGKILL it after timeout_s.

    Returns True when it stopped gracefully.
    """
    return stop_many([pid], timeout_s)[pid]


def stop_many(pids: list[int], timeout_s: float) -> dict[int, bool]:
    """Stop several services at once; pid -> whether it stopped gracefully.

    Together, not one after the other: a KRaft broker's controlled shutdown
    needs the controller quorum, which stopping brokers one by one takes away.
    """
    groups: dict[int, int] = {}
    for pid in pids:
        try:
            groups[pid] = os.getpgid(pid)
            os.killpg(groups[pid], signal.SIGTERM)
        except ProcessLookupError:
            groups.pop(pid, None)
    graceful = {pid: True for pid in pids}
    deadline = time.monotonic() + timeout_s
    while groups and time.monotonic() < deadline:
        groups = {pid: pgid for pid, pgid in groups.items() if _group_alive(pgid)}
        time.sleep(0.2)
    for pid, pgid in groups.items():
        graceful[pid] = False
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return graceful


def _group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def resident_bytes(pid: int) -> int:
    """RSS of a service: the process and all its children."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str:
    """Who listens on port, as 'pid 123 (java)', or a hint when it cannot be seen."""
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return "another process (run as root, or `ss -ltnp`, to see which)"
    for conn in conns:
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            if conn.pid is None:
                return "a process of another user"
            try:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({proc.name()}: {' '.join(proc.cmdline())[:120]})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return "another process"


def check_ports_free(host: str, wanted: dict[str, int]) -> None:
    """Raise naming every taken port and its owner before anything starts."""
    taken = [
        f"  port {port} ({what}) is taken by {port_owner(port)}"
        for what, port in wanted.items()
        if not port_is_free(host, port)
    ]
    if taken:
        raise ClickfanError(
            "cannot start the stack, ports in use:\n"
            + "\n".join(taken)
            + "\nStop that program, or choose other ports (CLICKFAN_*_PORT[S], see README)."
        )
