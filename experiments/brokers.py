"""Message broker versus event broker: RabbitMQ and Redis next to Kafka, measured.

RabbitMQ and Redis come from Debian's packages and run beside the stack
(`clickfan up --with rabbitmq,redis`); this experiment starts them itself when
they are installed but not running, and stops again what it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from rich.console import Console

from clickfan.errors import ClickfanError
from clickfan.events import encode_event
from clickfan.experiments import plots
from clickfan.experiments.brokers_io import STORES, Crash, Endpoints, KafkaTopic, Store
from clickfan.experiments.framework import Context, Experiment, ExperimentSkipped
from clickfan.generators.events import EventGenerator

IN_FLIGHT = 50  # records the crashing consumer has taken but not acknowledged
LOGS = ("redis-stream", "rabbitmq-stream", "kafka")

RETENTION = {
    "rabbitmq-queue": "until a consumer acknowledges it (then deleted)",
    "redis-list": "until a consumer pops it (then deleted)",
    "redis-stream": "until trimmed (XTRIM / XADD MAXLEN or MINID); in memory, one node",
    "rabbitmq-stream": "until its retention (x-max-age, x-max-length-bytes); on disk",
    "kafka": "until retention.ms / retention.bytes (7 days by default); on disk, replicated",
}


@dataclass
class Result:
    store: str
    label: str
    kind: str
    events: int
    in_s: float = 0.0
    out_s: float = 0.0
    first: int = 0
    late: int = 0
    held: int = 0
    acknowledged: int = 0
    in_flight: int = 0
    resumed: int = 0
    lost_in_crash: int = 0
    redelivered: int = 0
    reread: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rate_in(self) -> float:
        return round(self.events / self.in_s) if self.in_s else 0.0

    @property
    def rate_out(self) -> float:
        return round(self.first / self.out_s) if self.out_s else 0.0


def _ensure_brokers(ctx: Context) -> None:
    """RabbitMQ and Redis running (started here if only installed); else a one-line reason."""
    from clickfan.compose.native import stack

    try:
        stack.check_installed(ctx.settings, stack.OPTIONAL_NAMES)
    except ClickfanError as exc:
        raise ExperimentSkipped(str(exc)) from None
    quiet = Console(stderr=True, quiet=True)
    for name in stack.up_optional(ctx.settings, stack.OPTIONAL_NAMES, quiet):
        ctx.note(f"{name} was not running: the experiment started it and stopped it afterwards")
        ctx.on_cleanup(f"stop {name}", lambda n=name: stack.stop_one(ctx.settings, n, quiet))


def endpoints(ctx: Context) -> Endpoints:
    from clickfan.compose.native.services.messaging import rabbitmq_port, redis_port

    s = ctx.settings
    return Endpoints(s.host, rabbitmq_port(), redis_port(), s.bootstrap_servers)


def crash_consumer(store: str, name: str, reader: str, ep: Endpoints, acknowledge: int) -> Crash:
    """A consumer process that acknowledges `acknowledge` records, takes more, and is killed."""
    argv = [
        sys.executable,
        "-m",
        "clickfan.experiments.brokers_io",
        "crash",
        store,
        name,
        reader,
        "--endpoints",
        ep.to_json(),
        "--acknowledge",
        str(acknowledge),
        "--in-flight",
        str(IN_FLIGHT),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            err = proc.stderr.read()[-600:] if proc.stderr else ""
            raise ClickfanError(f"the crashing consumer of {store} ended early: {err}")
        return Crash(**json.loads(line))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # the crash: no clean close, no final ack
        proc.wait(30)


class Brokers(Experiment):
    name = "brokers"
    title = "message brokers (RabbitMQ, Redis) versus an event broker (Kafka)"
    claim_ko = """
메시징 플랫폼을 크게 2개로 구분
1. 메시지 브로커  : 이벤트 브로커 역할 불가능 eg)Redis,RabbitMQ.
2. 이벤트 브로커  : 메시지 브로커의 역할도 가능 eg)Kafka,AWS 키네시스

메시지 브로커 특징
  - 메시지를 처리하고 나면, 짧은 시간내 삭제된다.

이벤트 브로커 특징
  - 레코드(이벤트,혹은 메시지 자료구조) 하나를 관리 및 인덱스로 접근
  - 특정 시간동안 레코드를 보관
    - 1.딱 한번 발생한 이벤트를 저장하여 - 단일 진실 공급원
    - 2.장애 지점부터 재처리가 가능
    - 3.많은 양의 실시간 스트림데이터 효과적으로 처리
