"""`clickfan up --hosts`: the three Kafka brokers as three hosts on one machine.

Each broker runs in a network namespace of its own, with its own address from
the benchmarking range 198.18.0.0/15 (RFC 2544: never routed, nothing leaves the
machine), and the three namespaces are linked by a bridge that carries the
address 198.18.N.1 on this machine's side, so clients here reach every broker
directly. Every host listens on the same ports (9092 for clients, 9093 for the
controller quorum), as three machines would.

What a run creates is named from a tag of CLICKFAN_HOME (so two homes never
meet) and recorded in <home>/run/hosts.json: namespaces clickfan-<tag>-1..3, a
bridge cfbr<tag>, veth pairs cfv<tag>1..3, and one firewall rule in the FORWARD
chain that lets the bridge forward between its ports (Docker sets the chain's
policy to DROP, and bridged traffic passes through it when br_netfilter is
loaded). `down` removes all of it; a later `up` removes what a killed run left.

Cutting a host off (`cut`) drops its traffic to and from chosen peers with
iptables rules inside its own namespace, which disappear with the namespace.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from rich.console import Console

from clickfan.compose.native import process
from clickfan.compose.native.java import check_java
from clickfan.compose.native.process import LaunchSpec
from clickfan.compose.native.services.base import Probe
from clickfan.compose.native.services.kafka import KafkaBroker, _tcp_open, kafka_brokers
from clickfan.errors import ClickfanError
from clickfan.settings import Settings

HOSTS = 3
CLIENT_PORT = 9092
CONTROLLER_PORT = 9093
# The ISR shrinks this long after a follower stops fetching (Kafka's default is 30 s);
# shorter, so the partition experiment shows it within seconds. Kept the same for `up`.
REPLICA_LAG_MS = 10000


@dataclass(frozen=True)
class HostNet:
    tag: str

    @classmethod
    def for_home(cls, settings: Settings) -> HostNet:
        return cls(hashlib.sha1(str(settings.home).encode()).hexdigest()[:6])

    @property
    def octet(self) -> int:
        return int(self.tag, 16) % 256

    @property
    def bridge(self) -> str:
        return f"cfbr{self.tag}"

    @property
    def gateway(self) -> str:
        return f"198.18.{self.octet}.1"

    def namespace(self, i: int) -> str:
        return f"clickfan-{self.tag}-{i}"

    def veth(self, i: int) -> str:
        return f"cfv{self.tag}{i}"

    def address(self, i: int) -> str:
        return f"198.18.{self.octet}.{10 + i}"

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.address(i)}:{CLIENT_PORT}" for i in range(1, HOSTS + 1))

    @property
    def rule(self) -> list[str]:
        """The FORWARD rule, without the -I/-D verb."""
        return [
            "FORWARD",
            "-i",
            self.bridge,
            "-o",
            self.bridge,
            "-m",
            "comment",
            "--comment",
            f"clickfan-hosts-{self.tag}",
            "-j",
            "ACCEPT",
        ]


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise ClickfanError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.stdout}")
    return done


def check_can_run() -> None:
    """Root, `ip netns` and iptables; otherwise one line saying what is missing."""
    if os.geteuid() != 0:
        raise ClickfanError("--hosts needs root (it creates network namespaces and a bridge)")
    if shutil.which("ip") is None or _run("ip", "netns", "list", check=False).returncode:
        raise ClickfanError("--hosts needs `ip netns` (iproute2 with network namespaces)")
    if shutil.which("iptables") is None:
        raise ClickfanError("--hosts needs iptables (to let the bridge forward, and to cut)")


# --------------------------------------------------------------------- brokers


class HostBroker(KafkaBroker):
    """A broker in its own namespace: its own address, the standard ports."""

    def __init__(self, settings: Settings, net: HostNet, node_id: int) -> None:
        host_settings = dataclasses.replace(settings, host=net.address(node_id))
        voters = [(i, CONTROLLER_PORT) for i in range(1, HOSTS + 1)]
        cluster_id = settings.kafka_cluster_id[:-1] + "3"  # never the 127.0.0.1 cluster
        super().__init__(
            host_settings,
            f"kafka-h{node_id}",
            node_id,
            CLIENT_PORT,
            CONTROLLER_PORT,
            voters,
            cluster_id,
            3,
        )
        self.net = net
        self.address = net.address(node_id)

    def server_properties(self) -> dict[str, object]:
        props = super().server_properties()
        props["controller.quorum.voters"] = ",".join(
            f"{i}@{self.net.address(i)}:{CONTROLLER_PORT}" for i in range(1, HOSTS + 1)
        )
        props["replica.lag.time.max.ms"] = REPLICA_LAG_MS
        return props

    def launch_spec(self, java: str) -> LaunchSpec:
        spec = super().launch_spec(java)
        # `ip netns exec` execs the JVM: the pid stays, and its command line has the marker
        spec.argv = ["ip", "netns", "exec", self.net.namespace(self.node_id), *spec.argv]
        return spec

    def probe(self) -> Probe:
        if _tcp_open(self.address, CLIENT_PORT):
            ns = self.net.namespace(self.node_id)
            return Probe(True, f"host {self.address}:{CLIENT_PORT} (namespace {ns})")
        return Probe(False, f"{self.address}:{CLIENT_PORT} not answering")


def host_brokers(settings: Settings) -> list[HostBroker]:
    net = HostNet.for_home(settings)
    return [HostBroker(settings, net, i) for i in range(1, HOSTS + 1)]


# --------------------------------------------------------------------- network


def _state_file(settings: Settings) -> Path:
    return settings.home / "run" / "hosts.json"


def state(settings: Settings) -> dict | None:
    try:
        return json.loads(_state_file(settings).read_text())
    except (OSError, ValueError):
        return None


def active(settings: Settings) -> bool:
    return state(settings) is not None


def _namespaces() -> set[str]:
    out = _run("ip", "netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _link_exists(name: str) -> bool:
    return _run("ip", "link", "show", name, check=False).returncode == 0


def create_network(net: HostNet) -> None:
    """Bridge, namespaces, veth pairs, addresses, the FORWARD rule; all or nothing."""
    try:
        _run("ip", "link", "add", net.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge)
        _run("ip", "link", "set", net.bridge, "up")
        for i in range(1, HOSTS + 1):
            ns, veth, peer = net.namespace(i), net.veth(i), f"cfp{net.tag}{i}"
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
            _run("ip", "link", "set", peer, "netns", ns)
            _run("ip", "-n", ns, "link", "set", peer, "name", "eth0")
            _run("ip", "-n", ns, "addr", "add", f"{net.address(i)}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "link", "set", veth, "master", net.bridge)
            _run("ip", "link", "set", veth, "up")
        _run("iptables", "-I", *net.rule)
    except BaseException:
        remove_network(net)
        raise


def remove_network(net: HostNet) -> list[str]:
    """Whatever of the run's network exists, removed; returns what was removed."""
    removed = []
    for i in range(1, HOSTS + 1):
        ns = net.namespace(i)
        if ns in _namespaces():
            _kill_namespace_processes(ns)
            _run("ip", "netns", "delete", ns, check=False)  # takes its veth pair along
            removed.append(f"namespace {ns}")
        if _link_exists(net.veth(i)):
            _run("ip", "link", "delete", net.veth(i), check=False)
    if _link_exists(net.bridge):
        _run("ip", "link", "delete", net.bridge, check=False)
        removed.append(f"bridge {net.bridge}")
    while _run("iptables", "-D", *net.rule, check=False).returncode == 0:
        removed.append("FORWARD rule")
    return removed


