"""Bring the native stack up, report on it, and take it down.

`up` is idempotent: services already running are left alone, the rest are
started, and it returns only once every service is really healthy (Kafka: all
brokers in the metadata and a quorum leader; Elasticsearch: green or yellow;
HDFS: a live DataNode, out of safe mode, a WebHDFS write and read). If one
fails, its log tail is shown and whatever this call started is stopped again.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from typing import NoReturn

import requests
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.live import Live
from rich.table import Table

from clickfan import kafka_client
from clickfan.compose.native import artifacts, kafka_acls, process
from clickfan.compose.native.java import check_java
from clickfan.compose.native.services import (
    Probe,
    Service,
    all_services,
    core_services,
    optional_services,
)
from clickfan.compose.native.services.kafka import (
    KafkaBroker,
    broker_certificate,
    extra_kafka_broker,
    kafka_brokers,
    write_client_files,
)
from clickfan.errors import ClickfanError
from clickfan.settings import Settings

POLL_S = 1.0


@dataclass
class ServiceStatus:
    name: str
    state: str  # healthy | unhealthy | down
    pid: int | None
    ports: dict[str, int]
    detail: str
    rss_mb: float
    data_dir: str
    log_file: str


def _quiet_logger() -> logging.Logger:
    # librdkafka reports every refused connection; during start-up that is noise
    logger = logging.getLogger(f"{__name__}.admin")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def admin_client(bootstrap: str) -> AdminClient:
    """An admin client under this process's Kafka identity (kafka_client.activate)."""
    return AdminClient(kafka_client.confluent(bootstrap, {"logger": _quiet_logger()}))


def activate_admin(settings: Settings) -> None:
    """Stack commands talk to a secure stack as `admin` (or as CLICKFAN_KAFKA_CONFIG says)."""
    if settings.secure or settings.kafka_config:
        kafka_client.activate(kafka_client.for_role(settings, "admin"))


