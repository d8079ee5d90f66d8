"""The indexer's API key on the secure stack: the `.security` index exists (with the
clickfan-analysis plugin's components in its `email` analyzer), the indexer writes with
the key by default, the key may write only <index_prefix>-*, an invalidated key stops
the worker loudly, and the key shows nowhere. Run: `make test-secure`.
"""

from __future__ import annotations

import base64
import stat
from pathlib import Path

from clickfan.compose.native.services.elasticsearch import INDEXER_ROLE, indexer_role
from clickfan.generators.producer import ProduceSummary
from clickfan.settings import Secret, Settings, load
from clickfan.sinks import clients
from clickfan.streams import configs
from tests.integration import pipeline_support as ps
from tests.secure.conftest import identity, secure_env, worker_env
from tests.support import Names, WorkerProcess, argv_of_every_process, clickfan, wait_until

EVENTS = 300


def _admin(settings: Settings) -> clients.HttpNodes:
    return clients.elasticsearch_http(clients.elasticsearch_connection(settings, timeout_s=60))


def _with_key(settings: Settings, key: str) -> clients.HttpNodes:
    given = settings.with_overrides(es_api_key=Secret(key))
    conn = clients.elasticsearch_connection(given, timeout_s=60)
    return clients.elasticsearch_http(conn)


def _stack_key(settings: Settings) -> str:
    return clients.es_api_key_file_of(settings).read_text().strip()


def _key_material(encoded: str) -> list[str]:
    """What must never be shown: the encoded key and its secret half (``id:secret``)."""
    return [encoded, base64.b64decode(encoded).decode().split(":", 1)[1]]


def _produce(settings: Settings, names: Names, count: int, seed: int = 7) -> ProduceSummary:
    with identity(settings, "producer"):
        return ps.produce(settings, names, count, seed=seed)


def _exits(worker: WorkerProcess, timeout: float = 120) -> int:
    assert worker.proc is not None
    wait_until(lambda: not worker.running, timeout, f"{worker.log_path.name} to exit", worker.tail)
    return int(worker.proc.returncode)


def test_the_security_index_holds_the_indexers_key_and_analyses_with_the_plugin(
    secure_stack: Settings,
) -> None:
    s = secure_stack
    key_file = clients.es_api_key_file_of(s)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    admin = _admin(s)
    try:
        indices = admin.get("/_cat/indices/.security*?format=json&expand_wildcards=all").json()
        [main] = [i for i in indices if i["index"] == ".security-7"]  # behind .security
        assert main["health"] == "green", indices
        # the key is the indexer's role, nothing more (its owner, admin, could do anything)
        as_key = _with_key(s, _stack_key(s))
        try:
            me = as_key.get("/_security/_authenticate").json()
        finally:
            as_key.close()
        assert me["authentication_type"] == "api_key", me
        found = admin.get("/_security/api_key", params={"id": me["api_key"]["id"]}).json()
        [key] = found["api_keys"]
        assert not key["invalidated"] and list(key["role_descriptors"]) == [INDEXER_ROLE]
        granted = key["role_descriptors"][INDEXER_ROLE]
        wanted = indexer_role(s.index_prefix)
        assert sorted(granted["cluster"]) == sorted(wanted["cluster"])
        assert [(i["names"], sorted(i["privileges"])) for i in granted["indices"]] == [
            (i["names"], sorted(i["privileges"])) for i in wanted["indices"]
        ]
        # the .security index's own `email` analyzer (no one may analyze on that index:
        # its definition is replayed) runs on the plugin's uax_url_email, pattern_capture
        # (the index's patterns, original kept) and unique: the domain is captured twice,
        # by ([^@]+) and @(.+), and kept once
        settings = admin.get("/.security-7/_settings").json()[".security-7"]["settings"]
        analysis = settings["index"]["analysis"]
        email = analysis["analyzer"]["email"]
        filters = [analysis["filter"].get(f, f) for f in email["filter"]]
        assert filters[0]["type"] == "pattern_capture", analysis
        answer = admin.request(
            "POST",
            "/_analyze",
            json={
                "tokenizer": email["tokenizer"],
                "filter": filters,
                "text": "John.Smith42@Example.com",
            },
        )
        assert answer.status_code == 200, answer.text
        tokens = [t["token"] for t in answer.json()["tokens"]]
        assert tokens == [
            "john.smith42@example.com",
            "john.smith42",
            "john",
            "smith",
            "42",
            "example.com",
            "example",
            "com",
        ]
    finally:
        admin.close()