def _kill_namespace_processes(ns: str) -> None:
    """What a killed run left running inside its namespace (its brokers)."""
    pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            continue


def clean_leftovers(settings: Settings, console: Console) -> None:
    """A run killed before its `down`: its namespaces, bridge and rule go now."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return
    if any(process.running_pid(b.pid_file, b.marker) for b in host_brokers(settings)):
        return  # a --hosts stack is running: not a leftover
    removed = remove_network(HostNet.for_home(settings))
    _state_file(settings).unlink(missing_ok=True)
    if removed:
        console.print(f"removed what a killed --hosts run left: {', '.join(removed)}")


# ------------------------------------------------------------------- up, down


def cluster_probe(brokers: list[HostBroker]) -> Probe:
    from clickfan.compose.native.stack import admin_client

    bootstrap = brokers[0].net.bootstrap
    try:
        metadata = admin_client(bootstrap).list_topics(timeout=3)
    except KafkaException as exc:
        return Probe(False, f"no metadata: {exc.args[0].str()}")
    seen = sorted(metadata.brokers)
    if seen != list(range(1, HOSTS + 1)):
        return Probe(False, f"brokers in metadata {seen}")
    leaders = {b.quorum_leader() for b in brokers} - {None}
    if not leaders:
        return Probe(False, "no controller-quorum leader")
    return Probe(True, f"{len(seen)} hosts in metadata, quorum leader {min(leaders)}")


def up(settings: Settings, console: Console, kafka_only: bool) -> list[str]:
    from clickfan.compose.native import stack

    check_can_run()
    brokers = host_brokers(settings)
    if all(process.running_pid(b.pid_file, b.marker) for b in brokers):
        console.print("The --hosts brokers are already running; nothing changed.")
        return []
    core = [b for b in kafka_brokers(settings) if stack.running_pid(b) is not None]
    if core:
        raise ClickfanError(
            f"{', '.join(b.name for b in core)} of this home run on {settings.host}: "
            "`clickfan down` first, or use another CLICKFAN_HOME for --hosts"
        )
    clean_leftovers(settings, console)
    java = check_java(settings)
    stack.fetch_artifacts(settings, console)
    net = brokers[0].net
    started: list[int] = []
    create_network(net)
    try:
        _state_file(settings).parent.mkdir(parents=True, exist_ok=True)
        _state_file(settings).write_text(
            json.dumps(
                {
                    "tag": net.tag,
                    "bridge": net.bridge,
                    "gateway": net.gateway,
                    "bootstrap": net.bootstrap,
                    "kafka_only": kafka_only,
                    "hosts": {b.name: [b.address, net.namespace(b.node_id)] for b in brokers},
                },
                indent=2,
            )
        )
        for b in brokers:
            b.prepare(java)
            started.append(process.start(b.launch_spec(java)))
        _wait(settings, dict(zip(brokers, started, strict=True)), console)
        stack.ensure_topics(settings, console, bootstrap=net.bootstrap)
        names = [b.name for b in brokers]
        if not kafka_only:
            for name in ("namenode", "datanode", "elasticsearch"):
                service = stack.find_service(settings, name)
                if stack.running_pid(service) is None:
                    stack.start_one(settings, name, console)
                    names.append(name)
    except BaseException:
        process.stop_many(started, settings.stop_timeout_s)
        remove_network(net)
        _state_file(settings).unlink(missing_ok=True)
        raise
    console.print(
        f"[green]Three hosts up[/]: {', '.join(f'{b.name} {b.address}' for b in brokers)} "
        f"(bridge {net.bridge}, this machine {net.gateway}); bootstrap {net.bootstrap}"
    )
    return names


def _wait(settings: Settings, pids: dict[HostBroker, int], console: Console) -> None:
    brokers = list(pids)
    deadline = time.monotonic() + settings.start_timeout_s
    with console.status("waiting for the three hosts to form a cluster"):
        while True:
            for b, pid in pids.items():
                # by pid, not by marker: a moment after the fork it is not exec'd yet
                if process.exited_early(pid):
                    tail = "\n".join(b.log_file.read_text(errors="replace").splitlines()[-20:])
                    raise ClickfanError(f"{b.name} exited during start-up:\n{tail}")
            if all(b.probe().healthy for b in brokers) and cluster_probe(brokers).healthy:
                return
            if time.monotonic() > deadline:
                raise ClickfanError(
                    f"the hosts formed no cluster in {settings.start_timeout_s:.0f}s: "
                    f"{cluster_probe(brokers).detail}"
                )
            time.sleep(1)


def down(settings: Settings, console: Console) -> None:
    """Stop the host brokers, then remove namespaces, bridge and rule."""
    if not active(settings) and not _link_exists(HostNet.for_home(settings).bridge):
        return
    brokers = host_brokers(settings)
    running = {b: pid for b in brokers if (pid := process.running_pid(b.pid_file, b.marker))}
    if running:
        with console.status(f"stopping {', '.join(b.name for b in running)}"):
            process.stop_many(list(running.values()), settings.stop_timeout_s)
        for b in running:
            b.pid_file.unlink(missing_ok=True)
            console.print(f"stopped {b.name} ({b.address})")
    if os.geteuid() == 0:
        removed = remove_network(HostNet.for_home(settings))
        if removed:
            console.print(f"removed {', '.join(removed)}")
    _state_file(settings).unlink(missing_ok=True)


# ---------------------------------------------------------------- partitions


def cut(net: HostNet, node: int, peers: list[int]) -> None:
    """Drop host `node`'s traffic to and from `peers` (other hosts; 0 = this machine)."""
    ns = net.namespace(node)
    for peer in peers:
        address = net.gateway if peer == 0 else net.address(peer)
        _run("ip", "netns", "exec", ns, "iptables", "-I", "INPUT", "-s", address, "-j", "DROP")
        _run("ip", "netns", "exec", ns, "iptables", "-I", "OUTPUT", "-d", address, "-j", "DROP")


def heal(net: HostNet, node: int) -> None:
    ns = net.namespace(node)
    for chain in ("INPUT", "OUTPUT"):
        _run("ip", "netns", "exec", ns, "iptables", "-F", chain)


def status(settings: Settings) -> tuple[list, Probe]:
    """The host brokers (address in the detail), then the stack's other services."""
    from clickfan.compose.native import stack

    brokers = host_brokers(settings)
    core = {b.name for b in kafka_brokers(settings)}
    kafka_only = (state(settings) or {}).get("kafka_only", False)
    others = [
        s
        for s in stack.known_services(settings)
        if s.name not in core and not (kafka_only and s.kind in ("elasticsearch", "hdfs"))
    ]
    return [stack.service_status(s) for s in [*brokers, *others]], cluster_probe(brokers)
