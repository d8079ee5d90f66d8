"""acks 0 / 1 / all while brokers die: what was acknowledged, what is readable afterwards.

This experiment kills Kafka brokers (kill -9) of the stack the environment points
at, and starts them again. Run it on a stack of your own, never on one that
others use at the same time.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import NewTopic
from rich.console import Console

from clickfan.errors import ClickfanError
from clickfan.experiments import plots
from clickfan.experiments.framework import Context, Experiment
from clickfan.experiments.kafka_io import producer, read_topic
from clickfan.experiments.offsets import GroupOffsets
from clickfan.experiments.workers import wait_until

PARTITIONS = 3
RATE = 300.0  # records per second
PHASE1_S = 9.0
KILL_AT_S = 3.0
PHASE2_S = 24.0
RESTART_ONE_AT_S = 14.0


@dataclass
class Run:
    mode: str
    sent: int = 0
    acked: set[int] = field(default_factory=set)
    failed: Counter[str] = field(default_factory=Counter)
    acked_at: list[tuple[float, int]] = field(default_factory=list)  # (t, seq)
    failed_at: list[float] = field(default_factory=list)
    readable: set[int] = field(default_factory=set)
    duplicates: int = 0
    isr: list[tuple[float, int]] = field(default_factory=list)  # (t, replicas in ISR, summed)
    marks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(self.acked - self.readable)


def _broker(ctx: Context, node_id: int):  # noqa: ANN202 - compose.native KafkaBroker
    from clickfan.compose.native.stack import find_service

    return find_service(ctx.settings, f"kafka-{node_id}")


def kill_broker(ctx: Context, node_id: int) -> None:
    from clickfan.compose.native.stack import running_pid

    service = _broker(ctx, node_id)
    pid = running_pid(service)
    if pid is None:
        raise ClickfanError(f"broker {service.name} is not running; cannot kill it")
    os.kill(pid, signal.SIGKILL)


def start_broker(ctx: Context, node_id: int) -> None:
    from clickfan.compose.native.stack import running_pid, start_one

    service = _broker(ctx, node_id)
    if running_pid(service) is not None and service.probe().healthy:
        return
    deadline = time.monotonic() + 10
    while running_pid(service) is not None and time.monotonic() < deadline:
        time.sleep(0.2)  # a JVM killed a moment ago may still be going
    start_one(ctx.settings, service.name, Console(stderr=True, quiet=True))


class Acks(Experiment):
    name = "acks"
    title = "acks 0 / 1 / all with a leader broker killed, then two brokers down"
    claim_ko = """
- 프로듀서 ACK 라는 옵션 ( 고가용성을 위함  ) : 0 | 1 | all.
  - ack = 0 : 데이터를 리더 파이션에 전달하고, 응답받지 않는다.
  - ack = 1 : 데이터를 리더 파이션에 전달하고, 응답받음.
  - ack = all : ack 1 옵션에 팔로우 파티션까지 데이터를 잘 저장됨을 확인
    - ( 속도가 현저히 느리지만, 데이터의 유실은 없다. )
- 브로커 3개 이상시 레플리케이션을 3으로 유지하는 것을 추천
"""
    claim = (
        "acks=0 does not wait for the leader, acks=1 waits for the leader only, acks=all "
        "waits for the in-sync replicas: with replication 3 and min.insync.replicas 2, "
        "acks=all loses nothing when a leader dies, and refuses to write (NOT_ENOUGH_REPLICAS) "
        "rather than lose data when too few replicas are left."
    )
    method = f"""
Phase 1, once per mode (acks=0, 1, all): a fresh topic, {PARTITIONS} partitions,
replication 3, min.insync.replicas 2, every partition led by the same broker. Records
(each with a sequence number) are produced at {RATE:.0f}/s for {PHASE1_S:g} s; at
{KILL_AT_S:g} s the leaders' broker is killed with `kill -9`. Afterwards it is started again,
and the whole topic is read back: acknowledged versus readable, per mode.

