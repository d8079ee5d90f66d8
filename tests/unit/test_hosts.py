"""`--hosts` without touching the network: names, addresses, configuration, refusals."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from clickfan.compose.native import hosts
from clickfan.errors import ClickfanError
from clickfan.settings import Settings

BENCHMARKING = ipaddress.ip_network("198.18.0.0/15")


def test_addresses_are_in_the_benchmarking_range_and_names_fit_linux(tmp_path: Path) -> None:
    net = hosts.HostNet.for_home(Settings(home=tmp_path))
    addresses = [net.gateway, *(net.address(i) for i in (1, 2, 3))]
    assert len(set(addresses)) == 4
    assert all(ipaddress.ip_address(a) in BENCHMARKING for a in addresses)
    # interface names are at most 15 characters (IFNAMSIZ - 1)
    assert all(len(n) <= 15 for n in [net.bridge, *(net.veth(i) for i in (1, 2, 3))])
    assert net.bootstrap == ",".join(f"{net.address(i)}:9092" for i in (1, 2, 3))


def test_two_homes_get_their_own_names(tmp_path: Path) -> None:
    one = hosts.HostNet.for_home(Settings(home=tmp_path / "a"))
    two = hosts.HostNet.for_home(Settings(home=tmp_path / "b"))
    assert one.bridge != two.bridge and one.namespace(1) != two.namespace(1)


def test_each_broker_listens_on_its_own_address_and_votes_with_the_others(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    brokers = hosts.host_brokers(settings)
    net = brokers[0].net
    for b in brokers:
        props = b.server_properties()
        assert props["listeners"] == f"PLAINTEXT://{b.address}:9092,CONTROLLER://{b.address}:9093"
        assert props["advertised.listeners"] == f"PLAINTEXT://{b.address}:9092"
        assert props["controller.quorum.voters"] == ",".join(
            f"{i}@{net.address(i)}:9093" for i in (1, 2, 3)
        )
        assert b.cluster_id != settings.kafka_cluster_id
        argv = b.launch_spec("java").argv
        assert argv[:4] == ["ip", "netns", "exec", net.namespace(b.node_id)]
        assert b.marker in argv
        assert str(b.data_dir).startswith(str(tmp_path))


def test_without_root_one_line_and_nothing_created(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosts.os, "geteuid", lambda: 1000)
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(hosts, "_run", lambda *argv, check=True: calls.append(argv))
    with pytest.raises(ClickfanError) as info:
        hosts.check_can_run()
    assert "\n" not in str(info.value) and "root" in str(info.value)
    assert calls == []


def test_without_ip_netns_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosts.os, "geteuid", lambda: 0)
    monkeypatch.setattr(hosts.shutil, "which", lambda name: None)
    with pytest.raises(ClickfanError, match="ip netns"):
        hosts.check_can_run()


def test_a_failed_step_removes_what_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[tuple[str, ...]] = []

    class Done:
        returncode = 1
        stdout = ""

    def run(*argv: str, check: bool = True) -> object:
        done.append(argv)
        if argv[:3] == ("ip", "netns", "add"):
            raise ClickfanError("netns add failed")
        return Done()

    monkeypatch.setattr(hosts, "_run", run)
    monkeypatch.setattr(hosts, "_namespaces", lambda: set())
    monkeypatch.setattr(hosts, "_link_exists", lambda name: name.startswith("cfbr"))
    net = hosts.HostNet("abc123")
    with pytest.raises(ClickfanError, match="netns add failed"):
        hosts.create_network(net)
    assert ("ip", "link", "delete", net.bridge) in done
    assert ("iptables", "-D", *net.rule) in done