def prepare_secure(settings: Settings) -> None:
    """Before a secure start: the home must be secure throughout, and its files in place."""
    formatted = [
        b.name for b in kafka_brokers(settings) if (b.log_dir / "meta.properties").exists()
    ]
    if formatted and not settings.secure_marker.exists():
        raise ClickfanError(
            f"{', '.join(formatted)} were formatted without --secure (no SCRAM users): run "
            "`clickfan up --secure --fresh`, or use another CLICKFAN_HOME"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.secure_marker.write_text("written by `clickfan up --secure`\n")
    write_client_files(settings, settings.bootstrap_servers)
    activate_admin(settings)


def prepare_secure_files(settings: Settings) -> None:
    """The secure profile's files, before any service of it starts: the CA, the brokers'
    certificate, the users' passwords and client files. For services started one by one
    (`clickfan serve`, each compose container), done once by one process
    (`clickfan secure-setup --files`), so that no two brokers make them at once."""
    prepare_secure(settings)
    broker_certificate(settings)


def secure_setup(settings: Settings, console: Console, wait_s: float) -> None:
    """What `up --secure` does once the services answer, for services started one by one:
    each service's set-up that needs it running (the indexer's API key, the archive
    folder owned by the archiver), the topics and the pipeline's ACLs (until every
    broker applies them). Waits up to ``wait_s`` for the brokers and for HDFS."""
    activate_admin(settings)
    wait_for_brokers(settings, wait_s, console)
    deadline = time.monotonic() + wait_s
    for service in core_services(settings):
        with console.status(f"setting up {service.name}"):
            while True:
                try:  # HDFS refuses while the NameNode is still in safe mode
                    service.after_healthy()
                    break
                except ClickfanError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(POLL_S)
    ensure_topics(settings, console)
    kafka_acls.apply(
        admin_client(settings.bootstrap_servers),
        kafka_acls.pipeline_acls(
            settings.topic, settings.dlq_topic, settings.es_group, settings.hdfs_group
        ),
    )
    _wait_for_acls(settings, timeout_s=60)
    console.print(
        f"ACLs set; {settings.hdfs_root} belongs to the archiver; the indexer's API key made"
    )


def _wait_for_acls(settings: Settings, timeout_s: float) -> None:
    """Each broker applies new ACLs a moment after they are created: wait until every one
    lets the producer see the topic, so no app starts into a refusal."""
    producer = kafka_client.for_role(settings, "producer")
    deadline = time.monotonic() + timeout_s
    for port in settings.kafka_ports:
        admin = AdminClient(
            producer.confluent(f"{settings.host}:{port}", {"logger": _quiet_logger()})
        )
        while True:
            with contextlib.suppress(KafkaException):
                topics = admin.list_topics(settings.topic, timeout=10).topics
                if topics[settings.topic].error is None:
                    break
            if time.monotonic() > deadline:
                raise ClickfanError(
                    f"the broker on port {port} does not apply the producer's ACL on "
                    f"{settings.topic} after {timeout_s:.0f}s"
                )
            time.sleep(POLL_S)


def kafka_cluster_probe(brokers: list[KafkaBroker]) -> Probe:
    """All brokers in the cluster metadata, and a controller-quorum leader alive."""
    host = brokers[0].settings.host
    bootstrap = ",".join(f"{host}:{b.port}" for b in brokers)
    try:
        metadata = admin_client(bootstrap).list_topics(timeout=3)
    except KafkaException as exc:
        return Probe(False, f"no metadata: {exc.args[0].str()}")
    in_metadata = sorted(metadata.brokers)
    expected = sorted(b.node_id for b in brokers)
    if in_metadata != expected:
        return Probe(False, f"brokers in metadata {in_metadata}, expected {expected}")
    live = {b.node_id for b in brokers if running_pid(b) is not None}
    leaders = {b.quorum_leader() for b in brokers if b.node_id in live}
    leader = next((lead for lead in leaders if lead in live), None)
    if leader is None:
        return Probe(False, "no controller-quorum leader")
    return Probe(True, f"{len(in_metadata)} brokers in metadata, quorum leader {leader}")


def running_pid(service: Service) -> int | None:
    return process.running_pid(service.pid_file, service.marker)


def service_status(service: Service) -> ServiceStatus:
    pid = running_pid(service)
    if pid is None:
        probe, state = Probe(False, "not running"), "down"
    else:
        probe = service.probe()
        state = "healthy" if probe.healthy else "unhealthy"
    return ServiceStatus(
        name=service.name,
        state=state,
        pid=pid,
        ports=service.ports,
        detail=probe.detail,
        rss_mb=round(process.resident_bytes(pid) / 2**20, 1) if pid else 0.0,
        data_dir=str(service.data_dir),
        log_file=str(service.log_file),
    )


def known_services(settings: Settings) -> list[Service]:
    """The core stack, plus the extra cluster when it has been started."""
    extra = extra_kafka_broker(settings)
    # the optional brokers (RabbitMQ, Redis) once started: their pid file exists
    optional = tuple(s.name for s in optional_services(settings) if s.pid_file.exists())
    return all_services(settings, extra_cluster=extra.pid_file.exists(), optional=optional)


def status(settings: Settings) -> tuple[list[ServiceStatus], Probe]:
    """Each service on its own, and the Kafka cluster as a whole (all brokers, a leader)."""
    services = known_services(settings)
    brokers = [s for s in services if isinstance(s, KafkaBroker) and s.name != "kafka-extra"]
    return [service_status(s) for s in services], kafka_cluster_probe(brokers)


def status_json(statuses: list[ServiceStatus], cluster: Probe) -> dict:
    return {
        "healthy": cluster.healthy and all(s.state == "healthy" for s in statuses),
        "kafka_cluster": asdict(cluster),
        "services": [asdict(s) for s in statuses],
        "total_rss_mb": round(sum(s.rss_mb for s in statuses), 1),
    }


def status_table(statuses: list[ServiceStatus]) -> Table:
    table = Table(title="clickfan stack", caption=_paths_caption(statuses), caption_justify="left")
    for column in ("service", "state", "pid", "ports", "rss MB", "detail"):
        table.add_column(column, overflow="fold")
    colour = {"healthy": "green", "unhealthy": "yellow", "down": "red"}
    for st in statuses:
        table.add_row(
            st.name,
            f"[{colour[st.state]}]{st.state}[/]",
            str(st.pid or "-"),
            ",".join(str(p) for p in st.ports.values()),
            f"{st.rss_mb:.0f}" if st.pid else "-",
            st.detail,
        )
    return table


def _paths_caption(statuses: list[ServiceStatus]) -> str:
    return "\n".join(f"{st.name}: log {st.log_file}  data {st.data_dir}" for st in statuses)


# ------------------------------------------------------------------- up/down


def fetch_artifacts(settings: Settings, console: Console) -> None:
    for artifact in artifacts.all_artifacts(settings):
        artifacts.ensure(artifact, console)


def up(
    settings: Settings, console: Console, extra_cluster: bool = False, kafka_only: bool = False
) -> list[str]:
    """Start what is not running, wait until all is healthy. Returns the names started.

    ``kafka_only``: the brokers alone (no Elasticsearch, no HDFS).
    """
    java = check_java(settings)
    if settings.secure:
        prepare_secure(settings)  # before the health check below: it talks as admin
    services = kafka_brokers(settings) if kafka_only else all_services(settings, extra_cluster)
    to_start = [s for s in services if running_pid(s) is None]
    if not to_start and _all_healthy(services):
        console.print("[green]The stack is already up and healthy; nothing changed.[/]")
        return []
    process.check_ports_free(
        settings.host, {what: port for s in to_start for what, port in s.ports.items()}
    )
    fetch_artifacts(settings, console)
    started: dict[str, int] = {}  # name -> pid, to undo exactly what this call did
    try:
        for service in to_start:
            service.prepare(java)
            started[service.name] = process.start(service.launch_spec(java))
        _wait_healthy(settings, services, console)
        for service in services:
            service.after_healthy()
        if not kafka_only:
            _check_webhdfs(settings)
        ensure_topics(settings, console)
        if settings.secure:
            kafka_acls.apply(
                admin_client(settings.bootstrap_servers),
                kafka_acls.pipeline_acls(
                    settings.topic, settings.dlq_topic, settings.es_group, settings.hdfs_group
                ),
            )
        wait_for_group_coordinator(settings, console)
        if extra_cluster:
            ensure_topics(
                settings,
                console,
                bootstrap=f"{settings.host}:{settings.extra_kafka_port}",
                replication_factor=1,
                min_insync=1,
            )
    except BaseException:
        with console.status("start-up failed: stopping what was started"):
            for pid in started.values():
                process.stop(pid, settings.stop_timeout_s)
        raise
    return list(started)


def _all_healthy(services: list[Service]) -> bool:
    brokers = [s for s in services if isinstance(s, KafkaBroker) and s.name != "kafka-extra"]
    return all(s.probe().healthy for s in services) and kafka_cluster_probe(brokers).healthy


def _wait_healthy(settings: Settings, services: list[Service], console: Console) -> None:
    brokers = [s for s in services if isinstance(s, KafkaBroker) and s.name != "kafka-extra"]
    began = time.monotonic()
    pending = {s.name: s for s in services}
    probes: dict[str, Probe] = {}

    def table() -> Table:
        elapsed = time.monotonic() - began
        t = Table(title=f"starting the stack ({elapsed:.0f}s)")
        t.add_column("service")
        t.add_column("state")
        for s in services:
            p = probes.get(s.name, Probe(False, "starting"))
            mark = "[green]healthy[/]" if p.healthy else "[yellow]waiting[/]"
            t.add_row(s.name, f"{mark} {p.detail}")
        if "kafka cluster" in probes:
            p = probes["kafka cluster"]
            t.add_row(
                "kafka cluster",
                ("[green]ok[/] " if p.healthy else "[yellow]waiting[/] ") + p.detail,
            )
        return t

    cluster_ok = False
    with Live(table(), console=console, refresh_per_second=2, transient=True) as live:
        while pending or not cluster_ok:
            for name, service in list(pending.items()):
                pid = running_pid(service)
                if pid is None or process.exited_early(pid):
                    _fail(service, "exited during start-up")
                probes[name] = service.probe()
                if probes[name].healthy:
                    del pending[name]
            if not pending:
                # every broker answers; now all of them must be in one cluster
                cluster = kafka_cluster_probe(brokers)
                probes["kafka cluster"], cluster_ok = cluster, cluster.healthy
            if time.monotonic() - began > settings.start_timeout_s:
                slow = next(iter(pending.values()), brokers[0])
                detail = probes.get(slow.name if pending else "kafka cluster", Probe(False, "?"))
                _fail(slow, f"not healthy after {settings.start_timeout_s:.0f}s ({detail.detail})")
            live.update(table())
            if pending or not cluster_ok:
                time.sleep(POLL_S)
    console.print(
        f"[green]All {len(services)} services healthy[/] after {time.monotonic() - began:.1f}s."
    )


def _fail(service: Service, why: str) -> None:
    tail = log_tail(service, 25)
    raise ClickfanError(
        f"{service.name} {why}. Last lines of {service.log_file}:\n{tail}\n"
        "Everything this command started has been stopped again."
    )


def log_tail(service: Service, lines: int) -> str:
    try:
        text = service.log_file.read_text(errors="replace").splitlines()
    except OSError:
        return "  (no log written)"
    return "\n".join("  " + line for line in text[-lines:])


def _check_webhdfs(settings: Settings) -> None:
    """A real write and read through WebHDFS, as the sinks will do it."""
    from hdfs.util import HdfsError

    from clickfan.sinks import clients

    client = clients.webhdfs_client(clients.webhdfs_connection(settings, timeout_s=10))
    path = f"/tmp/clickfan-health/{uuid.uuid4().hex}"
    payload = b"clickfan health check"
    deadline = time.monotonic() + 30
    while True:
        try:
            client.write(path, data=payload, overwrite=True)
            with client.read(path) as reader:
                ok = reader.read() == payload
            client.delete(path)
            if ok:
                return
            raise ClickfanError("WebHDFS read back different bytes than were written")
        except (HdfsError, requests.RequestException) as exc:
            # right after safe mode ends the DataNode may not take blocks yet
            if time.monotonic() > deadline:
                raise ClickfanError(f"WebHDFS write/read check failed: {exc}") from None
            time.sleep(1)


def ensure_topics(
    settings: Settings,
    console: Console,
    bootstrap: str | None = None,
    replication_factor: int | None = None,
    min_insync: int | None = None,
) -> None:
    """Create click-logs and its dead-letter topic unless they exist."""
    rf = replication_factor or settings.replication_factor
    isr = min_insync or settings.min_insync_replicas
    admin = admin_client(bootstrap or settings.bootstrap_servers)
    existing = admin.list_topics(timeout=10).topics
    wanted = [
        NewTopic(name, settings.partitions, rf, config={"min.insync.replicas": str(isr)})
        for name in (settings.topic, settings.dlq_topic)
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise ClickfanError(f"creating topic {name} failed: {exc.args[0].str()}") from None
        console.print(
            f"created topic {name} ({settings.partitions} partitions, "
            f"replication {rf}, min.insync.replicas {isr})"
        )


def wait_for_group_coordinator(
    settings: Settings, console: Console, timeout_s: float = 120
) -> None:
    """Wait until the workers' groups can read their offsets. On a new cluster the first
    group request creates __consumer_offsets and its coordinators load it a moment
    later: a worker started meanwhile would stop at "Coordinator load in progress"."""
    deadline = time.monotonic() + timeout_s
    with console.status("waiting for the consumer groups' coordinators"):
        for group in (settings.es_group, settings.hdfs_group):
            # a consumer that never subscribes: it only asks the group's coordinator
            consumer = Consumer(
                kafka_client.confluent(
                    settings.bootstrap_servers, {"group.id": group, "logger": _quiet_logger()}
                )
            )
            try:
                while True:
                    try:
                        consumer.committed([TopicPartition(settings.topic, 0)], timeout=10)
                        break
                    except KafkaException as exc:
                        error = exc.args[0]
                        not_ready = error.name() in kafka_client.COORDINATOR_NOT_READY
                        if not (error.retriable() or not_ready):
                            raise ClickfanError(
                                f"cannot read the offsets of group {group}: {error.str()}"
                            ) from None
                        if time.monotonic() > deadline:
                            raise ClickfanError(
                                f"the coordinator of group {group} is not ready after "
                                f"{timeout_s:.0f}s: {error.str()}"
                            ) from None
                    time.sleep(POLL_S)
            finally:
                consumer.close()


def wait_for_brokers(settings: Settings, timeout_s: float, console: Console) -> None:
    """Wait until the cluster's metadata lists every broker (asked over the network)."""
    wanted = len(settings.kafka_ports)
    deadline = time.monotonic() + timeout_s
    seen = 0
    with console.status(f"waiting for {wanted} brokers"):
        while True:
            with contextlib.suppress(KafkaException):
                seen = len(admin_client(settings.bootstrap_servers).list_topics(timeout=5).brokers)
            if seen >= wanted:
                return
            if time.monotonic() > deadline:
                raise ClickfanError(
                    f"only {seen} of {wanted} brokers in the cluster's metadata after "
                    f"{timeout_s:.0f}s at {settings.bootstrap_servers}"
                )
            time.sleep(POLL_S)


def down(settings: Settings, console: Console, wipe: bool = False) -> None:
    """Stop every service (SIGTERM, then SIGKILL after the timeout)."""
    services = known_services(settings)
    # The apps' sinks first (Elasticsearch, HDFS), then all brokers together.
    for kinds in (("rabbitmq", "redis"), ("elasticsearch", "hdfs"), ("kafka",)):
        running = {s: pid for s in services if s.kind in kinds and (pid := running_pid(s))}
        if not running:
            continue
        names = ", ".join(s.name for s in running)
        with console.status(f"stopping {names}"):
            graceful = process.stop_many(list(running.values()), settings.stop_timeout_s)
        for service, pid in running.items():
            note = "" if graceful[pid] else f" (killed after {settings.stop_timeout_s:.0f}s)"
            console.print(f"stopped {service.name}{note}")
            service.pid_file.unlink(missing_ok=True)
    if wipe:
        wipe_data(settings, console)


def wipe_data(settings: Settings, console: Console) -> None:
    # Elasticsearch's folder may live outside the data dir (see Elasticsearch.data_dir)
    for service in all_services(settings, extra_cluster=True):
        shutil.rmtree(service.data_dir, ignore_errors=True)
        if not service.data_dir.is_relative_to(settings.data_dir):
            with contextlib.suppress(OSError):  # its per-home folder, once empty
                service.data_dir.parent.rmdir()
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    console.print(f"removed all data under {settings.data_dir}")


def find_service(settings: Settings, name: str) -> Service:
    from clickfan.compose.native import hosts  # it imports this module

    every = all_services(settings, extra_cluster=True, optional=OPTIONAL_NAMES)
    if hosts.active(settings):  # `up --hosts`: its brokers, kafka-h1..3
        every = [*every, *hosts.host_brokers(settings)]
    services = {s.name: s for s in every}
    if name not in services:
        raise ClickfanError(
            f"no service named {name!r}; the services are: {', '.join(services)}", exit_code=2
        )
    return services[name]


OPTIONAL_NAMES = ("rabbitmq", "redis")


def parse_with(value: str) -> tuple[str, ...]:
    """`--with rabbitmq,redis` -> ("rabbitmq", "redis"); unknown names are refused."""
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in OPTIONAL_NAMES]
    if unknown or not names:
        raise ClickfanError(
            f"--with {value!r}: choose from {', '.join(OPTIONAL_NAMES)} (comma-separated)",
            exit_code=2,
        )
    return names


def check_installed(settings: Settings, names: tuple[str, ...]) -> None:
    """Before anything starts: each optional broker's Debian package is there."""
    missing = [s for s in optional_services(settings) if s.name in names and not s.installed()]
    if missing:
        packages = " ".join(s.package for s in missing)
        raise ClickfanError(
            f"{', '.join(s.name for s in missing)} not installed: "
            f"apt-get install {packages} (or `make install` as root); nothing was started"
        )


def up_optional(settings: Settings, names: tuple[str, ...], console: Console) -> list[str]:
    """Start the optional brokers that are not running; each must answer its probe."""
    started = []
    try:
        for name in names:
            service = find_service(settings, name)
            if running_pid(service) is None:
                start_one(settings, name, console)
                started.append(name)
    except BaseException:
        for name in started:
            stop_one(settings, name, console)
        raise
    return started


def start_one(settings: Settings, name: str, console: Console) -> None:
    service = find_service(settings, name)
    if running_pid(service) is not None:
        console.print(f"{name} is already running.")
        return
    java = check_java(settings)
    fetch_artifacts(settings, console)
    if service.settings.host == settings.host:  # not a --hosts broker in its own namespace
        process.check_ports_free(settings.host, service.ports)
    service.prepare(java)
    pid = process.start(service.launch_spec(java))
    deadline = time.monotonic() + settings.start_timeout_s
    try:
        with console.status(f"starting {name} (pid {pid})"):
            while not service.probe().healthy:
                if process.exited_early(pid):
                    _fail(service, "exited during start-up")
                if time.monotonic() > deadline:
                    _fail(service, f"not healthy after {settings.start_timeout_s:.0f}s")
                time.sleep(POLL_S)
            service.after_healthy()
    except BaseException:  # as `up`: _fail's message says it is stopped again
        process.stop(pid, settings.stop_timeout_s)
        service.pid_file.unlink(missing_ok=True)
        raise
    console.print(f"[green]{name} is up[/] (pid {pid}).")


def serve(settings: Settings, name: str, console: Console) -> NoReturn:
    """Run one service in the foreground, as a container runs it (compose/docker-compose.yml).

    The same preparation and command line as `clickfan up`, so the Docker and the
    native stack cannot drift apart.
    """
    service = find_service(settings, name)
    java = check_java(settings)
    fetch_artifacts(settings, console)  # offline when the image already holds them
    process.check_ports_free(settings.host, service.ports)
    service.prepare(java)
    console.print(f"serving {name} in the foreground")
    process.exec_foreground(service.launch_spec(java))


def stop_one(settings: Settings, name: str, console: Console) -> None:
    service = find_service(settings, name)
    pid = running_pid(service)
    if pid is None:
        console.print(f"{name} is not running.")
        return
    graceful = process.stop(pid, settings.stop_timeout_s)
    service.pid_file.unlink(missing_ok=True)
    console.print(f"stopped {name}" + ("" if graceful else " (killed after the timeout)"))


__all__ = ["up", "down", "status", "start_one", "stop_one", "core_services"]
