"""Prometheus metrics of the monitor, with Burrow's metric names.

Computed afresh at each scrape from storage and the evaluator, so a group or
topic that is gone is gone from the metrics too. A partition that a member owns
without a commit has no ``burrow_kafka_consumer_current_offset`` sample (Kafka's
tools show "-"), and its ``burrow_kafka_consumer_partition_lag`` is the whole log.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from clickfan.lagmon.evaluator import Evaluator
from clickfan.lagmon.protocol import Status
from clickfan.lagmon.storage import Storage


class BurrowMetrics(Collector):
    """Burrow's metric names, computed afresh at each scrape (no stale groups)."""

    def __init__(self, storage: Storage, evaluator: Evaluator) -> None:
        self.storage, self.evaluator = storage, evaluator

    def collect(self) -> Any:
        group_labels = ["cluster", "consumer_group"]
        partition_labels = [*group_labels, "topic", "partition"]
        total = GaugeMetricFamily(
            "burrow_kafka_consumer_lag_total",
            "The sum of all partition current lag values for the group",
            labels=group_labels,
        )
        lag_max = GaugeMetricFamily(
            "clickfan_kafka_consumer_records_lag_max",
            "The largest partition current lag of the group (records-lag-max, seen from outside)",
            labels=group_labels,
        )
        status = GaugeMetricFamily(
            "burrow_kafka_consumer_status",
            "The status of the consumer group: an index into "
            "NOTFOUND, OK, WARN, ERR, STOP, STALL, REWIND",
            labels=group_labels,
        )
        lag = GaugeMetricFamily(
            "burrow_kafka_consumer_partition_lag",
            "Number of messages the consumer group is behind by for a partition",
            labels=partition_labels,
        )
        current = GaugeMetricFamily(
            "burrow_kafka_consumer_current_offset",
            "Latest offset committed by the group for this partition",
            labels=partition_labels,
        )
        topic_offset = GaugeMetricFamily(
            "burrow_kafka_topic_partition_offset",
            "Latest log-end offset of this topic partition",
            labels=["cluster", "topic", "partition"],
        )
        for cluster in self.storage.clusters():
            for group in self.storage.groups(cluster) or []:
                g = self.evaluator.group_status(cluster, group)
                if g.status == Status.NOTFOUND:
                    continue  # deleted since listed
                total.add_metric([cluster, group], g.totallag)
                lag_max.add_metric([cluster, group], g.maxlag.current_lag if g.maxlag else 0)
                status.add_metric([cluster, group], int(g.status))
                for p in g.partitions:
                    labels = [cluster, group, p.topic, str(p.partition)]
                    lag.add_metric(labels, p.current_lag)
                    if p.end is not None:
                        current.add_metric(labels, p.end.offset)
            for topic in self.storage.topics(cluster) or []:
                for number, offset in enumerate(self.storage.topic_offsets(cluster, topic) or []):
                    topic_offset.add_metric([cluster, topic, str(number)], offset)
        yield from (total, lag_max, status, lag, current, topic_offset)


def registry(storage: Storage, evaluator: Evaluator) -> CollectorRegistry:
    """A registry holding only the monitor's metrics (not the process defaults)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(BurrowMetrics(storage, evaluator))
    return found
