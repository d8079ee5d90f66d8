"""The click-log producer: generated events into Kafka, every record accounted for.

Each record handed to librdkafka ends in exactly one of: acknowledged, failed
(with the error code) or, only if the user gives up waiting, pending. Nothing is
dropped quietly: a full local queue makes the producer wait (poll), not drop,
and the run ends with a flush whose outcome is in the summary.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from clickfan import kafka_client
from clickfan.errors import ClickfanError
from clickfan.events import encode_event
from clickfan.generators.bad_records import BAD_KIND_HEADER, BadRecordMaker
from clickfan.generators.events import EventGenerator
from clickfan.generators.partitioners import VipPartitioner
from clickfan.settings import Settings

ACKS = ("0", "1", "all")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
KEY_MODES = ("user", "none", "vip")

# The highest --rate: far above what one Python process generates (tens of
# thousands of events/s), so it never limits a real run; 0 means unlimited.
MAX_RATE = 1_000_000.0

_PROGRESS_EVERY_S = 0.2
# With a rate limit, never send more than this much backlog at once after a
# stall: catching up in one burst is exactly what a rate limit should prevent.
_MAX_BACKLOG_S = 0.1
# The shortest sleep between two sends with a rate limit (records due meanwhile
# are sent together, so the rate holds; they are still spread over each second).
_MIN_TICK_S = 0.005
# Records sent between two looks at the stop signal, the clock and the delivery
# reports, with or without a rate limit (a catch-up batch is never bigger).
_MAX_BATCH = 1000
_NEW_TOPIC_GRACE_S = 3.0

# librdkafka logs every failed connection attempt to stderr, many per second
# while a broker is down. Its errors reach the summary through error_cb
# (client_errors); the raw log goes here, silent unless someone listens.


@dataclass(frozen=True)
class Delivery:
    """One acknowledged record (only collected with ``record_deliveries``)."""

    event_id: str | None  # None for a bad record
    bad_kind: str | None
    partition: int
    offset: int | None  # None with acks=0: the broker does not say


@dataclass(frozen=True)
class Progress:
    sent: int
    acknowledged: int
    failed: int
    elapsed_s: float
    total: int | None
    flushing: bool


@dataclass
class ProduceSummary:
    topic: str
    bootstrap_servers: str
    partitions: int
    acks: str
    idempotence: bool
    compression: str
    keys: str
    seed: int
    start_time: str
    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    failed_by_error: dict[str, int] = field(default_factory=dict)
    # one example message per error code, to say what happened
    error_messages: dict[str, str] = field(default_factory=dict)
    # transient client-level errors (a broker went away, ...), not record failures
    client_errors: dict[str, int] = field(default_factory=dict)
    bad_by_kind: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    interrupted: bool = False
    stopped_by: str | None = None  # what interrupted the run: "Ctrl-C", "SIGTERM", ...
    notes: list[str] = field(default_factory=list)
    deliveries: list[Delivery] | None = None

    @property
    def pending(self) -> int:
        """Records whose fate is unknown: only when the final flush was abandoned."""
        return self.sent - self.acknowledged - self.failed

    @property
    def rate(self) -> float:
        """Acknowledged records per second over the whole run, flush included."""
        return self.acknowledged / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.pending == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("deliveries")
        data.update(pending=self.pending, rate=round(self.rate, 1), ok=self.ok)
        data["elapsed_s"] = round(self.elapsed_s, 3)
        return data


class StopSignal:
    """Asked once: stop producing and flush. Asked twice: stop waiting for the flush."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()
        self.reason: str | None = None

    def request(self, reason: str = "a stop request") -> int:
        """Ask; ``reason`` (of the first request) is what the summary says stopped the run."""
        with self._lock:
            self._count += 1
            if self.reason is None:
                self.reason = reason
            return self._count

    @property
    def stopping(self) -> bool:
        return self._count >= 1

    @property
    def abandoning(self) -> bool:
        return self._count >= 2


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ClickfanError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def check_rate(rate: float) -> None:
    """0 (unlimited) or a finite number of events per second up to MAX_RATE."""
    if not (math.isfinite(rate) and 0 <= rate <= MAX_RATE):
        raise ClickfanError(
            f"the rate must be 0 (unlimited) or up to {MAX_RATE:,.0f} events per second; "
            f"got {rate}",
            exit_code=2,
        )