"""
    claim = (
        "Messaging platforms come in two kinds: a message broker cannot play an event "
        "broker's part, an event broker can play both. "
        "Redis and RabbitMQ are message brokers: a message is deleted soon after it is "
        "processed. Kafka is an event broker: it keeps records for a set time, serves as the "
        "single source of truth, lets a consumer reprocess from the point of failure, and "
        "handles large real-time streams."
    )
    method = f"""
The same N generated click events go into five stores: a RabbitMQ classic queue
(durable, persistent messages, publisher confirms), a Redis list (RPUSH / LPOP), a Redis
stream (XADD, consumer groups), a RabbitMQ stream (a stream queue, read over AMQP 0.9.1
with `x-stream-offset`), and a Kafka topic (3 partitions, replication 3, acks=all).
Records are counted by their `event_id`, as sets.

1. **Write** all N (time = throughput in; every record held by the broker when it returns).
2. **First consumer** reads and acknowledges everything (time from its first to its last
   record = throughput out).
3. **Late consumer**: a second consumer joins afterwards and asks for everything from
   the beginning (Kafka: a new group with `auto.offset.reset=earliest`; Redis stream: a new
   group at id 0; RabbitMQ stream: `x-stream-offset=first`; queue and list: a new consumer).
4. **What is left**: the records each store still holds after both consumers.
5. **Crash**: a fresh store of each kind with N new records; a consumer process
   acknowledges N/2 of them, takes {IN_FLIGHT} more without acknowledging, and is killed
   with kill -9. It restarts: what it gets from where it failed, what is lost, and whether
   the N/2 acknowledged records can be read again (reprocessing from a point of failure
   before which the results turned out wrong).
"""
    default_events = 2000
    needs = ("kafka", "rabbitmq", "redis")

    def run(self, ctx: Context) -> None:
        _ensure_brokers(ctx)
        ep = endpoints(ctx)
        gen = EventGenerator(17)
        results = []
        for key, cls in STORES.items():
            with ctx.step(f"{cls.label}: {ctx.events} records through it"):
                results.append(self._one(ctx, ep, key, cls, gen))
            r = results[-1]
            ctx.progress(
                f"{r.label}: in {r.rate_in:.0f}/s, out {r.rate_out:.0f}/s, late consumer "
                f"{r.late}, held {r.held}, after the crash {r.resumed} resumed, "
                f"{r.lost_in_crash} lost, re-read {r.reread}"
            )
        self._checks(ctx, results)
        self._report(ctx, results)

    def _one(
        self, ctx: Context, ep: Endpoints, key: str, cls: type[Store], gen: EventGenerator
    ) -> Result:
        n = ctx.events
        names = {"main": f"{ctx.names.prefix}.{key}", "crash": f"{ctx.names.prefix}.{key}.crash"}
        stores = {role: cls(ep, name) for role, name in names.items()}
        for store in stores.values():
            if isinstance(store, KafkaTopic):
                ctx.create_topic(store.name, partitions=KafkaTopic.partitions)
                ctx.forget_groups(*(self._reader(store, g) for g in ("first", "late", "crashing")))
            store.setup()
            ctx.on_cleanup(f"delete {cls.label} {store.name}", store.delete)
        result = Result(key, cls.label, cls.kind, n)
        main = stores["main"]
        payloads = [encode_event(e) for e in gen.take(n)]
        began = time.monotonic()
        main.publish(payloads)
        result.in_s = time.monotonic() - began
        result.first = len(set(main.consume(self._reader(main, "first"))))
        result.out_s = main.read_span_s()
        result.late = len(set(main.consume(self._reader(main, "late"), from_start=True)))
        result.held = main.held()

        crashing = stores["crash"]
        batch = [encode_event(e) for e in gen.take(n)]
        crashing.publish(batch)
        everything = {json.loads(b)["event_id"] for b in batch}
        reader = self._reader(crashing, "crashing")
        crash = crash_consumer(key, crashing.name, reader, ep, n // 2)
        result.acknowledged, result.in_flight = len(crash.acknowledged), len(crash.in_flight)
        resumed = set(crashing.resume(reader, crash))
        result.resumed = len(resumed)
        result.redelivered = len(resumed & set(crash.acknowledged))
        result.lost_in_crash = len(everything - set(crash.acknowledged) - resumed)
        again = crashing.reread(crash)
        result.reread = None if again is None else len(set(again) & set(crash.acknowledged))
        return result

    @staticmethod
    def _reader(store: Store, role: str) -> str:
        # Kafka's consumer groups are named after the topic, so the clean-up finds them
        return f"{store.name}.{role}" if isinstance(store, KafkaTopic) else role

    def _checks(self, ctx: Context, results: list[Result]) -> None:
        n = ctx.events
        half = n // 2
        for r in results:
            log = r.store in LOGS
            ctx.check(
                f"{r.label}: first consumer gets every record",
                n,
                r.first,
                r.first == n,
            )
            ctx.check(
                f"{r.label}: late consumer, from the beginning",
                n if log else "0 (already consumed)",
                r.late,
                r.late == (n if log else 0),
            )
            ctx.check(
                f"{r.label}: records still held after both consumers",
                n if log else 0,
                r.held,
                r.held == (n if log else 0),
            )
            lost_expected = IN_FLIGHT if r.store == "redis-list" else 0
            ctx.check(
                f"{r.label}: lost when the consumer was killed half-way",
                f"{lost_expected} (the popped, unprocessed ones)" if lost_expected else 0,
                r.lost_in_crash,
                r.lost_in_crash == lost_expected,
            )
            ctx.check(
                f"{r.label}: acknowledged records read again after the crash",
                half if log else "impossible",
                "impossible" if r.reread is None else r.reread,
                (r.reread == half) if log else r.reread is None,
            )

    def _report(self, ctx: Context, results: list[Result]) -> None:
        rows = [
            "| store | kind | in (rec/s) | out (rec/s) | late consumer gets | held after "
            "both | after kill -9: resumed / lost / redelivered | acknowledged re-readable "
            "| data stays |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results:
            reread = "no way" if r.reread is None else f"{r.reread} of {r.acknowledged}"
            rows.append(
                f"| {r.label} | {r.kind} | {r.rate_in:.0f} | {r.rate_out:.0f} | {r.late} of "
                f"{r.events} | {r.held} | {r.resumed} / {r.lost_in_crash} / {r.redelivered} "
                f"| {reread} | {RETENTION[r.store]} |"
            )
        ctx.section("Per store", "\n".join(rows))
        ctx.section(
            "What the seed notes leave out",
            """