def _analyze(http: clients.HttpNodes, body: dict[str, object]) -> list[tuple[str, int]]:
    answer = http.request("POST", "/_analyze", json=body)
    assert answer.status_code == 200, answer.text
    return [(t["token"], t["position"]) for t in answer.json()["tokens"]]


def test_the_plugins_components_keep_their_elasticsearch_settings(secure_stack: Settings) -> None:
    """Each setting of analysis-common's three, with its default, as Elasticsearch documents
    them. "Aa Aa" through pattern_capture (A) and (a), then lowercase: two equal "a" at each
    position, and the same three tokens again at the next position."""
    admin = _admin(secure_stack)
    capture = {"type": "pattern_capture", "patterns": ["(A)", "(a)"]}

    def chain(*after: object, text: str = "Aa Aa") -> list[tuple[str, int]]:
        return _analyze(
            admin, {"tokenizer": "standard", "filter": [capture, "lowercase", *after], "text": text}
        )

    try:
        assert chain() == [("aa", 0), ("a", 0), ("a", 0), ("aa", 1), ("a", 1), ("a", 1)]
        # unique: each term once in the whole stream
        assert chain("unique") == [("aa", 0), ("a", 0)]
        # only_on_same_position: once per position
        same = {"type": "unique", "only_on_same_position": True}
        assert chain(same) == [("aa", 0), ("a", 0), ("aa", 1), ("a", 1)]
        # pattern_capture keeps the original by default, and drops it when told
        no_original = {**capture, "preserve_original": False}
        assert _analyze(
            admin, {"tokenizer": "standard", "filter": [no_original], "text": "Aa"}
        ) == [("A", 0), ("a", 0)]
        missing = admin.request(
            "POST",
            "/_analyze",
            json={"tokenizer": "standard", "filter": [{"type": "pattern_capture"}], "text": "a"},
        )
        assert missing.status_code == 400 and "'patterns' is missing" in missing.text
        # uax_url_email: an e-mail address and a URL stay whole; max_token_length splits
        text = "mail a.b@c.org or http://example.com/x"
        assert _analyze(admin, {"tokenizer": "uax_url_email", "text": text}) == [
            ("mail", 0),
            ("a.b@c.org", 1),
            ("or", 2),
            ("http://example.com/x", 3),
        ]
        short = {"type": "uax_url_email", "max_token_length": 5}
        assert _analyze(admin, {"tokenizer": short, "text": "abcdefgh"}) == [
            ("abcde", 0),
            ("fgh", 1),
        ]
    finally:
        admin.close()


