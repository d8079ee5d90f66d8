"""The batch side: each question run by Apache Spark (PyPI's pyspark, local mode) over the archive.

Spark reads ``hdfs://HOST:RPC_PORT/<root>`` directly: the JSON Lines files
with an explicit schema derived from the event contract (no schema inference,
no surprises from one odd line), and Parquet files where the archiver wrote
them, unioned by column name. Partition discovery turns ``dt=``/``hour=``
folders into columns (used to skip hours outside the time range), and Spark
itself skips ``_tmp`` and ``_committed`` (names starting with ``_`` are hidden
to Hadoop's readers).

One :class:`SparkEngine` is one JVM: start-up costs seconds on two busy cores,
so callers keep one and ask it every question. The JVM's own output goes to a
log file; the console gets one line when it starts (or one line why not).
:meth:`SparkEngine.stop` ends the JVM too, not only the session: a process that
goes on (a test run, an experiment) does not keep an idle 512 MB JVM.

The events of one window are read from the archive once (listed, parsed,
deduplicated) and kept, in memory then on disk, for every question asked about
that window while the archive holds the same files (see :meth:`SparkEngine.events`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from clickfan.analysis.questions import (
    FUNNEL_STEPS,
    MAX_INDEXED_URL,
    Answer,
    EngineDown,
    Question,
    TimeRange,
    finish,
)
from clickfan.events import FIELDS
from clickfan.settings import Settings

DEFAULT_MASTER = "local[2]"
DEFAULT_DRIVER_MEMORY = "512m"
# Spark refuses a driver heap below 1.5 x its 300 MB reserve
MIN_DRIVER_BYTES = 450 * 1024 * 1024
JVM_OVERHEAD_BYTES = 200 * 1024 * 1024  # metaspace, threads, netty buffers beyond the heap
# what the questions read of an event (``ms``: its time in epoch milliseconds)
QUESTION_COLUMNS = ("session_id", "event_type", "page_url", "referrer", "country", "ms")
JVM_EXIT_S = 30.0  # for the JVM to exit once its stdin closed, before it is killed


def contract_schema() -> Any:
    """The Spark schema of an archived JSON line: one column per field of the contract.

    ``event_time`` stays the contract's RFC 3339 text and is parsed into a UTC
    timestamp by Spark (offsets such as +09:00 included).
    """
    from pyspark.sql.types import BooleanType, LongType, StringType, StructField, StructType

    types = {str: StringType(), int: LongType(), bool: BooleanType()}
    return StructType([StructField(f.name, types[f.type], nullable=True) for f in FIELDS])


def parse_memory(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    value = text.strip().lower()
    try:
        if value[-1:] in units:
            return int(value[:-1]) * units[value[-1]]
        return int(value)
    except ValueError:
        raise EngineDown(f"Spark memory {text!r}: expected a size such as 512m or 1g") from None


def _java(settings: Settings) -> str | None:
    home = settings.java_home or os.environ.get("JAVA_HOME", "")
    if home and (Path(home) / "bin" / "java").exists():
        return home
    found = shutil.which("java")
    return str(Path(found).resolve().parent.parent) if found else None


def namenode_reachable(settings: Settings, timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((settings.host, settings.namenode_rpc_port), timeout_s):
            return True
    except OSError:
        return False


class SparkEngine:
    """A local Spark session over the HDFS archive of ``hdfs_root``."""

    name = "spark"

    def __init__(
        self,
        settings: Settings,
        hdfs_root: str | None = None,
        master: str = DEFAULT_MASTER,
        driver_memory: str = DEFAULT_DRIVER_MEMORY,
        log_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.root = (hdfs_root or settings.hdfs_root).rstrip("/") or "/"
        self.master = master
        self.driver_memory = driver_memory
        self.log_file = log_file or settings.home / "logs" / "spark-analyze.log"
        self.spark: Any = None
        self.startup_s: float | None = None
        self.jvm_pid: int | None = None
        self._gateway: Any = None
        self.reads = 0  # how often the archive was read into a new DataFrame
        # the last window's events: (url, window, the archive's files, DataFrame or None)
        self._kept: tuple[str, TimeRange, str, Any] | None = None

    @property
    def url(self) -> str:
        s = self.settings
        return f"hdfs://{s.host}:{s.namenode_rpc_port}{self.root}"

    # ---------------------------------------------------------------- start, stop
    def start(self, say: Any = None) -> None:
        """Start the JVM (once); EngineDown with one line when it cannot."""
        if self.spark is not None:
            return
        say = say or (lambda text: print(text, file=sys.stderr))
        wanted = parse_memory(self.driver_memory)
        if wanted < MIN_DRIVER_BYTES:
            raise EngineDown(
                f"Spark cannot start: driver memory {self.driver_memory} is below the "
                f"{MIN_DRIVER_BYTES >> 20}m Spark needs (--spark-memory)"
            )
        free = psutil.virtual_memory().available
        if free < wanted + JVM_OVERHEAD_BYTES:
            raise EngineDown(
                f"Spark cannot start: {free >> 20} MiB of memory available, its driver needs "
                f"about {(wanted + JVM_OVERHEAD_BYTES) >> 20} MiB "
                f"(--spark-memory {self.driver_memory})"
            )
        java_home = _java(self.settings)
        if java_home is None:
            raise EngineDown(
                "Spark cannot start: no Java found (set JAVA_HOME or CLICKFAN_JAVA_HOME, "
                "or put Java 17+ on PATH)"
            )
        say(f"starting Spark ({self.master}, driver {self.driver_memory}) ...")
        began = time.monotonic()
        self.spark = self._launch(java_home)
        self.startup_s = time.monotonic() - began
        say(f"Spark ready in {self.startup_s:.1f} s (its log: {self.log_file})")

    def _launch(self, java_home: str) -> Any:
        from py4j.protocol import Py4JError
        from pyspark import SparkConf, SparkContext
        from pyspark.errors import PySparkException
        from pyspark.java_gateway import launch_gateway
        from pyspark.sql import SparkSession

        os.environ["JAVA_HOME"] = java_home
        # bind to loopback (and say nothing about the machine's name resolving to it)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        conf = (
            SparkConf()
            .setMaster(self.master)
            .setAppName("clickfan-analyze")
            .set("spark.driver.memory", self.driver_memory)
            .set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.sql.session.timeZone", "UTC")
            .set("spark.sql.shuffle.partitions", "4")  # a few thousand rows, two cores
            # a NameNode that went away fails the query in seconds, not after minutes of retries
            .set("spark.hadoop.ipc.client.connect.max.retries", "2")
            .set("spark.hadoop.ipc.client.connect.max.retries.on.timeouts", "2")
            .set("spark.hadoop.ipc.client.connect.timeout", "5000")
            .set("spark.hadoop.dfs.client.use.datanode.hostname", "false")
        )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} clickfan analyze\n".encode())
            log.flush()
            try:
                gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
                self._gateway = gateway
                self.jvm_pid = gateway.proc.pid
                context = SparkContext(conf=conf, gateway=gateway)
            except (PySparkException, Py4JError, OSError) as exc:
                self._end_jvm()
                raise EngineDown(f"Spark cannot start: {self._why(exc)}") from None
        context.setLogLevel("WARN")
        return SparkSession(context)

    def _why(self, exc: Exception) -> str:
        """One line: the JVM's own reason when its log has one."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-80:]
        except OSError:
            lines = []
        for line in lines:
            for marker in ("Exception:", "Error:", "error:"):
                if marker in line and not line.lstrip().startswith("at "):
                    return f"{line.strip()[:300]} (log: {self.log_file})"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{first[:300]} (log: {self.log_file})"

    def stop(self) -> None:
        """Drop the kept events, stop the session and end its JVM."""
        from py4j.protocol import Py4JError

        try:
            if self.spark is not None:
                self._forget()
                self.spark.stop()
        except (Py4JError, OSError):
            pass  # the JVM died already: nothing left to stop but the process
        finally:
            self.spark = None
            self._kept = None
            self._end_jvm()

    def _end_jvm(self) -> None:
        """End the gateway's JVM, which pyspark leaves running until Python exits."""
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        gateway, self._gateway = self._gateway, None
        if gateway is None:
            return
        gateway.shutdown()
        with SparkContext._lock:
            if SparkContext._gateway is gateway:
                # a later start() in this process launches a new JVM instead of using this
                # one; and a JVM that died under its session (whose stop() then failed
                # half-way) leaves no context or session behind either
                SparkContext._gateway = None
                SparkContext._jvm = None
                SparkContext._active_spark_context = None
                SparkSession._instantiatedSession = None
                SparkSession._activeSession = None
        proc = gateway.proc
        proc.stdin.close()  # Spark's gateway server exits when its stdin ends
        try:
            proc.wait(timeout=JVM_EXIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- the data
    def _listing(self) -> tuple[dict[str, bool], str]:
        """Which formats the archive holds (outside folders starting with '_'), and the
        names of all its files as one text."""
        jvm = self.spark.sparkContext._jvm
        hadoop_conf = self.spark.sparkContext._jsc.hadoopConfiguration()
        root = jvm.org.apache.hadoop.fs.Path(self.url)
        fs = root.getFileSystem(hadoop_conf)
        if not fs.exists(root):
            raise EngineDown(f"HDFS has no archive at {self.url}")
        found, names = {}, []
        for suffix in ("jsonl", "parquet"):
            glob = jvm.org.apache.hadoop.fs.Path(f"{self.url}/dt=*/hour=*/*.{suffix}")
            statuses = fs.globStatus(glob)
            found[suffix] = statuses is not None and len(statuses) > 0
            if found[suffix]:
                # one call into the JVM for all names, not one per file (commons-lang3 comes
                # with Spark; py4j finds no java.util.Arrays method for a Path[])
                paths = jvm.org.apache.hadoop.fs.FileUtil.stat2Paths(statuses)
                names.append(jvm.org.apache.commons.lang3.ArrayUtils.toString(paths))
        return found, "\n".join(names)

    def events(self, window: TimeRange) -> Any:
        """The archive's events in ``window`` as one DataFrame of QUESTION_COLUMNS
        (``ms``: the event time in epoch milliseconds, floored), one row per event id
        and UTC day.

        Read once per window and kept (MEMORY_AND_DISK) while the archive holds the
        same files: a file is published whole under a name of its offsets and never
        changes after (sinks.hdfs_layout), so the same names mean the same events.
        A new file, another window or another root reads the archive again and drops
        the events kept before.
        """
        from pyspark import StorageLevel

        found, listing = self._listing()
        if self._kept is not None:
            url, kept_window, kept_listing, frame = self._kept
            if (url, kept_window, kept_listing) == (self.url, window, listing):
                return frame
            self._forget()
        frame = self._read(found, window)
        if frame is not None:
            frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        self.reads += 1
        self._kept = (self.url, window, listing, frame)
        return frame

    def _forget(self) -> None:
        if self._kept is not None and self._kept[3] is not None:
            self._kept[3].unpersist()
        self._kept = None

    def _read(self, found: dict[str, bool], window: TimeRange) -> Any:
        from pyspark.sql import functions as F

        frames = []
        if found["jsonl"]:
            frames.append(
                self.spark.read.schema(contract_schema())
                .option("pathGlobFilter", "*.jsonl")
                .option("mode", "FAILFAST")  # the archive holds valid events only
                .json(self.url)
            )
        if found["parquet"]:
            frames.append(self.spark.read.option("pathGlobFilter", "*.parquet").parquet(self.url))
        if not frames:
            return None
        shaped = []
        for frame in frames:
            kind = dict(frame.dtypes).get("event_time", "string")
            ts = F.col("event_time")
            ts = ts.cast("timestamp") if kind == "string" else ts
            shaped.append(
                frame.select(
                    "event_id",
                    "session_id",
                    "event_type",
                    "page_url",
                    "referrer",
                    "country",
                    F.floor(F.unix_micros(ts) / 1000).cast("bigint").alias("ms"),
                    F.to_date(ts).alias("day"),
                    F.col("dt").cast("date").alias("dt"),
                )
            )
        df = shaped[0]
        for other in shaped[1:]:
            df = df.unionByName(other)
        if window.since_ms is not None:
            since_day = F.to_date(F.timestamp_millis(F.lit(window.since_ms)))
            df = df.where((F.col("dt") >= since_day) & (F.col("ms") >= window.since_ms))
        if window.until_ms is not None:
            until_day = F.to_date(F.timestamp_millis(F.lit(window.until_ms)))
            df = df.where((F.col("dt") <= until_day) & (F.col("ms") < window.until_ms))
        # one per (event id, day), as the daily indices hold them; then only the columns
        # the questions read, so that what is kept is small
        return df.dropDuplicates(["event_id", "day"]).select(*QUESTION_COLUMNS)

    # ---------------------------------------------------------------- questions
    def answer(self, q: Question, window: TimeRange, limit: int) -> Answer:
        if not namenode_reachable(self.settings):
            raise EngineDown(
                f"HDFS NameNode at {self.settings.host}:{self.settings.namenode_rpc_port} "
                "is unreachable"
            )
        self.start()
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        began = time.monotonic()
        try:
            rows = self._rows(q, window, limit)
        except (PySparkException, Py4JError) as exc:
            first = str(exc).strip().splitlines()[0][:300]
            raise EngineDown(f"Spark over {self.url}: {first}") from None
        except OSError as exc:  # py4j's socket to a JVM that is gone
            raise EngineDown(f"Spark's JVM does not answer: {exc} (log: {self.log_file})") from None
        return Answer(q.name, self.name, rows, time.monotonic() - began)

    def _rows(self, q: Question, window: TimeRange, limit: int) -> list[tuple[Any, ...]]:
        from pyspark.sql import functions as F

        df = self.events(window)
        if df is None:
            return finish(q, {}, limit)
        if q.name == "events-per-minute":
            minute = (F.col("ms") - F.pmod(F.col("ms"), F.lit(60_000))).alias("minute")
            grouped = df.groupBy(minute, "event_type").count().collect()
            return finish(q, {(r["minute"], r["event_type"]): r["count"] for r in grouped}, limit)
        if q.name in ("top-pages", "top-referrers"):
            field = "page_url" if q.name == "top-pages" else "referrer"
            # Java's String.length(), as Elasticsearch's ignore_above measures it
            units = F.octet_length(F.encode(F.col(field), "UTF-16LE")) / 2
            grouped = (
                df.where(F.col(field).isNotNull() & (units <= MAX_INDEXED_URL))
                .groupBy(field)
                .count()
                .collect()
            )
            return finish(q, {r[field]: r["count"] for r in grouped}, limit)
        if q.name == "sessions-per-country":
            grouped = (
                df.groupBy("country").agg(F.countDistinct("session_id").alias("sessions")).collect()
            )
            return finish(q, {r["country"]: r["sessions"] for r in grouped}, limit)
        if q.name == "funnel":
            view, click, buy = (F.col(step) for step in FUNNEL_STEPS)
            firsts = (
                df.where(F.col("event_type").isin(*FUNNEL_STEPS))
                .groupBy("session_id")
                .agg(
                    *(
                        F.min(F.when(F.col("event_type") == step, F.col("ms"))).alias(step)
                        for step in FUNNEL_STEPS
                    )
                )
            )
            # the steps of questions.funnel_counts, summed in Spark (one row comes back)
            clicked = view.isNotNull() & click.isNotNull() & (click >= view)
            bought = clicked & buy.isNotNull() & (buy >= click)
            total = firsts.agg(
                F.count(view).alias("page_view"),
                F.count(F.when(clicked, 1)).alias("click"),
                F.count(F.when(bought, 1)).alias("purchase"),
            ).collect()[0]
            return finish(q, {step: total[step] for step in FUNNEL_STEPS}, limit)
        raise ValueError(q.name)  # pragma: no cover - questions come from QUESTIONS
