"""What both workers share: the Faust App, how one is built for a sink, and running it.

``build`` makes one worker for any sink: the App (its id is the consumer
group), the dead-letter queue, the SinkPipeline, the handler that takes
each fetch of the consumer whole (no Faust agent or stream: see
faust_compat.take_fetches), and the tasks the sink needs. The workers run
Faust's Worker directly (no Faust command line, no banner), with clickfan's
logging, and stop cleanly on Ctrl-C or SIGTERM: first the sink flushes and
commits what it holds (bounded by worker_stop_timeout_s), then Faust stops.
A second signal stops at once; whatever was not committed is read again on
the next start.

Loud, never silent: an exception that escapes the fetch handler, a batch's
write, a task or a rebalance handler (a bug, a sink's non-transient error,
a dead-letter topic that refuses records) is logged and stops the process
with exit code 1, so a supervisor restarts it; nothing past the last commit
was committed, so the restarted worker reads those records again. Faust on
its own would log such a death and keep the process alive, consuming
nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, ParamSpec

import faust
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import AdminClient

from clickfan import kafka_client
from clickfan.errors import ClickfanError
from clickfan.settings import Settings
from clickfan.sinks.base import Aborted, DeadLetterFn, Sink, SinkRecord
from clickfan.streams import configs, faust_compat
from clickfan.streams.deadletter import (
    DeadLetterLog,
    DeadLetterQueue,
    FencedWriter,
    transaction_timeout_s,
    transactional_id,
)
from clickfan.streams.pipeline import SinkPipeline
from clickfan.streams.positions import BrokerPositions

P = ParamSpec("P")

# Builds a worker's sink, given where its rejections go and its abort event.
SinkFactory = Callable[[DeadLetterFn, asyncio.Event], Sink]


@dataclass(frozen=True)
class Redrive:
    """A worker that reads the dead-letter topic back into ``group``'s sink.

    Records ``select`` declines are passed over as handled (their offsets committed);
    those refused again are dead-lettered again as ``group``'s, attempt count raised.
    """

    group: str
    select: Callable[[SinkRecord], bool]


# How long a worker starting up asks its group's coordinator again while it is loading or
# moving, before it says so and exits
GROUP_COORDINATOR_PATIENCE_S = 60.0

# After a fatal error, how long the orderly stop may take beyond the flush timeout
# before the process exits anyway (Faust's own stop can hang on a broken client).
_EXIT_GRACE_S = 30.0

log = logging.getLogger(__name__)


def make_app(settings: Settings, group: str, bootstrap_servers: str) -> faust.App:
    """A Faust App whose id is the consumer group, set up for at-least-once sinks."""
    datadir = settings.home / "workers" / group  # Faust wants one; no tables live there
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        group,
        broker=[f"kafka://{server}" for server in bootstrap_servers.split(",")],
        autodiscover=False,
        datadir=str(datadir),
        web_enabled=False,
        # no __assignor-__leader topic, and no topics created behind our back
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.worker_session_timeout_s,
        # revocation must not wait for records the sink holds: it aborts them instead
        stream_wait_empty=False,
        # SASL and TLS from the worker's client config (kafka_client.activate); None: plaintext
        broker_credentials=kafka_client.active().faust_credentials(),
    )


def source_topic(app: faust.App, name: str) -> faust.TopicT:
    # acks=False: Faust never commits this topic; streams.pipeline does (see there)
    return app.topic(name, key_serializer="raw", value_serializer="raw", acks=False)


def check_topics(bootstrap_servers: str, *topics: str, group: str | None = None) -> None:
    """Fail with one clear line when Kafka is unreachable or refuses this worker, or a
    topic is missing: before Faust starts, whose client would retry a refusal forever.

    Refusals: credentials (authentication), TLS (an unknown CA, an expired
    certificate), a plaintext client on a TLS port, a topic or ``group`` the ACLs
    do not grant (a worker started with another group's id).
    """
    identity = kafka_client.active()
    watch = kafka_client.RefusalWatch(identity.security_protocol)
    admin = AdminClient(
        kafka_client.confluent(bootstrap_servers, {"error_cb": watch.error_cb, "logger": watch.log})
    )
    who = f"user {identity.username!r}" if identity.username else "this worker"

    def refused(reason: str) -> ClickfanError:
        return ClickfanError(f"Kafka refused {who}: {reason}")

    try:
        metadata = admin.list_topics(timeout=10)
    except KafkaException as exc:
        admin.poll(0.5)  # serves the error and log callbacks
        reason = watch.reason or watch.hint
        if reason is not None:
            raise refused(reason) from None
        raise ClickfanError(
            f"cannot reach Kafka at {bootstrap_servers} ({exc.args[0].str()}); start the "
            "stack with `clickfan up` or pass --bootstrap-servers"
        ) from None
    missing = []
    for topic in topics:
        if topic in metadata.topics:
            continue
        # asked by name: a topic the ACLs hide answers TOPIC_AUTHORIZATION_FAILED
        error = admin.list_topics(topic, timeout=10).topics[topic].error
        reason = kafka_client.refusal(error.name(), error.str()) if error is not None else None
        if reason is not None:
            raise refused(f"topic {topic}: {reason}")
        missing.append(topic)
    if missing:
        raise ClickfanError(
            f"topic(s) {', '.join(missing)} do not exist on {bootstrap_servers}; "
            "`clickfan up` creates the pipeline's topics, create others before starting a worker"
        )
    if group is not None:
        request = [ConsumerGroupTopicPartitions(group)]
        # a coordinator still loading or just moved (a broker restarted) is asked again
        deadline = time.monotonic() + GROUP_COORDINATOR_PATIENCE_S
        while True:
            try:
                admin.list_consumer_group_offsets(request, request_timeout=30)[group].result()
                return
            except KafkaException as exc:
                error = exc.args[0]
            reason = kafka_client.refusal(error.name(), error.str())
            if reason is not None:
                raise refused(f"consumer group {group}: {reason}") from None
            if (
                error.name() not in kafka_client.COORDINATOR_NOT_READY
                or time.monotonic() > deadline
            ):
                raise ClickfanError(
                    f"cannot read the committed offsets of group {group}: {error.str()}"
                ) from None
            time.sleep(1.0)


class _OncePerInterval(logging.Filter):
    """Passes each distinct message at most once per interval."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        message = record.getMessage()
        if now - self._last.get(message, -self._interval_s) < self._interval_s:
            return False
        self._last[message] = now
        return True


def setup_logging(level: str, repeat_interval_s: float) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level.lower() != "debug":
        # Faust, mode and aiokafka narrate every rebalance at INFO, the ES and HDFS
        # clients every request
        for name in ("faust", "mode", "aiokafka", "elastic_transport", "hdfs"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # aiokafka logs an ERROR on every metadata refresh (10 a second) while a topic
        # it sends to is missing; the dead-letter queue's own line says it once per
        # interval already
        logging.getLogger("aiokafka.cluster").addFilter(_OncePerInterval(repeat_interval_s))


class Worker:
    """One worker process: the App, its pipeline, and how it stops (cleanly or loudly)."""

    def __init__(
        self,
        app: faust.App,
        pipeline: SinkPipeline,
        group: str,
        stop_timeout_s: float,
        dead_letters: DeadLetterQueue | None = None,
    ) -> None:
        self.app = app
        self.pipeline = pipeline
        self.dead_letters = dead_letters
        self.group = group
        self.failure: BaseException | None = None
        self._stop_timeout_s = stop_timeout_s
        self._draining = False
        self._faust: faust_compat.Worker | None = None
        self.exit_deadline: threading.Timer | None = None  # set by fail()

    def guard(self, where: str, fn: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
        """``fn`` whose unexpected errors stop the process (exit 1) instead of dying alone."""

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                await fn(*args, **kwargs)
            except Exception as exc:  # CancelledError is not one: Faust's own stop passes
                self.fail(where, exc)

        return guarded

    def fail(self, where: str, exc: BaseException) -> None:
        """Log ``exc`` and stop with exit code 1; nothing more is committed."""
        if self.failure is not None:
            log.error("%s also failed: %s: %s", where, type(exc).__name__, exc)
            return
        self.failure = exc
        # a message meant for the user needs no traceback; anything else is a bug
        trace = None if isinstance(exc, ClickfanError) else exc
        log.critical(
            "%s failed: %s: %s. Stopping with exit code 1; records after the last commit "
            "are read again when the worker is started again",
            where,
            type(exc).__name__,
            exc,
            exc_info=trace,
        )
        self.pipeline.stop_now()
        self.exit_deadline = threading.Timer(
            self._stop_timeout_s + _EXIT_GRACE_S, os._exit, args=(1,)
        )
        self.exit_deadline.daemon = True
        self.exit_deadline.start()
        if self._faust is not None:
            self._faust.shut_down(signal.SIGTERM)

    def stop(self) -> None:
        """Stop as on SIGTERM: flush and commit what the sink holds, then stop."""
        self._on_stop_signal(signal.SIGTERM)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        assert self._faust is not None
        if self._draining:  # asked twice: stop now
            self.pipeline.stop_now()
            self._faust.shut_down(sig)
            return
        self._draining = True
        log.info("%s: flushing what the sink holds, then stopping", sig.name)
        asyncio.ensure_future(self._drain_then_stop(sig))

    async def _drain_then_stop(self, sig: signal.Signals) -> None:
        assert self._faust is not None
        try:
            await asyncio.wait_for(self.pipeline.drain(), self._stop_timeout_s)
        except TimeoutError:
            log.warning(
                "could not flush within %gs (is the sink down?); stopping without it, the "
                "uncommitted records are read again on the next start",
                self._stop_timeout_s,
            )
        except Exception as exc:
            self.fail("flushing on stop", exc)
            return
        self.pipeline.stop_now()
        self._faust.shut_down(sig)

    def run(self) -> NoReturn:
        """Run until stopped; exits the process, with code 1 after a failure."""
        self._faust = faust_compat.Worker(self.app, self._on_stop_signal)
        try:
            self._faust.execute_from_commandline()
        except SystemExit:
            if self.failure is None:
                raise
        failure = self.failure
        why = str(failure) if isinstance(failure, ClickfanError) else repr(failure)
        raise ClickfanError(f"worker of group {self.group} stopped: {why}", exit_code=1)


def build(
    settings: Settings,
    bootstrap_servers: str,
    group: str,
    make_sink: SinkFactory,
    logger: logging.Logger,
    tick_s: float | None = None,
    redrive: Redrive | None = None,
) -> Worker:
    """A worker of ``group`` that reads settings.topic into the sink ``make_sink`` builds.

    ``tick_s``: how often to flush what became due by time alone (e.g. a roll's
    age) when no records arrive; None for a sink that flushes per batch.
    ``redrive``: read settings.dlq_topic instead, for the group it names.
    """
    faust_compat.read_committed()  # the DLQ is written in transactions (streams.deadletter)
    app = make_app(settings, group, bootstrap_servers)
    abort = asyncio.Event()
    topic = settings.topic if redrive is None else settings.dlq_topic
    dlq_group = group if redrive is None else redrive.group
    timeout_s = settings.sink_request_timeout_s
    written = DeadLetterLog(
        bootstrap_servers,
        settings.dlq_topic,
        dlq_group,
        topic,
        transaction_timeout_s(timeout_s),
        redriving=redrive is not None,
    )

    def new_writer(partition: int) -> FencedWriter:
        tid = transactional_id(dlq_group, topic, partition)
        return FencedWriter(bootstrap_servers, settings.dlq_topic, tid, timeout_s)

    dlq = DeadLetterQueue(
        settings.dlq_topic,
        dlq_group,
        configs.retry_policy(settings),
        abort,
        written,
        new_writer,
        redriving=redrive is not None,
    )
    sink = make_sink(dlq.send, abort)
    positions = BrokerPositions(bootstrap_servers, group, topic)

    def fail(where: str, exc: BaseException) -> None:
        worker.fail(where, exc)

    pipeline = SinkPipeline(
        app,
        topic,
        sink,
        dlq,
        abort,
        settings.max_event_bytes,
        logger,
        positions,
        select=None if redrive is None else redrive.select,
        fail=fail,
    )
    worker = Worker(app, pipeline, group, settings.worker_stop_timeout_s, dlq)
    guard = worker.guard

    async def on_fetch(messages: list[faust.types.Message]) -> None:
        size = settings.worker_batch_records
        for i in range(0, len(messages), size):
            # returns once the batch before is written: this one is written meanwhile
            await pipeline.take(messages[i : i + size])

    # one fetch at a time per process, in offset order per partition (Faust's per-record
    # stream and agent are not used: streams.faust_compat.take_fetches)
    faust_compat.take_fetches(app, source_topic(app, topic), guard("the consumer", on_fetch))

    async def start_sink() -> None:
        try:
            await sink.start()
        except Aborted:
            pass  # a rebalance came first; the first flush does it

    app.task(guard("starting the sink", start_sink))

    if tick_s is not None:
        # a loop rather than app.timer: a flush may take longer than the interval
        async def tick() -> None:
            while True:
                await asyncio.sleep(tick_s)
                await pipeline.tick()

        app.task(guard("the periodic flush", tick))

    async def revoked(sender: faust.App, revoked: set[faust.types.TP], **_: object) -> None:
        await pipeline.on_revoked(revoked)

    async def assigned(sender: faust.App, assigned: set[faust.types.TP], **_: object) -> None:
        await pipeline.on_assigned(assigned)

    async def stop_sink(sender: faust.App, **_: object) -> None:
        pipeline.cancel_writes()
        await sink.stop()
        await dlq.close()

    async def stats() -> None:
        pipeline.log_stats()

    app.on_partitions_revoked.connect(guard("handling a revocation", revoked))
    app.on_partitions_assigned.connect(guard("handling an assignment", assigned))
    app.on_before_shutdown.connect(guard("stopping the sink", stop_sink))
    app.timer(settings.worker_stats_interval_s)(guard("the progress line", stats))
    return worker
