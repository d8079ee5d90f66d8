"""One click stream into five stores: how each one writes, reads, forgets and rewinds.

Each store is a :class:`Store` with the same few operations, so the `brokers`
experiment runs the same steps on all of them:

- a RabbitMQ classic queue and a Redis list: message brokers, a message is gone
  once a consumer took it (acknowledged it, or popped it);
- a Redis stream and a RabbitMQ stream: append-only logs inside those brokers,
  kept until trimmed (Redis) or until their retention (RabbitMQ);
- a Kafka topic: the event broker of the seed notes.

Every record carries the click event's own ``event_id``; a consumer returns the
ids it got, so the experiment counts sets, not messages.

``python -m clickfan.experiments.brokers_io crash STORE ...`` is the consumer that
crashes: it acknowledges half of the records, takes a few more without
acknowledging them, prints what it did as one JSON line and waits to be killed
(kill -9 by the experiment).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import click
import pika
import redis
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from clickfan.experiments.kafka_io import consumer, producer

PREFETCH = 500
IDLE_S = 2.0  # a reader that got nothing for this long has read everything there is
BATCH = 500


@dataclass(frozen=True)
class Endpoints:
    host: str
    rabbitmq_port: int
    redis_port: int
    bootstrap: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


@dataclass
class Crash:
    """What the crashing consumer did before it was killed."""

    acknowledged: list[str]
    in_flight: list[str]  # taken but not acknowledged
    position: str  # where it would resume if it remembered (store-specific)


def _event_id(payload: bytes) -> str:
    return json.loads(payload)["event_id"]


class Store:
    kind: str = ""  # "message broker" | "log"
    label: str = ""

    def __init__(self, ep: Endpoints, name: str) -> None:
        self.ep = ep
        self.name = name
        self.first_got = self.last_got = 0.0  # monotonic times of the last read's records

    def _got(self, ids: list[str]) -> list[str]:
        """Timestamps a read's records (throughput out leaves the idle wait aside)."""
        if ids:
            now = time.monotonic()
            self.first_got = self.first_got or now
            self.last_got = now
        return ids

    def read_span_s(self) -> float:
        span, self.first_got, self.last_got = self.last_got - self.first_got, 0.0, 0.0
        return span

    def setup(self) -> None:
        raise NotImplementedError

    def publish(self, payloads: list[bytes]) -> None:
        """Every payload written and held by the broker when this returns."""
        raise NotImplementedError

    def consume(self, reader: str, *, from_start: bool = True) -> list[str]:
        """A consumer named ``reader`` reads (and acknowledges) whatever it is given."""
        raise NotImplementedError

    def crash(self, reader: str, acknowledge: int, in_flight: int) -> Crash:
        raise NotImplementedError

    def resume(self, reader: str, crash: Crash) -> list[str]:
        """The crashed consumer, restarted: what it gets from where it failed."""
        return self.consume(reader)

    def reread(self, crash: Crash) -> list[str] | None:
        """The records acknowledged before the crash, asked for again (None: no way)."""
        return None

    def held(self) -> int:
        """Records the store still holds now."""
        raise NotImplementedError

    def delete(self) -> None:
        raise NotImplementedError


# ------------------------------------------------------------------- RabbitMQ


