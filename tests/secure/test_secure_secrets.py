"""No password of the secure stack on any process's command line, nor in `clickfan status`.

The brokers, Elasticsearch, the NameNode, the DataNode and both workers are running
(the workers have indexed and archived, so they did log in); every process of this
machine is checked, not only ours: a password must not leak into any argv.
"""

from __future__ import annotations

import json
from pathlib import Path

from clickfan.settings import Settings
from clickfan.sinks import clients
from tests.integration import pipeline_support as ps
from tests.secure.conftest import identity, secure_env, worker_env
from tests.support import Names, argv_of_every_process, clickfan, running_workers, wait_drained


def _passwords(settings: Settings) -> dict[str, str]:
    secure = settings.home / "secure"
    found = {
        f"kafka {user}": password
        for user, password in json.loads((secure / "kafka-passwords.json").read_text()).items()
    }
    for user in (clients.ES_ADMIN_USER, clients.ES_INDEXER_USER):
        found[f"elasticsearch {user}"] = (
            clients.es_password_file_of(settings, user).read_text().strip()
        )
    assert len(found) == 7 and all(len(p) >= 16 for p in found.values()), sorted(found)
    return found


def test_no_password_in_any_argv_nor_in_status(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    s, names = secure_stack, secure_names
    passwords = _passwords(s)
    with running_workers(worker_env(s, names), tmp_path) as workers:
        with identity(s, "producer"):
            ps.produce(s, names, 50)
        wait_drained(s, names, workers, timeout=180, what="both workers to commit", fail_fast=True)
        assert all(w.running for w in workers), ps.logs(workers)
        argv = argv_of_every_process()
        ours = {w.proc.pid for w in workers if w.proc} | {
            int(p.read_text().split()[0]) for p in (s.home / "run").glob("*.pid")
        }
        assert len(ours) >= 8 and ours <= argv.keys(), (ours, sorted(argv))
        leaks = [
            f"{what} on pid {pid}"
            for pid, line in argv.items()
            for what, password in passwords.items()
            if password in line
        ]
        assert not leaks, leaks
    for w in workers:
        log = w.log_path.read_text()
        assert not [what for what, p in passwords.items() if p in log], w.log_path

    # status finds the admin's password in the home; and one given in the environment
    given = {
        "CLICKFAN_ES_USERNAME": clients.ES_INDEXER_USER,
        "CLICKFAN_ES_PASSWORD": passwords[f"elasticsearch {clients.ES_INDEXER_USER}"],
    }
    for extra in ({}, given):
        env = secure_env(s, **extra)
        shown = clickfan("status", env=env, replace_env=True, timeout=120)
        as_json = clickfan("status", "--json", env=env, replace_env=True, timeout=120)
        report = json.loads(as_json.stdout)
        # it did log in everywhere (the services answer only with credentials) ...
        assert report["healthy"], as_json.stdout
        assert {x["state"] for x in report["services"]} == {"healthy"}, as_json.stdout
        # ... and printed no password
        out = shown.stdout + shown.stderr + as_json.stdout + as_json.stderr
        assert not [what for what, p in passwords.items() if p in out]