def catch_up(now: float, next_at: float, interval: float) -> tuple[int, float]:
    """Records due at ``now`` with a rate limit, and when the next one is due.

    At most _MAX_BACKLOG_S of backlog is made up after a stall, and at most
    _MAX_BATCH records at once whatever the rate.
    """
    next_at = max(next_at, now - _MAX_BACKLOG_S)
    batch = min(int((now - next_at) / interval) + 1, _MAX_BATCH)
    return batch, next_at + batch * interval


class ClickProducer:
    """Produce generated click events to ``settings.topic``.

    ``bootstrap_servers`` defaults to the local stack's brokers. ``extra_config``
    is passed to librdkafka as is (for experiments, e.g.
    ``{"sticky.partitioning.linger.ms": 0}``) and wins over clickfan's values.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        bootstrap_servers: str | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        acks = "all" if settings.produce_acks == "-1" else settings.produce_acks
        _check_choice("acks", acks, ACKS)
        _check_choice("compression", settings.produce_compression, COMPRESSIONS)
        _check_choice("keys", settings.produce_keys, KEY_MODES)
        if not 0.0 <= settings.bad_fraction <= 1.0:
            raise ClickfanError(f"bad_fraction must be within 0..1; got {settings.bad_fraction}")
        check_rate(settings.produce_rate)
        self.settings = settings
        self.bootstrap_servers = kafka_client.bootstrap(settings, bootstrap_servers)
        self.acks = acks
        self.notes: list[str] = []
        self.idempotence = settings.produce_idempotence
        if self.idempotence and acks != "all":
            self.idempotence = False
            self.notes.append(
                f"idempotence switched off: it needs acks=all, and acks={acks} was asked"
            )
        if not self.idempotence:
            self.notes.append(
                "without idempotence a retried batch can be written twice or out of order"
            )
        self._client_errors: Counter[str] = Counter()
        self._fatal: KafkaError | None = None
        # refused by the brokers (credentials, ACLs, TLS): stop and say why, never retry
        identity = kafka_client.active()
        self.refusals = kafka_client.RefusalWatch(identity.security_protocol)
        self._who = f"user {identity.username!r}" if identity.username else "the producer"
        try:
            self._producer = Producer(self._config(extra_config or {}))
        except KafkaException as exc:
            raise ClickfanError(f"bad producer configuration: {exc.args[0].str()}") from None

    def _config(self, extra: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        return {
            **kafka_client.confluent(self.bootstrap_servers),
            "client.id": "clickfan-producer",
            "acks": self.acks,
            "enable.idempotence": self.idempotence,
            "compression.type": s.produce_compression,
            "linger.ms": s.produce_linger_ms,
            "batch.size": s.produce_batch_size,
            "batch.num.messages": s.produce_batch_num_messages,
            "queue.buffering.max.messages": s.produce_queue_max_messages,
            "message.timeout.ms": s.produce_delivery_timeout_ms,
            # Java-compatible placement of keyed records (see partitioners.py)
            "partitioner": "murmur2_random",
            # a mistyped --topic must fail, not create a topic with broker defaults
            "allow.auto.create.topics": False,
            "error_cb": self._on_error,
            "logger": self.refusals.log,
            **extra,
        }

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
        self.refusals.error_cb(err)
        self._client_errors[err.name()] += 1

    def _refused(self) -> ClickfanError | None:
        self._producer.poll(0.5)  # error and log callbacks are served here
        reason = self.refusals.reason or self.refusals.hint
        if reason is None:
            return None
        return ClickfanError(f"Kafka refused {self._who}: {reason}")

    def _partitions(self) -> int:
        s = self.settings
        # A topic created a moment ago may not be in every broker's metadata yet.
        deadline = time.monotonic() + _NEW_TOPIC_GRACE_S
        while True:
            try:
                # asked by name: a topic the ACLs hide answers TOPIC_AUTHORIZATION_FAILED
                metadata = self._producer.list_topics(s.topic, s.produce_metadata_timeout_s)
            except KafkaException as exc:
                refused = self._refused()
                if refused is not None:
                    raise refused from None
                raise ClickfanError(
                    f"cannot reach Kafka at {self.bootstrap_servers} within "
                    f"{s.produce_metadata_timeout_s:g} s ({exc.args[0].str()}). Start the stack "
                    "with `clickfan up`, or point --bootstrap-servers at running brokers."
                ) from None
            topic = metadata.topics.get(s.topic)
            if topic is not None and topic.error is not None:
                if topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    topic = None
                elif reason := kafka_client.refusal(topic.error.name(), topic.error.str()):
                    raise ClickfanError(f"Kafka refused {self._who} topic {s.topic!r}: {reason}")
            if topic is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if topic is None:
            raise ClickfanError(
                f"topic {s.topic!r} does not exist on {self.bootstrap_servers}. `clickfan up` "
                "creates the pipeline's topics; create any other topic before producing to it."
            )
        if topic.error is not None:
            raise ClickfanError(f"topic {s.topic!r} is not usable: {topic.error.str()}")
        return len(topic.partitions)

    def _vip_partitioner(self, partitions: int) -> VipPartitioner:
        s = self.settings
        try:
            if s.vip_partitions:
                return VipPartitioner(partitions, s.vip_partitions)
            return VipPartitioner.from_share(partitions, s.vip_share)
        except ValueError as exc:
            raise ClickfanError(f"--keys vip on topic {s.topic!r}: {exc}") from None

    def run(
        self,
        *,
        count: int | None = None,
        duration_s: float | None = None,
        start_time: datetime | None = None,
        record_deliveries: bool = False,
        progress: Callable[[Progress], None] | None = None,
        stop: StopSignal | None = None,
    ) -> ProduceSummary:
        """Produce until ``count`` records, ``duration_s`` seconds or ``stop``, then flush.

        With neither count nor duration it runs until ``stop`` is requested.
        """
        if count is not None and count < 1:
            raise ClickfanError(f"count must be at least 1; got {count}")
        if duration_s is not None and duration_s <= 0:
            raise ClickfanError(f"duration must be positive; got {duration_s}")
        partitions = self._partitions()
        vip = self._vip_partitioner(partitions) if self.settings.produce_keys == "vip" else None
        try:
            return _Run(
                self,
                partitions,
                vip,
                count=count,
                duration_s=duration_s,
                start_time=start_time or datetime.now(UTC).replace(microsecond=0),
                record_deliveries=record_deliveries,
                progress=progress,
                stop=stop or StopSignal(),
            ).execute()
        except (KafkaException, SystemError) as exc:
            # librdkafka raises a fatal error from poll() or flush(): e.g. an idempotent
            # producer whose user lacks IDEMPOTENT_WRITE (CLUSTER_AUTHORIZATION_FAILED).
            # Raised while delivery callbacks still run, it comes out as a SystemError
            # from the next callback's call into the client, the KafkaException its cause.
            fatal = exc if isinstance(exc, KafkaException) else exc.__cause__
            if not isinstance(fatal, KafkaException):
                raise
            error = fatal.args[0]
            reason = kafka_client.refusal(error.name(), error.str())
            if reason is not None:
                raise ClickfanError(f"Kafka refused {self._who}: {reason}") from None
            raise ClickfanError(f"the producer stopped on a fatal error: {error.str()}") from None


class _Run:
    """One run of a ClickProducer: generate, send, pace, count every delivery, flush."""

    def __init__(
        self,
        owner: ClickProducer,
        partitions: int,
        vip: VipPartitioner | None,
        *,
        count: int | None,
        duration_s: float | None,
        start_time: datetime,
        record_deliveries: bool,
        progress: Callable[[Progress], None] | None,
        stop: StopSignal,
    ) -> None:
        s = owner.settings
        self.owner, self.settings, self.producer = owner, s, owner._producer
        self.vip, self.count, self.duration_s = vip, count, duration_s
        self.record_deliveries, self.progress, self.stop = record_deliveries, progress, stop
        seed = s.produce_seed if s.produce_seed >= 0 else random.SystemRandom().randrange(2**31)
        self.rate = s.produce_rate
        self.generator = EventGenerator(
            seed,
            start_time=start_time,
            # unlimited: event time still needs a pace; 1000/s is a busy shop
            rate=self.rate or 1000.0,
            users=s.produce_users,
            vip_fraction=s.vip_user_fraction,
        )
        self.bad_rng = random.Random(f"bad-{seed}")
        self.bad_maker = BadRecordMaker(self.bad_rng, s.max_event_bytes, s.oversized_event_bytes)
        self.summary = ProduceSummary(
            topic=s.topic,
            bootstrap_servers=owner.bootstrap_servers,
            partitions=partitions,
            acks=owner.acks,
            idempotence=owner.idempotence,
            compression=s.produce_compression,
            keys=s.produce_keys,
            seed=seed,
            start_time=start_time.isoformat().replace("+00:00", "Z"),
            notes=list(owner.notes),
            deliveries=[] if record_deliveries else None,
        )
        self.failed_by_error: Counter[str] = Counter()
        self.bad_by_kind: Counter[str] = Counter()
        self.started = time.monotonic()
        self.last_progress = 0.0

    def execute(self) -> ProduceSummary:
        self._produce()
        self._flush()
        return self._finish()

    # -- deliveries ---------------------------------------------------------

    def _record_failure(self, err: KafkaError) -> None:
        self.summary.failed += 1
        self.failed_by_error[err.name()] += 1
        self.summary.error_messages.setdefault(err.name(), err.str())

    def _on_delivery(
        self,
        err: KafkaError | None,
        msg: Message,
        event_id: str | None = None,
        bad_kind: str | None = None,
    ) -> None:
        if err is not None:
            self._record_failure(err)
            self.owner.refusals.error_cb(err)  # e.g. TOPIC_AUTHORIZATION_FAILED: stop
            return
        self.summary.acknowledged += 1
        if self.summary.deliveries is not None:
            offset = msg.offset()  # None or negative when the broker did not say (acks=0)
            known = offset if offset is not None and offset >= 0 else None
            self.summary.deliveries.append(Delivery(event_id, bad_kind, msg.partition(), known))

    # -- sending ------------------------------------------------------------

    def _record(self) -> dict[str, Any]:
        """The next record's produce() arguments: a generated event, or a bad record."""
        s = self.settings
        event = self.generator.next_event()
        bad_kind = None
        headers = None
        if s.bad_fraction and self.bad_rng.random() < s.bad_fraction:
            bad_kind = self.bad_maker.random_kind()
            value = self.bad_maker.make(bad_kind, event)
            headers = [(BAD_KIND_HEADER, bad_kind.encode())]
            self.bad_by_kind[bad_kind] += 1
        else:
            value = encode_event(event)
        kwargs: dict[str, Any] = {"value": value, "headers": headers}
        if s.produce_keys != "none":
            kwargs["key"] = event["user_id"].encode()
        if self.vip is not None:
            kwargs["partition"] = self.vip.partition(kwargs["key"], event["is_vip"])
        if self.record_deliveries:
            event_id = None if bad_kind else event["event_id"]
            kwargs["on_delivery"] = partial(self._on_delivery, event_id=event_id, bad_kind=bad_kind)
        else:
            kwargs["on_delivery"] = self._on_delivery
        return kwargs

    def _send_one(self) -> None:
        kwargs = self._record()
        self.summary.sent += 1
        while True:
            try:
                self.producer.produce(self.settings.topic, **kwargs)
                return
            except BufferError:
                # the local queue is full: wait for deliveries to make room
                self.producer.poll(0.05)
            except KafkaException as exc:
                self._record_failure(exc.args[0])
                return

    def _report(self, flushing: bool) -> None:
        now = time.monotonic()
        if self.progress is None:
            return
        if now - self.last_progress >= _PROGRESS_EVERY_S or flushing:
            self.last_progress = now
            s = self.summary
            self.progress(
                Progress(s.sent, s.acknowledged, s.failed, now - self.started, self.count, flushing)
            )

    def _done(self, now: float) -> bool:
        """Whether to stop sending: count or duration reached, stop asked, or a fatal error."""
        if self.count is not None and self.summary.sent >= self.count:
            return True
        if self.duration_s is not None and now - self.started >= self.duration_s:
            return True
        if self.stop.stopping:
            self.summary.interrupted = True
            self.summary.stopped_by = self.stop.reason
            return True
        return self.owner._fatal is not None or self.owner.refusals.reason is not None

    def _produce(self) -> None:
        interval = 1.0 / self.rate if self.rate else 0.0
        next_at = self.started
        while True:
            now = time.monotonic()
            if self._done(now):
                return
            if self.rate:
                if now < next_at:
                    self.producer.poll(0)
                    self._report(False)
                    # at least _MIN_TICK_S: waking for each record of a high rate costs
                    # more CPU than sending it; what fell due meanwhile goes out together
                    time.sleep(min(max(next_at - now, _MIN_TICK_S), 0.05))
                    continue
                batch, next_at = catch_up(now, next_at, interval)
            else:
                batch = _MAX_BATCH
            if self.count is not None:
                batch = min(batch, self.count - self.summary.sent)
            for _ in range(batch):
                self._send_one()
            self.producer.poll(0)
            self._report(False)

    # -- the end ------------------------------------------------------------

    def _flush(self) -> None:
        producer = self.producer
        # Flush in short steps so a second Ctrl-C can end the wait.
        while len(producer) > 0 and not self.stop.abandoning:
            producer.flush(0.5)
            self._report(True)
        if len(producer) > 0:
            # Given up: purge, so each remaining record still gets its report
            # (_PURGE_QUEUE: never sent; _PURGE_INFLIGHT: sent, fate unknown).
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.flush(5)
            self.summary.notes.append(
                "the wait for the last deliveries was abandoned; records failed with "
                "_PURGE_INFLIGHT may or may not be in Kafka"
            )
        self._report(True)

    def _finish(self) -> ProduceSummary:
        summary, s = self.summary, self.settings
        summary.elapsed_s = time.monotonic() - self.started
        summary.failed_by_error = dict(self.failed_by_error)
        summary.bad_by_kind = dict(self.bad_by_kind)
        summary.client_errors = dict(self.owner._client_errors)
        fatal = self.owner._fatal
        if fatal is not None:
            summary.notes.append(f"the producer hit a fatal error and stopped: {fatal.str()}")
        if self.owner.refusals.reason is not None:
            summary.notes.append(f"Kafka refused the producer: {self.owner.refusals.reason}")
        timed_out = self.failed_by_error.get("_MSG_TIMED_OUT", 0)
        if timed_out:
            # librdkafka retries retriable broker errors until the delivery
            # timeout, so the broker's own code is not what the report carries
            summary.notes.append(
                f"{timed_out} records were not acknowledged within "
                f"{s.produce_delivery_timeout_ms} ms (CLICKFAN_PRODUCE_DELIVERY_TIMEOUT_MS): "
                "the brokers kept answering with retriable errors such as NOT_ENOUGH_REPLICAS "
                "(fewer in-sync replicas than min.insync.replicas) or were unreachable; "
                "check `clickfan status`"
            )
        if summary.pending:
            summary.notes.append(f"{summary.pending} records got no delivery report at all")
        return summary
