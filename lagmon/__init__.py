"""lagmon: consumer-lag monitoring with Burrow's semantics.

Laid out like Burrow, one module per concern: ``protocol`` (the data passed
between parts and its JSON), ``evaluator`` (the rules), ``storage`` (sliding
windows), ``cluster`` (broker offsets and groups via the admin API),
``consumer`` (offset commits read from ``__consumer_offsets``), ``notifier``,
``httpserver`` (Burrow's v3 API and Prometheus), ``config``, ``monitor`` (runs
them together) and ``commands`` (the CLI).
"""
