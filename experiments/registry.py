"""The experiments, in the order `clickfan experiment all` runs them."""

from __future__ import annotations

import importlib

from clickfan.experiments.framework import Experiment

# module name -> class name
_MODULES = {
    "fanout": "Fanout",
    "replay": "Replay",
    "reset": "Reset",
    "retention": "Retention",
    "partitions": "Partitions",
    "partitioner": "Partitioner",
    "acks": "Acks",
    "brokers": "Brokers",
    "partition": "Partition",
    "analysis": "Analysis",
}


def available() -> dict[str, Experiment]:
    """Every experiment whose module exists (one module per experiment)."""
    found: dict[str, Experiment] = {}
    for module_name, class_name in _MODULES.items():
        try:
            module = importlib.import_module(f"clickfan.experiments.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"clickfan.experiments.{module_name}":
                continue
            raise
        found[module_name] = getattr(module, class_name)()
    return found
