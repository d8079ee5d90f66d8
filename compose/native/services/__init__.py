"""The services of the native stack, one module per family (as Burrow splits its
subsystems): `base` (what every service has), `kafka`, `elasticsearch`, `hdfs`.
This module only lists them in start order.
"""

from __future__ import annotations

from clickfan.compose.native.services.base import Probe, Service
from clickfan.compose.native.services.elasticsearch import Elasticsearch
from clickfan.compose.native.services.hdfs import DataNode, NameNode
from clickfan.compose.native.services.kafka import extra_kafka_broker, kafka_brokers
from clickfan.compose.native.services.messaging import DebianService, messaging_services
from clickfan.settings import Settings

__all__ = ["Probe", "Service", "all_services", "core_services", "optional_services"]


def core_services(settings: Settings) -> list[Service]:
    """The stack of `clickfan up`, in start order."""
    return [
        *kafka_brokers(settings),
        NameNode(settings),
        DataNode(settings),
        Elasticsearch(settings),
    ]


def optional_services(settings: Settings) -> list[DebianService]:
    """Started only on demand (`clickfan up --with rabbitmq,redis`)."""
    return messaging_services(settings)


def all_services(
    settings: Settings, extra_cluster: bool = False, optional: tuple[str, ...] = ()
) -> list[Service]:
    services = core_services(settings)
    if extra_cluster:
        services.append(extra_kafka_broker(settings))
    services += [s for s in optional_services(settings) if s.name in optional]
    return services