class RabbitQueue(Store):
    kind = "message broker"
    label = "RabbitMQ queue"
    arguments: dict[str, object] = {"x-queue-type": "classic"}

    def _channel(self) -> tuple[pika.BlockingConnection, object]:
        params = pika.ConnectionParameters(
            self.ep.host, self.ep.rabbitmq_port, heartbeat=0, blocked_connection_timeout=60
        )
        conn = pika.BlockingConnection(params)
        return conn, conn.channel()

    def setup(self) -> None:
        conn, ch = self._channel()
        ch.queue_declare(self.name, durable=True, arguments=self.arguments)
        conn.close()

    def publish(self, payloads: list[bytes]) -> None:
        conn, ch = self._channel()
        ch.confirm_delivery()  # basic_publish returns once the broker confirmed it
        persistent = pika.BasicProperties(delivery_mode=2)
        for body in payloads:
            ch.basic_publish("", self.name, body, persistent, mandatory=True)
        conn.close()

    def _consume_args(self, from_start: bool) -> dict[str, object] | None:
        return None

    def consume(self, reader: str, *, from_start: bool = True) -> list[str]:
        conn, ch = self._channel()
        ch.basic_qos(prefetch_count=PREFETCH)
        got: list[str] = []
        last = acked = 0
        for method, _props, body in ch.consume(
            self.name, arguments=self._consume_args(from_start), inactivity_timeout=IDLE_S
        ):
            if method is None:
                break
            got += self._got([_event_id(body)])
            last = method.delivery_tag
            if len(got) % 100 == 0:
                ch.basic_ack(last, multiple=True)
                acked = last
        if last > acked:
            ch.basic_ack(last, multiple=True)
        conn.close()
        return got

    def crash(self, reader: str, acknowledge: int, in_flight: int) -> Crash:
        conn, ch = self._channel()
        ch.basic_qos(prefetch_count=PREFETCH)
        acked: list[str] = []
        flight: list[str] = []
        position = ""
        for method, props, body in ch.consume(self.name, arguments=self._consume_args(True)):
            if len(acked) < acknowledge:
                acked.append(_event_id(body))
                ch.basic_ack(method.delivery_tag)  # processed: acknowledged one by one
                position = str((props.headers or {}).get("x-stream-offset", ""))
            else:
                flight.append(_event_id(body))
                if len(flight) == in_flight:
                    break
        return Crash(acked, flight, position)

    def held(self) -> int:
        conn, ch = self._channel()
        count = ch.queue_declare(self.name, passive=True).method.message_count
        conn.close()
        return count

    def delete(self) -> None:
        conn, ch = self._channel()
        ch.queue_delete(self.name)
        conn.close()


class RabbitStream(RabbitQueue):
    """A RabbitMQ stream (3.9+), read over AMQP 0.9.1 with x-stream-offset."""

    kind = "log"
    label = "RabbitMQ stream"
    arguments = {"x-queue-type": "stream"}

    def _consume_args(self, from_start: bool) -> dict[str, object] | None:
        return {"x-stream-offset": "first" if from_start else "next"}

    def resume(self, reader: str, crash: Crash) -> list[str]:
        # Over AMQP 0.9.1 the broker keeps no position for a stream consumer: the
        # consumer stores its offset itself (the stream protocol can track it server-side)
        return self._read(int(crash.position) + 1, None)

    def reread(self, crash: Crash) -> list[str] | None:
        return self._read("first", int(crash.position))

    def _read(self, start: object, last: int | None) -> list[str]:
        conn, ch = self._channel()
        ch.basic_qos(prefetch_count=PREFETCH)
        got: list[str] = []
        stream = ch.consume(
            self.name, arguments={"x-stream-offset": start}, inactivity_timeout=IDLE_S
        )
        for method, props, body in stream:
            if method is None:
                break
            ch.basic_ack(method.delivery_tag)
            # read to the end: pika's cancel would nack what is buffered, which a stream
            # refuses (and closes the connection)
            if last is None or int((props.headers or {})["x-stream-offset"]) <= last:
                got.append(_event_id(body))
        conn.close()
        return got

    def held(self) -> int:
        return len(self._read("first", None))


# ---------------------------------------------------------------------- Redis


class _RedisStore(Store):
    def _client(self) -> redis.Redis:
        return redis.Redis(self.ep.host, self.ep.redis_port)

    def setup(self) -> None:
        self._client().delete(self.name)

    def delete(self) -> None:
        self._client().delete(self.name)


