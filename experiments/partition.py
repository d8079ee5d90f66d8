"""Network partitions instead of kills, on `clickfan up --hosts` (three brokers, three hosts).

Needs root. It runs on the --hosts stack of the home the environment points at
(CLICKFAN_HOME) when one runs; otherwise it starts three brokers as three hosts of
its own beside the stack (`up --hosts --kafka-only` in <home>/partition-hosts) and
removes them afterwards. It cuts hosts off with iptables rules inside their
namespaces and always heals them again.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console

from clickfan.errors import ClickfanError
from clickfan.experiments import plots
from clickfan.experiments.framework import Context, Experiment, ExperimentSkipped
from clickfan.experiments.kafka_io import producer, read_topic
from clickfan.experiments.offsets import GroupOffsets
from clickfan.settings import Settings

PARTITIONS = 3
RATE = 150.0  # records per second and mode
LEADER, SECOND, FOLLOWER = 1, 2, 3  # broker ids: preferred leader, the two followers
HOLD_S = 20.0  # how long each partition is held before healing


@dataclass
class Mode:
    acks: str
    topic: str
    sent: int = 0
    acked: dict[int, float] = field(default_factory=dict)  # seq -> time acknowledged
    where: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (partition, offset)
    failed: Counter[str] = field(default_factory=Counter)
    failed_at: list[float] = field(default_factory=list)
    readable: set[int] = field(default_factory=set)

    def lost(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(
            1 for s, t in self.acked.items() if since <= t < until and s not in self.readable
        )


@dataclass
class Sample:
    t: float
    isr: dict[str, list[int]]  # "topic/p" -> ISR
    leader: dict[str, int]


def hosts_settings(settings: Settings) -> Settings:
    """The --hosts stack of this home if one runs; else the experiment's own, beside it."""
    from clickfan.compose.native import hosts

    if hosts.state(settings) is not None:
        return settings
    return dataclasses.replace(
        settings, home=settings.home / "partition-hosts", cache_dir=str(settings.artifacts_dir)
    )


def _hosts(ctx: Context):  # noqa: ANN202 - compose.native.hosts.HostNet
    """The three hosts: a running `up --hosts` stack, or three started for this run."""
    from clickfan.compose.native import hosts

    hs = hosts_settings(ctx.settings)
    if hosts.state(hs) is None:
        try:
            hosts.check_can_run()  # root and `ip netns`, or one line saying why
        except ClickfanError as exc:
            raise ExperimentSkipped(str(exc)) from None
        quiet = Console(stderr=True, quiet=True)
        with ctx.step("starting three brokers as three hosts (`up --hosts --kafka-only`)"):
            hosts.up(hs, quiet, kafka_only=True)
        ctx.on_cleanup("stop the run's --hosts brokers", lambda: hosts.down(hs, quiet))
        ctx.note(
            f"No --hosts stack was running in {ctx.settings.home}: the run started its own "
            f"(brokers only, home {hs.home}) and removed it afterwards."
        )
    return hosts.HostNet.for_home(hs)


