"""clickfan: the Kafka fan-out pattern on real systems."""

__version__ = "0.1.0"