Phase 2 (acks=all): a fresh topic; at {KILL_AT_S:g} s two of the three brokers are killed;
one of them is started again at {RESTART_ONE_AT_S:g} s; production goes on until
acknowledgements have been coming again for 3 s (at least {PHASE2_S:g} s, at most
{PHASE2_S + 90:g} s). Records get
a 10 s delivery timeout so that refused ones fail visibly. Counted: failures by error code,
acknowledged records that are not readable (silently lost), and acknowledgements after the
broker returned.

All along, the topic's ISR is read from the cluster's topic description twice a second.
"""
    default_events = 0  # the rate and durations decide; --events is ignored
    quick = False
    needs = ("kafka", "kills")

    def run(self, ctx: Context) -> None:
        s = ctx.settings
        if len(s.kafka_ports) < 3:
            raise ClickfanError("the acks experiment needs three brokers")
        ctx.note(
            "This experiment killed and restarted brokers of "
            f"{s.bootstrap_servers} (kill -9, then `clickfan start`)."
        )
        try:
            runs = [self._phase1(ctx, mode) for mode in ("0", "1", "all")]
            two = self._phase2(ctx)
        finally:
            # a run that broke half-way must not leave brokers down
            for node_id in (1, 2, 3):
                start_broker(ctx, node_id)
        for r in runs:
            ok = r.lost == 0 if r.mode == "all" else True
            ctx.check(
                f"acks={r.mode}: acknowledged but not readable (lost)",
                "0" if r.mode == "all" else "reported (no guarantee)",
                f"{r.lost} of {len(r.acked)} acknowledged ({r.sent} sent, "
                f"{sum(r.failed.values())} failed)",
                ok,
            )
        failed = sum(two.failed.values())
        ctx.check(
            "two brokers down, acks=all: records refused with an error",
            "> 0 (NOT_ENOUGH_REPLICAS or a timeout), counted by code",
            dict(two.failed) or 0,
            failed > 0,
        )
        ctx.check(
            "two brokers down, acks=all: acknowledged but not readable (silently lost)",
            0,
            two.lost,
            two.lost == 0,
        )
        written = len(two.readable - two.acked)
        ctx.check(
            "two brokers down, acks=all: failed records that are in the log anyway",
            "reported (a timed-out record may have been written: retry it idempotently)",
            written,
            True,
        )
        accounted = len(two.acked) + failed
        ctx.check(
            "two brokers down, acks=all: every record acknowledged or failed",
            two.sent,
            accounted,
            accounted == two.sent,
        )
        after = sum(1 for t, _ in two.acked_at if t > RESTART_ONE_AT_S + 1)
        ctx.check(
            "two brokers down, acks=all: acknowledgements after one broker returned",
            "> 0 (production resumes)",
            after,
            after > 0,
        )
        if not two.failed.get("NOT_ENOUGH_REPLICAS"):
            ctx.note(
                "No NOT_ENOUGH_REPLICAS: the brokers here are also the KRaft controller quorum "
                "(three voters), so with two of them down there is no controller to shrink the "
                "ISR; the leader keeps the old ISR and acks=all requests time out instead. "
                "Either way nothing acknowledged is lost."
            )
        ctx.details["phase1"] = [
            {
                "acks": r.mode,
                "sent": r.sent,
                "acknowledged": len(r.acked),
                "failed": dict(r.failed),
                "readable": len(r.readable),
                "lost": r.lost,
                "duplicates": r.duplicates,
            }
            for r in runs
        ]
        ctx.details["phase2"] = {
            "sent": two.sent,
            "acknowledged": len(two.acked),
            "failed": dict(two.failed),
            "readable": len(two.readable),
            "lost": two.lost,
            "acknowledged_after_return": after,
            "failed_but_readable": len(two.readable - two.acked),
            "production_s": round(max((t for t, _ in two.acked_at), default=0), 1),
        }
        plots.bars(
            ctx.plot_path("acks.png", "sent, acknowledged, readable and lost per acks mode"),
            f"leader broker killed at {KILL_AT_S:g} s of {PHASE1_S:g} s at {RATE:.0f} records/s",
            [f"acks={r.mode}" for r in runs] + ["acks=all\n2 brokers down"],
            {
                "sent": [r.sent for r in [*runs, two]],
                "acknowledged": [len(r.acked) for r in [*runs, two]],
                "readable": [len(r.readable) for r in [*runs, two]],
                "failed": [sum(r.failed.values()) for r in [*runs, two]],
                "lost (acked, not readable)": [r.lost for r in [*runs, two]],
            },
            xlabel="mode",
            ylabel="records",
        )
        plots.lines(
            ctx.plot_path("isr.png", "ISR size over time (replicas in sync, summed)"),
            f"replicas in the ISR, summed over {PARTITIONS} partitions (marks: phase 2)",
            {
                **{f"acks={r.mode}": tuple(zip(*r.isr, strict=True)) for r in runs if r.isr},
                "2 brokers down": tuple(zip(*two.isr, strict=True)) if two.isr else ([], []),
            },
            xlabel="seconds from the start of production",
            ylabel="replicas in sync",
            marks=two.marks,
            step=True,
        )
        ack_series = {}
        for r in [two]:
            xs = [t for t, _ in sorted(r.acked_at)]
            ack_series["acknowledged (cumulative)"] = (xs, list(range(1, len(xs) + 1)))
            fs = sorted(r.failed_at)
            ack_series["failed (cumulative)"] = (fs, list(range(1, len(fs) + 1)))
        plots.lines(
            ctx.plot_path("two-down.png", "two brokers down with acks=all: acks and failures"),
            "acks=all: two brokers down, one back",
            ack_series,
            xlabel="seconds from the start of production",
            ylabel="records",
            marks=two.marks,
        )

    # --------------------------------------------------------------- helpers
    def _topic(self, ctx: Context, suffix: str, leader: int) -> str:
        ids = [leader] + [b for b in (1, 2, 3) if b != leader]
        name = f"{ctx.names.prefix}.{suffix}"
        new = NewTopic(
            name,
            PARTITIONS,  # this client wants the count along with the assignment
            replica_assignment=[ids[:1] + ids[1:][:: 1 - 2 * (p % 2)] for p in range(PARTITIONS)],
            config={"min.insync.replicas": "2"},
        )
        ctx.admin.create_topics([new], request_timeout=30)[name].result()
        ctx.on_cleanup(f"delete topic {name}", lambda: ctx._delete_topic(name))
        ctx.wait_for_topic(name, PARTITIONS)
        return name

    def _watch_isr(
        self, ctx: Context, topic: str, run: Run, began: float, stop: threading.Event
    ) -> threading.Thread:
        def watch() -> None:
            while not stop.is_set():
                try:
                    description = ctx.admin.describe_topics(
                        TopicCollection([topic]), request_timeout=2
                    )[topic].result()
                    size = sum(len(p.isr) for p in description.partitions)
                    run.isr.append((time.monotonic() - began, size))
                except KafkaException:
                    pass
                stop.wait(0.5)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def _produce(
        self,
        ctx: Context,
        topic: str,
        run: Run,
        seconds: float,
        began: float,
        events: dict[float, Callable[[], None]],
        keep_going: Callable[[float], bool] | None = None,
        **config: object,
    ) -> list[threading.Thread]:
        p = producer(
            ctx.settings.bootstrap_servers,
            acks=run.mode,
            **{"enable.idempotence": run.mode == "all", "linger.ms": 5, **config},
        )

        def delivered(seq: int, err, msg) -> None:  # noqa: ANN001
            now = time.monotonic() - began
            if err is None:
                run.acked.add(seq)
                run.acked_at.append((now, seq))
            else:
                run.failed[err.name()] += 1
                run.failed_at.append(now)

        pending = dict(sorted(events.items()))
        actions: list[threading.Thread] = []
        seq = 0
        while (elapsed := time.monotonic() - began) < seconds or (
            keep_going is not None and keep_going(elapsed)
        ):
            for at in [a for a in pending if a <= elapsed]:
                thread = threading.Thread(target=pending.pop(at), daemon=True)
                thread.start()
                actions.append(thread)
            due = seq / RATE
            if elapsed < due:
                p.poll(min(due - elapsed, 0.01))
                continue
            value = json.dumps({"seq": seq, "acks": run.mode}).encode()
            try:
                p.produce(
                    topic, key=str(seq).encode(), value=value, on_delivery=partial(delivered, seq)
                )
                run.sent += 1
            except BufferError:
                p.poll(0.05)
                continue
            except KafkaException as exc:
                run.sent += 1
                run.failed[exc.args[0].name()] += 1
            seq += 1
            p.poll(0)
        # every record gets its report: acknowledged or failed
        while len(p) > 0 and time.monotonic() - began < seconds + 150:
            p.flush(1)
        for thread in actions:
            thread.join(200)
        return actions

    def _read_back(self, ctx: Context, topic: str, run: Run) -> None:
        ends = GroupOffsets(ctx.settings.bootstrap_servers).log_end(
            [(topic, p) for p in range(PARTITIONS)]
        )
        records = read_topic(
            ctx.settings.bootstrap_servers,
            topic,
            PARTITIONS,
            {p: ends[(topic, p)] for p in range(PARTITIONS)},
            timeout_s=120,
        )
        seqs = [json.loads(r.value)["seq"] for r in records]
        run.readable = set(seqs)
        run.duplicates = len(seqs) - len(run.readable)

    def _all_in_sync(self, ctx: Context, topic: str) -> bool:
        description = ctx.admin.describe_topics(TopicCollection([topic]), request_timeout=5)[
            topic
        ].result()
        return all(len(p.isr) == 3 for p in description.partitions)

    def _phase1(self, ctx: Context, mode: str) -> Run:
        victim = 1
        topic = self._topic(ctx, f"acks-{mode}", leader=victim)
        run = Run(mode)
        stop = threading.Event()
        with ctx.step(
            f"acks={mode}: {RATE:.0f}/s for {PHASE1_S:g} s; broker {victim} "
            f"(all leaders) killed at {KILL_AT_S:g} s"
        ):
            began = time.monotonic()
            watcher = self._watch_isr(ctx, topic, run, began, stop)
            self._produce(
                ctx, topic, run, PHASE1_S, began, {KILL_AT_S: partial(kill_broker, ctx, victim)}
            )
            run.marks.append((KILL_AT_S, f"kill -9 broker {victim}"))
            start_broker(ctx, victim)
            wait_until("the ISR to be full again", lambda: self._all_in_sync(ctx, topic), 120)
            stop.set()
            watcher.join(5)
            self._read_back(ctx, topic, run)
        ctx.progress(
            f"acks={mode}: sent {run.sent}, acknowledged {len(run.acked)}, "
            f"failed {dict(run.failed)}, readable {len(run.readable)}, lost {run.lost}"
        )
        return run

    def _phase2(self, ctx: Context) -> Run:
        topic = self._topic(ctx, "two-down", leader=3)
        run = Run("all")
        stop = threading.Event()
        with ctx.step(
            f"acks=all: brokers 1 and 2 killed at {KILL_AT_S:g} s, broker 1 back "
            f"at {RESTART_ONE_AT_S:g} s"
        ):
            began = time.monotonic()
            watcher = self._watch_isr(ctx, topic, run, began, stop)

            def resumed(now: float) -> bool:
                """Acknowledgements for records sent after the restart, for 3 s already."""
                late = [t for t, _ in run.acked_at if t > RESTART_ONE_AT_S]
                return bool(late) and now - min(late) >= 3

            def kill_two() -> None:
                kill_broker(ctx, 1)
                kill_broker(ctx, 2)

            self._produce(
                ctx,
                topic,
                run,
                PHASE2_S,
                began,
                {KILL_AT_S: kill_two, RESTART_ONE_AT_S: partial(start_broker, ctx, 1)},
                keep_going=lambda t: t < PHASE2_S + 90 and not resumed(t),
                **{"message.timeout.ms": 10000, "request.timeout.ms": 5000},
            )
            run.marks += [(KILL_AT_S, "kill -9 brokers 1, 2"), (RESTART_ONE_AT_S, "start broker 1")]
            start_broker(ctx, 1)  # no-op when it is already back
            start_broker(ctx, 2)
            wait_until("the ISR to be full again", lambda: self._all_in_sync(ctx, topic), 180)
            stop.set()
            watcher.join(5)
            self._read_back(ctx, topic, run)
        ctx.progress(
            f"two down: sent {run.sent}, acknowledged {len(run.acked)}, "
            f"failed {dict(run.failed)}, lost {run.lost}"
        )
        return run