class Partition(Experiment):
    name = "partition"
    title = "network partitions on three hosts: ISR, leaders, acks=1 versus acks=all"
    claim_ko = """
3개 이상의 카프카 브로커 클러스터를 구축해봐야 카프카를 써봤다 라고 한다.
- 고가용성은 클러스터 단위에서 진가를 발휘
- ack = all : ack 1 옵션에 팔로우 파티션까지 데이터를 잘 저장됨을 확인
  ( 속도가 현저히 느리지만, 데이터의 유실은 없다. )
"""
    claim = (
        "High availability shows at the cluster level, with brokers on separate machines. "
        "A machine lost to the network (not a crash): the ISR shrinks and acks=all goes on "
        "with min.insync.replicas=2; with two brokers cut off acks=all refuses to acknowledge; "
        "when the leader is cut off a new leader is elected, records acknowledged with acks=1 "
        "by the old leader are lost when it rejoins, and acks=all loses none."
    )
    method = f"""
Three brokers as three hosts (`clickfan up --hosts`: one network namespace each, 198.18.N.11-13
on a bridge; KRaft in combined mode, so each host is also one of the three controller-quorum
voters; replica.lag.time.max.ms = 10 s). Two topics, {PARTITIONS} partitions each,
replication 3, min.insync.replicas 2, every partition with replicas [1, 2, 3] (broker 1 the
leader). Two producers run all along at {RATE:.0f} records/s each, one with acks=1, one with
acks=all (idempotent); each record carries a sequence number; message.timeout.ms 15 s,
metadata refreshed every 2 s. A sampler reads every partition's ISR and leader from the
cluster's metadata twice a second. Steps (a cut = iptables DROP rules inside the host's
namespace, both directions):

1. **Cut one follower off** (broker {FOLLOWER}, from everything): wait for the ISR to shrink.
2. **Cut a second broker off** (broker {SECOND}, from everything), hold {HOLD_S:g} s:
   acks=all cannot be acknowledged; then heal both and wait for the ISR to be 3 again.
3. **Cut the leader off** (broker {LEADER}) from the other two brokers only: the producers
   still reach it, as a client in the old leader's network would. Wait for new leaders,
   hold, then heal: the old leader truncates its log and follows.
4. Read both topics back: acknowledged versus readable per acks mode.
"""
    default_events = 0  # the rate and the steps decide; --events is ignored
    quick = False
    needs = ("kafka", "hosts", "root")

    def run(self, ctx: Context) -> None:
        from clickfan.compose.native import hosts

        net = _hosts(ctx)
        bootstrap = net.bootstrap
        ctx.details["hosts_bootstrap"] = bootstrap
        ctx.note(f"The three hosts: {bootstrap} (bridge {net.bridge}, this machine {net.gateway}).")
        # a cut host never answers (DROP, no reset): without a short socket timeout the
        # client keeps asking it for a minute before it tries another broker
        admin = AdminClient(
            {"bootstrap.servers": bootstrap, "log_level": 0, "socket.timeout.ms": 3000}
        )
        modes = [Mode("1", self._topic(ctx, admin, "acks-1")), Mode("all", "")]
        modes[1].topic = self._topic(ctx, admin, "acks-all")
        samples: list[Sample] = []
        marks: list[tuple[float, str]] = []
        stop = threading.Event()
        began, began_wall = time.monotonic(), time.time()
        now = lambda: time.monotonic() - began  # noqa: E731
        threads = [
            threading.Thread(target=self._sample, args=(ctx, modes, samples, began, stop)),
            *[
                threading.Thread(target=self._produce, args=(bootstrap, m, began, stop))
                for m in modes
            ],
        ]
        for t in threads:
            t.daemon = True
            t.start()
        steps: dict[str, float] = {}
        try:
            time.sleep(5)
            with ctx.step(f"1. cut follower {FOLLOWER} off"):
                hosts.cut(net, FOLLOWER, [0, LEADER, SECOND])
                steps["cut follower"] = now()
                marks.append((now(), f"cut {FOLLOWER}"))
                shrunk = self._wait(
                    samples, lambda s: all(len(i) == 2 for i in s.isr.values()), began, 60
                )
                steps["ISR shrunk"] = shrunk if shrunk is not None else -1
                time.sleep(5)
            with ctx.step(f"2. cut broker {SECOND} off too; hold {HOLD_S:g} s"):
                hosts.cut(net, SECOND, [0, LEADER, FOLLOWER])
                steps["cut second"] = now()
                marks.append((now(), f"cut {SECOND}"))
                time.sleep(HOLD_S)
                hosts.heal(net, SECOND)
                hosts.heal(net, FOLLOWER)
                steps["heal 2 and 3"] = now()
                marks.append((now(), "heal 2, 3"))
                full = self._wait(samples, _full, began, 90)
                steps["ISR full again"] = full if full is not None else -1
            with ctx.step(f"3. cut leader {LEADER} off from the other brokers; hold, heal"):
                hosts.cut(net, LEADER, [SECOND, FOLLOWER])
                steps["cut leader"] = now()
                marks.append((now(), f"cut leader {LEADER}"))
                moved = self._wait(
                    samples, lambda s: all(v != LEADER for v in s.leader.values()), began, 60
                )
                steps["new leaders"] = moved if moved is not None else -1
                time.sleep(HOLD_S)
                hosts.heal(net, LEADER)
                steps["heal leader"] = now()
                marks.append((now(), f"heal {LEADER}"))
                healed = self._wait(samples, _full, began, 120)
                steps["ISR back to 3"] = healed if healed is not None else -1
                time.sleep(3)
        finally:
            for node in (LEADER, SECOND, FOLLOWER):
                hosts.heal(net, node)
            stop.set()
            for t in threads:
                t.join(60)
        with ctx.step("4. reading both topics back, once every broker agrees"):
            topics = [m.topic for m in modes]
            settled = _settle(ctx, topics, 120)
            if not settled:
                ctx.note("the brokers' views did not agree within 120 s before reading back")
            for m in modes:
                self._read_back(bootstrap, m)
        refusals = self._refusals(ctx, began_wall)
        self._checks(ctx, modes, samples, steps, refusals)
        self._plots(ctx, modes, samples, marks, refusals)

    # --------------------------------------------------------------- pieces
    def _topic(self, ctx: Context, admin: AdminClient, suffix: str) -> str:
        name = f"{ctx.names.prefix}.{suffix}"
        new = NewTopic(
            name,
            PARTITIONS,
            replica_assignment=[[LEADER, SECOND, FOLLOWER]] * PARTITIONS,
            config={"min.insync.replicas": "2"},
        )
        admin.create_topics([new], request_timeout=30)[name].result()
        ctx.on_cleanup(
            f"delete topic {name}",
            lambda: admin.delete_topics([name], request_timeout=30)[name].result(),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            topic = admin.list_topics(name, timeout=10).topics.get(name)
            if (
                topic
                and topic.error is None
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                return name
            time.sleep(0.3)
        raise ClickfanError(f"topic {name} got no leaders in 30 s")

    def _sample(
        self,
        ctx: Context,
        modes: list[Mode],
        samples: list[Sample],
        began: float,
        stop: threading.Event,
    ) -> None:
        topics = [m.topic for m in modes]
        while not stop.is_set():
            # the active controller's own view: a cut-off leader keeps serving metadata
            # that is no longer true, and clients may ask it
            quorum = _quorum_leader(ctx)
            order = [quorum] + [b for b in (LEADER, SECOND, FOLLOWER) if b != quorum]
            for broker in order:
                view = _view(ctx, broker, topics)
                if view is not None:
                    samples.append(Sample(time.monotonic() - began, *view))
                    break
            else:
                # no broker answered within its timeout: a gap in the plots
                samples.append(Sample(time.monotonic() - began, {}, {}))
            stop.wait(0.5)

    def _produce(self, bootstrap: str, mode: Mode, began: float, stop: threading.Event) -> None:
        p = producer(
            bootstrap,
            acks=mode.acks,
            **{
                "enable.idempotence": mode.acks == "all",
                "linger.ms": 5,
                "message.timeout.ms": 15000,
                "request.timeout.ms": 5000,
                "topic.metadata.refresh.interval.ms": 2000,
                "socket.timeout.ms": 5000,
            },
        )

        def delivered(seq: int, err, msg) -> None:  # noqa: ANN001
            if err is None:
                mode.acked[seq] = time.monotonic() - began
                mode.where[seq] = (msg.partition(), msg.offset())
            else:
                mode.failed[err.name()] += 1
                mode.failed_at.append(time.monotonic() - began)

        seq = 0
        start = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - start < seq / RATE:
                p.poll(0.01)
                continue
            value = json.dumps({"seq": seq, "acks": mode.acks}).encode()
            try:
                p.produce(
                    mode.topic,
                    key=str(seq).encode(),
                    value=value,
                    on_delivery=partial(delivered, seq),
                )
            except BufferError:
                p.poll(0.05)
                continue
            mode.sent += 1
            seq += 1
            p.poll(0)
        p.flush(30)

    def _wait(self, samples: list[Sample], ok, began: float, timeout_s: float) -> float | None:  # noqa: ANN001
        """The time (from the start) of the first sample after now that satisfies ok."""
        start = len(samples)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for s in samples[start:]:
                if s.isr and ok(s):
                    return s.t
            time.sleep(0.5)
        return None

    def _read_back(self, bootstrap: str, mode: Mode) -> None:
        ends = GroupOffsets(bootstrap).log_end([(mode.topic, p) for p in range(PARTITIONS)])
        records = read_topic(
            bootstrap,
            mode.topic,
            PARTITIONS,
            {p: ends[(mode.topic, p)] for p in range(PARTITIONS)},
            timeout_s=120,
        )
        mode.readable = {json.loads(r.value)["seq"] for r in records}

    def _refusals(self, ctx: Context, began_wall: float) -> list[float]:
        """When broker 1 refused a produce request with NOT_ENOUGH_REPLICAS (from its log)."""
        from clickfan.compose.native.hosts import host_brokers

        leader = host_brokers(hosts_settings(ctx.settings))[LEADER - 1]
        try:
            lines = leader.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return []
        times = []
        for line, following in zip(lines, lines[1:], strict=False):
            if (
                "Error processing append operation" in line
                and ctx.names.prefix in line
                and "NotEnoughReplicasException" in following
            ):
                # the broker logs local time, as Python reads it here
                stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
                times.append(stamp.timestamp() - began_wall)
        return times

    # --------------------------------------------------------------- report
    def _checks(
        self,
        ctx: Context,
        modes: list[Mode],
        samples: list[Sample],
        steps: dict[str, float],
        refusals: list[float],
    ) -> None:
        one, every = modes
        cut1, cut2, heal23 = steps["cut follower"], steps["cut second"], steps["heal 2 and 3"]
        cut_leader, heal_leader = steps["cut leader"], steps["heal leader"]
        shrink = steps["ISR shrunk"]
        ctx.check(
            f"follower {FOLLOWER} cut off: ISR shrinks to 2 after replica.lag.time.max.ms",
            "2 in every ISR, after replica.lag.time.max.ms (10 s) or the controller fencing "
            "the host (broker.session.timeout.ms 9 s, after a new quorum leader if it was one)",
            f"after {shrink - cut1:.1f} s" if shrink >= 0 else "never (60 s)",
            shrink >= 0,
        )
        during1 = sum(1 for t in every.acked.values() if cut1 + 1 <= t < cut2)
        ctx.check(
            "one broker cut off: acks=all goes on (min.insync.replicas=2)",
            "> 0 acknowledged",
            during1,
            during1 > 0,
        )
        during2 = sum(1 for t in every.acked.values() if cut2 + 3 <= t < heal23)
        failed2 = sum(1 for t in every.failed_at if cut2 <= t < heal23 + 16)
        ctx.check(
            "two brokers cut off: acks=all acknowledges nothing",
            "0 acknowledged (3 s after the cut until the heal); failures counted by code",
            f"{during2} acknowledged, {failed2} failed: {dict(every.failed)}",
            during2 == 0,
        )
        ctx.check(
            "ISR back to 3 after healing brokers 2 and 3",
            "every partition's ISR = [1, 2, 3]",
            "yes" if steps["ISR full again"] >= 0 else "not within 90 s",
            steps["ISR full again"] >= 0,
        )
        moved = steps["new leaders"]
        ctx.check(
            f"leader {LEADER} cut off from the other brokers: a new leader is elected",
            "every partition led by 2 or 3",
            f"after {moved - cut_leader:.1f} s" if moved >= 0 else "never (60 s)",
            moved >= 0,
        )
        lost1 = one.lost(cut_leader, heal_leader + 15)
        window = sum(1 for t in one.acked.values() if cut_leader <= t < heal_leader + 15)
        ctx.check(
            "acks=1: records acknowledged by the cut-off leader, gone after it rejoined",
            "> 0 (truncated away), counted",
            f"{lost1} of {window} acknowledged from the cut until 15 s after the heal",
            lost1 > 0,
        )
        ctx.check(
            "acks=all: acknowledged but not readable (lost), whole run",
            0,
            every.lost(),
            every.lost() == 0 and len(every.acked) > 0,
        )
        ctx.check(
            "ISR back to 3 after healing the old leader",
            "every partition's ISR = [1, 2, 3]",
            "yes" if steps["ISR back to 3"] >= 0 else "not within 120 s",
            steps["ISR back to 3"] >= 0,
        )
        while_cut = sum(1 for t in refusals if cut2 <= t < heal23)
        after = sum(1 for t in refusals if heal23 <= t < cut_leader)
        ctx.check(
            "two brokers cut off: NOT_ENOUGH_REPLICAS answers of broker 1 (its log)",
            "reported: while cut off / after the heal",
            f"{while_cut} while cut off, {after} after the heal",
            True,
        )
        ctx.note(
            "Why two brokers cut off give timeouts rather than NOT_ENOUGH_REPLICAS: shrinking "
            "the ISR from {1, 2} to {1} needs an AlterPartition committed by the KRaft "
            "controller quorum. Every host here is also a controller voter, so broker 1 cut "
            "off from brokers 2 and 3 is one voter of three: its side has no quorum, the "
            "ISR change cannot commit, and the leader keeps ISR {1, 2}. acks=all requests "
            "then wait for broker 2, which never fetches, until request.timeout.ms; the "
            "producer retries and reports _MSG_TIMED_OUT at message.timeout.ms (15 s). "
            "NOT_ENOUGH_REPLICAS answers (counted above from the leader's log) can come only "
            "once an ISR below min.insync.replicas has been committed - when the pending "
            "shrink to {1} commits right after the heal, before broker 2 catches up. It is "
            "a retriable error: the producer retries it, so it shows as a delay, not as a "
            "failure code."
        )
        rss = _broker_rss_mb(ctx)
        ctx.details["broker_rss_mb"] = rss
        ctx.note(
            "Controllers are not split from the brokers (combined mode, as the native stack "
            "runs): no extra JVMs, so no extra memory. The combined broker+controller JVMs "
            f"measured {', '.join(f'{v:.0f}' for v in rss.values())} MB resident at the end of "
            "this run (256 MB heap each); a split quorum would add three more JVMs - "
            "controller-only ones are lighter than these, but each still needs its own heap and "
            "JVM overhead (not measured here). The price of combined mode is the above: a cut "
            "host takes a controller voter with it."
        )
        ctx.details["steps_s"] = {k: round(v, 1) for k, v in steps.items()}
        ctx.details["modes"] = [
            {
                "acks": m.acks,
                "sent": m.sent,
                "acknowledged": len(m.acked),
                "failed": dict(m.failed),
                "readable": len(m.readable),
                "lost": m.lost(),
                "lost_acknowledged_while_leader_cut": m.lost(cut_leader, heal_leader + 15),
            }
            for m in modes
        ]
        ctx.details["samples"] = len(samples)

    def _plots(
        self,
        ctx: Context,
        modes: list[Mode],
        samples: list[Sample],
        marks: list[tuple[float, str]],
        refusals: list[float],
    ) -> None:
        keys = sorted(samples[-1].isr) if samples else []
        plots.lines(
            ctx.plot_path("isr.png", "ISR size per partition over time"),
            "replicas in the ISR per partition (from the cluster's metadata)",
            {k: ([s.t for s in samples], [_isr_size(s, k) for s in samples]) for k in keys},
            xlabel="seconds",
            ylabel="replicas in sync",
            marks=marks,
            step=True,
        )
        plots.lines(
            ctx.plot_path("leaders.png", "leader per partition over time"),
            "leader broker id per partition",
            {k: ([s.t for s in samples], [s.leader.get(k, NAN) for s in samples]) for k in keys},
            xlabel="seconds",
            ylabel="leader (broker id, -1 = none)",
            marks=marks,
            step=True,
        )
        series = {}
        for m in modes:
            times = sorted(m.acked.values())
            series[f"acks={m.acks} acknowledged"] = (times, list(range(1, len(times) + 1)))
            kept = sorted(t for s, t in m.acked.items() if s in m.readable)
            series[f"acks={m.acks} acknowledged and readable"] = (
                kept,
                list(range(1, len(kept) + 1)),
            )
        if refusals:
            series["NOT_ENOUGH_REPLICAS answers (broker 1's log)"] = (
                sorted(refusals),
                list(range(1, len(refusals) + 1)),
            )
        plots.lines(
            ctx.plot_path("acks.png", "acknowledged versus readable records per acks mode"),
            "cumulative records, by the time they were acknowledged",
            series,
            xlabel="seconds",
            ylabel="records",
            marks=marks,
        )


def _broker_rss_mb(ctx: Context) -> dict[str, float]:
    from clickfan.compose.native import process
    from clickfan.compose.native.hosts import host_brokers

    sizes = {}
    for b in host_brokers(hosts_settings(ctx.settings)):
        pid = process.running_pid(b.pid_file, b.marker)
        sizes[b.name] = round(process.resident_bytes(pid) / 2**20, 1) if pid else 0.0
    return sizes


def _quorum_leader(ctx: Context) -> int:
    """The controller-quorum leader with the highest epoch any host has recorded."""
    from clickfan.compose.native.hosts import host_brokers

    best = (-1, LEADER)
    for b in host_brokers(hosts_settings(ctx.settings)):
        try:
            state = json.loads((b.log_dir / "__cluster_metadata-0" / "quorum-state").read_text())
        except (OSError, ValueError):
            continue
        if state.get("leaderId", -1) >= 0:
            best = max(best, (state.get("leaderEpoch", -1), state["leaderId"]))
    return best[1]


def _view(
    ctx: Context, broker: int, topics: list[str]
) -> tuple[dict[str, list[int]], dict[str, int]] | None:
    """ISR and leader per partition as `broker` itself reports them (None: no answer)."""
    from clickfan.compose.native.hosts import CLIENT_PORT, HostNet

    address = HostNet.for_home(hosts_settings(ctx.settings)).address(broker)
    # a fresh client knows only this broker, so its metadata request goes there
    admin = AdminClient(
        {"bootstrap.servers": f"{address}:{CLIENT_PORT}", "log_level": 0, "socket.timeout.ms": 2000}
    )
    isr: dict[str, list[int]] = {}
    leader: dict[str, int] = {}
    try:
        for topic in topics:
            found = admin.list_topics(topic, timeout=1.5).topics[topic]
            for p in found.partitions.values():
                key = f"{topic.rsplit('.', 1)[-1]}/{p.id}"
                isr[key] = sorted(p.isrs)
                leader[key] = p.leader
    except KafkaException:
        return None
    return isr, leader


def _settle(ctx: Context, topics: list[str], timeout_s: float) -> bool:
    """Every broker reports the same leaders and a full ISR everywhere."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        views = [_view(ctx, b, topics) for b in (LEADER, SECOND, FOLLOWER)]
        if all(v is not None for v in views):
            leaders = {json.dumps(v[1], sort_keys=True) for v in views if v}
            if len(leaders) == 1 and all(_full(Sample(0, v[0], v[1])) for v in views if v):
                return True
        time.sleep(1)
    return False


NAN = float("nan")  # a sample the cluster did not answer: a gap in the line


def _isr_size(sample: Sample, key: str) -> float:
    return len(sample.isr[key]) if key in sample.isr else NAN


def _full(sample: Sample) -> bool:
    return all(len(i) == 3 for i in sample.isr.values())