- **A Redis stream is a log, not a queue.** Entries stay after every consumer group
  has acknowledged them, until they are trimmed (`XTRIM`, `XADD ... MAXLEN/MINID`). A late
  group reads from id 0, a consumer that crashed gets its pending entries again
  (`XREADGROUP ... 0`, or another consumer takes them with `XAUTOCLAIM`), and any range can
  be read again with `XRANGE`. Limits: it lives in one server's memory (bounded by RAM,
  persisted by the append-only file here), and there is no partitioning across machines
  unless you shard keys yourself.
- **RabbitMQ has streams (3.9+; Debian bookworm ships 3.10.8, which runs them).** A stream
  queue is an append-only log on disk with time/size retention; consumers choose where to
  start (`first`, `last`, `next`, an offset, a timestamp), so a late consumer and a
  rewind both work. Over AMQP 0.9.1 (used here) the broker keeps no position for a
  consumer: the consumer stores its offset itself; the stream protocol plugin can track it
  on the server.
- **A RabbitMQ queue is not careless either.** A message taken but not acknowledged is
  delivered again after the consumer dies (counted as "redelivered" when the crashed
  consumer had already acknowledged it - here zero, since acknowledgements were
  synchronous). What it cannot do is give an acknowledged message to anyone again.
- **A Redis list with plain `LPOP` loses what a crashed consumer had popped.** The
  reliable-queue pattern (`LMOVE` to a processing list, removed after processing) avoids
  that; it is not what the notes describe, and it is not used here.
- **Throughput here is one client on a shared two-core machine, small events.** The
  RabbitMQ queue is written with pika's blocking channel, which waits for each publisher
  confirm (one round trip per message); Kafka's producer batches and waits for all
  in-sync replicas on three brokers, Redis pipelines 500 commands at a time in memory on
  one node. With a few thousand records the figures include connection and group-join
  time; they say which store is in which league, not what each can do when tuned.
- **Kafka's difference is that all of this is the default and scales out:** a group's
  committed offsets live on the brokers, the log is partitioned and replicated over
  brokers, and the retention is a setting, independent of who has read what.
""",
        )
        ctx.details["stores"] = [
            {**r.__dict__, "rate_in": r.rate_in, "rate_out": r.rate_out} for r in results
        ]
        labels = [r.label.replace(" ", "\n", 1) for r in results]
        plots.bars(
            ctx.plot_path("retention.png", "what a late consumer, the store and a rewind get"),
            f"{ctx.events} records per store, after a first consumer read them all",
            labels,
            {
                "late consumer gets": [r.late for r in results],
                "held after both consumers": [r.held for r in results],
                "acknowledged, read again after the crash": [r.reread or 0 for r in results],
                "lost in the crash": [r.lost_in_crash for r in results],
            },
            xlabel="store",
        )
        plots.bars(
            ctx.plot_path("throughput.png", "throughput in and out per store"),
            "records per second (one client, one machine, small events)",
            labels,
            {"in": [r.rate_in for r in results], "out": [r.rate_out for r in results]},
            xlabel="store",
            ylabel="records / s",
        )