def test_the_indexer_uses_the_key_by_default_delivers_exactly_and_shows_it_nowhere(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    s, names = secure_stack, secure_names
    env = worker_env(s, names)  # no Elasticsearch credentials: the profile's defaults
    key = _stack_key(s)
    conn = configs.elasticsearch(load(env)).connection
    assert conn.api_key.reveal() == key and not conn.username and not conn.password
    worker = WorkerProcess("es", env, tmp_path, "es-api-key")
    summary = _produce(s, names, EVENTS)
    worker.start()
    try:
        wait_until(
            lambda: not worker.running or ps.lag(s, names.es_group, names.topic) == 0,
            180,
            "the indexer to commit every offset",
            worker.tail,
            interval=2,
        )
        assert worker.running, worker.tail()
        argv = argv_of_every_process()
        assert worker.proc is not None and worker.proc.pid in argv
        assert not [pid for pid, line in argv.items() if any(m in line for m in _key_material(key))]
    finally:
        assert worker.stop() == 0, worker.tail()
    ids = ps.es_ids(s, names)
    assert sorted(ids) == sorted(e for e, _, _ in ps.iter_valid(summary))
    assert set(ids.values()) == {1}
    assert not [m for m in _key_material(key) if m in worker.log_path.read_text()]
    status_env = secure_env(s)
    for args in (("status",), ("status", "--json")):
        shown = clickfan(*args, env=status_env, replace_env=True, timeout=120)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert not [m for m in _key_material(key) if m in shown.stdout + shown.stderr]


def test_the_key_is_refused_outside_its_indices(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    s, names = secure_stack, secure_names
    outside = f"{names.prefix}-clicks"  # not <index_prefix>-*
    http = _with_key(s, _stack_key(s))
    try:
        answer = http.request("PUT", f"/{outside}-x/_doc/1", json={"a": 1})
        assert answer.status_code == 403, answer.text
        assert "is unauthorized for API key" in answer.text, answer.text
        # the same request in its own indices is allowed
        own = http.request("PUT", f"/{names.index_prefix}-x/_doc/1", json={"a": 1})
        assert own.status_code == 201, own.text
    finally:
        http.close()
    # a worker whose indices are outside stops with one line, and holds its offsets
    worker = WorkerProcess(
        "es", worker_env(s, names, CLICKFAN_INDEX_PREFIX=outside), tmp_path, "es-outside"
    )
    _produce(s, names, 20)
    worker.start()
    code = _exits(worker)
    log = worker.log_path.read_text()
    assert code == 1, log
    assert [line for line in log.splitlines() if "does not allow the indexer to write" in line]
    assert "Traceback" not in log
    committed = ps.committed(s, names.es_group, names.topic, s.partitions)
    assert all(offset < 0 for offset in committed.values()), committed
    admin = _admin(s)
    try:  # and nothing was created there
        assert admin.get(f"/{outside}-*/_count").json()["count"] == 0
    finally:
        admin.close()


def test_an_invalidated_key_stops_the_worker_loudly_with_nothing_lost(
    secure_stack: Settings, secure_names: Names, tmp_path: Path
) -> None:
    s, names = secure_stack, secure_names
    admin = _admin(s)
    try:
        # a key of this test's own, as `up` makes the stack's (the others keep theirs)
        made = admin.request(
            "POST",
            "/_security/api_key",
            json={
                "name": f"clickfan-test-{names.prefix}",
                "role_descriptors": {INDEXER_ROLE: indexer_role(s.index_prefix)},
            },
        ).json()
        key_file = tmp_path / "api-key"
        key_file.write_text(made["encoded"] + "\n")
        key_file.chmod(0o600)
        env = worker_env(s, names, CLICKFAN_ES_API_KEY_FILE=str(key_file))
        worker = WorkerProcess("es", env, tmp_path, "es-invalidated")
        first = 50
        _produce(s, names, first)
        worker.start()
        try:
            wait_until(
                lambda: not worker.running or ps.lag(s, names.es_group, names.topic) == 0,
                180,
                "the first events committed",
                worker.tail,
                interval=2,
            )
            assert worker.running, worker.tail()
            gone = admin.request("DELETE", "/_security/api_key", json={"ids": [made["id"]]})
            assert gone.json()["invalidated_api_keys"] == [made["id"]], gone.text
            _produce(s, names, 30, seed=8)
            code = _exits(worker)
        finally:
            worker.stop()
    finally:
        admin.close()
    log = worker.log_path.read_text()
    assert code == 1, log
    assert [line for line in log.splitlines() if "refused our credentials (401)" in line], log
    assert "Traceback" not in log
    assert not [m for m in _key_material(made["encoded"]) if m in log]
    # the refused events are held: committed offsets cover exactly the first batch
    committed = ps.committed(s, names.es_group, names.topic, s.partitions)
    assert sum(max(offset, 0) for offset in committed.values()) == first, committed
    assert ps.lag(s, names.es_group, names.topic) == 30