class RedisList(_RedisStore):
    """The queue pattern: RPUSH by the producer, LPOP by consumers."""

    kind = "message broker"
    label = "Redis list"

    def publish(self, payloads: list[bytes]) -> None:
        r = self._client()
        for i in range(0, len(payloads), BATCH):
            r.rpush(self.name, *payloads[i : i + BATCH])

    def consume(self, reader: str, *, from_start: bool = True) -> list[str]:
        r = self._client()
        got: list[str] = []
        while batch := r.lpop(self.name, BATCH):
            got += self._got([_event_id(b) for b in batch])
        return got

    def crash(self, reader: str, acknowledge: int, in_flight: int) -> Crash:
        r = self._client()
        # popping is the acknowledgement: a popped message is the consumer's alone
        acked = [_event_id(b) for b in r.lpop(self.name, acknowledge) or []]
        flight = [_event_id(b) for b in r.lpop(self.name, in_flight) or []]
        return Crash(acked, flight, "")

    def held(self) -> int:
        return int(self._client().llen(self.name))


class RedisStream(_RedisStore):
    """XADD by the producer; consumer groups read with XREADGROUP and XACK."""

    kind = "log"
    label = "Redis stream"

    def publish(self, payloads: list[bytes]) -> None:
        r = self._client()
        for i in range(0, len(payloads), BATCH):
            pipe = r.pipeline(transaction=False)
            for body in payloads[i : i + BATCH]:
                pipe.xadd(self.name, {"v": body})
            pipe.execute()

    def _group(self, r: redis.Redis, group: str, from_start: bool) -> None:
        try:
            r.xgroup_create(self.name, group, id="0" if from_start else "$")
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _read_group(self, r: redis.Redis, group: str, start: str, count: int) -> list:
        reply = r.xreadgroup(group, "consumer-1", {self.name: start}, count=count)
        return reply[0][1] if reply else []

    def consume(self, reader: str, *, from_start: bool = True) -> list[str]:
        r = self._client()
        self._group(r, reader, from_start)
        got: list[str] = []
        # first what this consumer took earlier and never acknowledged, then new entries
        for start in ("0", ">"):
            while entries := self._read_group(r, reader, start, BATCH):
                entries = [(i, f) for i, f in entries if f]  # pending, since trimmed: no fields
                got += self._got([_event_id(f[b"v"]) for _, f in entries])
                if entries:
                    r.xack(self.name, reader, *[i for i, _ in entries])
                if start == "0" and not entries:
                    break
        return got

    def crash(self, reader: str, acknowledge: int, in_flight: int) -> Crash:
        r = self._client()
        self._group(r, reader, True)
        entries = self._read_group(r, reader, ">", acknowledge)
        r.xack(self.name, reader, *[i for i, _ in entries])
        flight = self._read_group(r, reader, ">", in_flight)
        return Crash(
            [_event_id(f[b"v"]) for _, f in entries],
            [_event_id(f[b"v"]) for _, f in flight],
            entries[-1][0].decode(),
        )

    def reread(self, crash: Crash) -> list[str] | None:
        entries = self._client().xrange(self.name, "-", crash.position)
        return [_event_id(f[b"v"]) for _, f in entries]

    def held(self) -> int:
        return int(self._client().xlen(self.name))


# ---------------------------------------------------------------------- Kafka


