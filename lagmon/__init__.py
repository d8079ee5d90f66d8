"""lagmon: consumer-lag monitoring with Burrow's semantics.

Laid out like Burrow, one module per concern: ``protocol`` (the data passed
between parts and its JSON), ``evaluator`` (the rules), ``storage`` (sliding
windows), ``cluster`` (broker offsets, groups and members via the admin API),
``consumer`` (offset commits read from ``__consumer_offsets``), ``notifier``,
``httpserver`` (Burrow's v3 API), ``metrics`` (the Prometheus collector),
``config``, ``monitor`` (runs them together). Around the monitor: ``reader``
(lag read from Kafka now, for `clickfan lag`, the demo and the benchmarks),
``client`` (statuses from a running monitor's API), ``render`` (the text
tables), ``window`` (`lag evaluate`'s input checked and judged) and
``commands`` (the click commands, nothing else).
"""
