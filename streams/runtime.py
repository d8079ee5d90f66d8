"""What both workers share: the Faust App's configuration, the source topic, running it.

The workers run Faust's Worker directly (no Faust command line, no banner),
with clickfan's logging, and stop cleanly on Ctrl-C or SIGTERM: first the
sink flushes and commits what it holds (bounded by worker_stop_timeout_s),
then Faust stops. A second signal stops at once; whatever was not committed
is read again on the next start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import NoReturn

import faust
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from clickfan.errors import ClickfanError
from clickfan.settings import Settings
from clickfan.streams.pipeline import SinkPipeline

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
        stream_buffer_maxsize=2 * settings.worker_batch_records,
        producer_acks=-1,  # dead letters: acks=all
    )


def source_topic(app: faust.App, name: str) -> faust.TopicT:
    # acks=False: Faust never commits this topic; streams.pipeline does (see there)
    return app.topic(name, key_serializer="raw", value_serializer="raw", acks=False)


def check_topics(bootstrap_servers: str, *topics: str) -> None:
    """Fail with a clear message when Kafka is unreachable or a topic is missing."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    try:
        metadata = admin.list_topics(timeout=10)
    except KafkaException as exc:
        raise ClickfanError(
            f"cannot reach Kafka at {bootstrap_servers} ({exc.args[0].str()}); start the "
            "stack with `clickfan up` or pass --bootstrap-servers"
        ) from None
    missing = [t for t in topics if t not in metadata.topics]
    if missing:
        raise ClickfanError(
            f"topic(s) {', '.join(missing)} do not exist on {bootstrap_servers}; "
            "`clickfan up` creates the pipeline's topics, create others before starting a worker"
        )


def setup_logging(level: str) -> None:
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


class _Worker(faust.Worker):
    def __init__(self, app: faust.App, pipeline: SinkPipeline, stop_timeout_s: float) -> None:
        super().__init__(app, quiet=True, redirect_stdouts=False, override_logging=False)
        self.spinner = None  # Faust's startup spinner writes terminal codes to stdout
        self._pipeline = pipeline
        self._stop_timeout_s = stop_timeout_s
        self._draining = False

    def _on_sigint(self) -> None:
        self._graceful(signal.SIGINT)

    def _on_sigterm(self) -> None:
        self._graceful(signal.SIGTERM)

    def _graceful(self, sig: signal.Signals) -> None:
        if self._draining:  # asked twice: stop now
            self._pipeline.stop_now()
            self._schedule_shutdown(sig)
            return
        self._draining = True
        log.info("%s: flushing what the sink holds, then stopping", sig.name)
        asyncio.ensure_future(self._drain_then_stop(sig))

    async def _drain_then_stop(self, sig: signal.Signals) -> None:
        try:
            await asyncio.wait_for(self._pipeline.drain(), self._stop_timeout_s)
        except TimeoutError:
            log.warning(
                "could not flush within %gs (is the sink down?); stopping without it, the "
                "uncommitted records are read again on the next start",
                self._stop_timeout_s,
            )
        except Exception:
            log.exception("flush on stop failed; the uncommitted records are read again")
        self._pipeline.stop_now()
        self._schedule_shutdown(sig)


def run(app: faust.App, pipeline: SinkPipeline, settings: Settings) -> NoReturn:
    """Run until stopped; exits the process (Faust's Worker does)."""
    _Worker(app, pipeline, settings.worker_stop_timeout_s).execute_from_commandline()