class KafkaTopic(Store):
    kind = "log"
    label = "Kafka topic"
    partitions = 3

    def setup(self) -> None:  # the experiment creates the topic (Context.create_topic)
        return None

    def publish(self, payloads: list[bytes]) -> None:
        p = producer(self.ep.bootstrap, acks="all", **{"enable.idempotence": True})
        failed: list[str] = []
        for body in payloads:
            while True:
                try:
                    p.produce(
                        self.name,
                        body,
                        on_delivery=lambda err, _m: failed.append(err.str()) if err else None,
                    )
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        if p.flush(60) or failed:
            raise KafkaException(f"{len(failed)} records not acknowledged: {failed[:1]}")

    def consume(self, reader: str, *, from_start: bool = True) -> list[str]:
        reset = "earliest" if from_start else "latest"
        c = consumer(self.ep.bootstrap, reader, **{"auto.offset.reset": reset})
        c.subscribe([self.name])
        got: list[str] = []
        deadline = time.monotonic() + 60  # to join the group and get partitions
        idle_since = None
        try:
            while idle_since is None or time.monotonic() - idle_since < IDLE_S:
                msgs = [m for m in c.consume(BATCH, 0.3) if not m.error()]
                if msgs:
                    got += self._got([_event_id(m.value()) for m in msgs])
                    idle_since = time.monotonic()
                elif idle_since is None and c.assignment():
                    idle_since = time.monotonic()  # assigned: from now on, idle counts
                elif idle_since is None and time.monotonic() > deadline:
                    raise KafkaException(f"{reader} got no partitions of {self.name} in 60 s")
            if got:
                c.commit(asynchronous=False)
        finally:
            c.close()
        return got

    def crash(self, reader: str, acknowledge: int, in_flight: int) -> Crash:
        c = consumer(self.ep.bootstrap, reader, **{"auto.offset.reset": "earliest"})
        c.subscribe([self.name])
        acked: list[str] = []
        flight: list[str] = []
        while len(acked) < acknowledge:
            for m in c.consume(1, 1.0):
                if not m.error():
                    acked.append(_event_id(m.value()))
        c.commit(asynchronous=False)  # the consumed positions: exactly the records above
        position = json.dumps(
            {tp.partition: tp.offset for tp in c.committed(c.assignment(), timeout=10)}
        )
        while len(flight) < in_flight:
            for m in c.consume(1, 1.0):
                if not m.error():
                    flight.append(_event_id(m.value()))
        return Crash(acked, flight, position)

    def reread(self, crash: Crash) -> list[str] | None:
        # A plain reader from the log start up to the crashed group's committed offsets
        until = {int(p): o for p, o in json.loads(crash.position).items()}
        c = consumer(self.ep.bootstrap, "clickfan-experiment-reader")
        c.assign([TopicPartition(self.name, p, OFFSET_BEGINNING) for p in until])
        got: list[str] = []
        pending = {p for p, o in until.items() if o > 0}
        deadline = time.monotonic() + 60
        try:
            while pending and time.monotonic() < deadline:
                for m in c.consume(BATCH, 0.3):
                    if m.error() or m.offset() >= until[m.partition()]:
                        continue
                    got.append(_event_id(m.value()))
                    if m.offset() + 1 >= until[m.partition()]:
                        pending.discard(m.partition())
        finally:
            c.close()
        return got

    def held(self) -> int:
        c = consumer(self.ep.bootstrap, "clickfan-experiment-reader")
        try:
            total = 0
            for p in range(self.partitions):
                low, high = c.get_watermark_offsets(TopicPartition(self.name, p), timeout=10)
                total += high - low
            return total
        finally:
            c.close()

    def delete(self) -> None:  # the experiment's clean-up deletes the topic
        return None


STORES: dict[str, type[Store]] = {
    "rabbitmq-queue": RabbitQueue,
    "redis-list": RedisList,
    "redis-stream": RedisStream,
    "rabbitmq-stream": RabbitStream,
    "kafka": KafkaTopic,
}


@click.group()
def main() -> None:
    """The experiment's helper processes."""


@main.command("crash")
@click.argument("store", type=click.Choice(sorted(STORES)))
@click.argument("name")
@click.argument("reader")
@click.option("--endpoints", required=True, help="JSON of Endpoints.")
@click.option("--acknowledge", type=int, required=True)
@click.option("--in-flight", type=int, required=True)
def crash(
    store: str, name: str, reader: str, endpoints: str, acknowledge: int, in_flight: int
) -> None:
    """Acknowledge ACKNOWLEDGE records, take IN_FLIGHT more, report, wait to be killed."""
    ep = Endpoints(**json.loads(endpoints))
    done = STORES[store](ep, name).crash(reader, acknowledge, in_flight)
    sys.stdout.write(json.dumps(done.__dict__) + "\n")
    sys.stdout.flush()
    time.sleep(600)  # holding its connection: the kill -9 is the crash


if __name__ == "__main__":
    main()
