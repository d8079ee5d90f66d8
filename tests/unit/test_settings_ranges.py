"""Every CLICKFAN_* setting is checked when loaded: exit 2, one line naming it and its range."""

from __future__ import annotations

import dataclasses
import os
import subprocess

import pytest

from clickfan.errors import ClickfanError
from clickfan.settings import Settings, SettingsError, load
from tests.support import CLICKFAN


def test_the_defaults_are_allowed() -> None:
    assert load({}) == Settings()


def test_every_numeric_setting_has_a_range() -> None:
    unchecked = [
        f.name
        for f in dataclasses.fields(Settings)
        if isinstance(f.default, int | float | tuple) and "allowed" not in f.metadata
    ]
    # booleans are read strictly (true/false) instead
    assert unchecked == ["secure", "produce_idempotence"]


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("CLICKFAN_ES_BULK_BYTES", "-1", "an integer of at least 1"),  # a negative size
        ("CLICKFAN_HDFS_ROLL_RECORDS", "0", "an integer of at least 1"),  # a zero roll
        ("CLICKFAN_HDFS_ROLL_S", "0", "a finite number above 0"),
        ("CLICKFAN_KAFKA_PORTS", "", "a comma-separated list of distinct ports 1..65535"),
        ("CLICKFAN_KAFKA_PORTS", "9092,9092,9094", "distinct ports"),
        ("CLICKFAN_KAFKA_PORTS", "9092,x,9094", "a comma-separated list"),
        ("CLICKFAN_LAG_INTERVAL_S", "nan", "a finite number above 0"),
        ("CLICKFAN_SINK_RETRY_MAX_S", "inf", "a finite number above 0"),
        ("CLICKFAN_BAD_FRACTION", "-inf", "a finite number from 0 to 1"),
        ("CLICKFAN_ES_PORT", "0", "an integer from 1 to 65535"),
        ("CLICKFAN_MONITOR_PORT", "65536", "an integer from 1 to 65535"),
        ("CLICKFAN_ES_PORT", "ninety-two-hundred", "an integer from 1 to 65535"),
        ("CLICKFAN_PARTITIONS", "1.5", "an integer of at least 1"),
        ("CLICKFAN_PRODUCE_ACKS", "2", "one of 0, 1, all, -1"),
        ("CLICKFAN_WORKER_LOGLEVEL", "loud", "one of debug, info, warning, error"),
        ("CLICKFAN_TOPIC", "", "1 to 249 of"),
        ("CLICKFAN_DLQ_TOPIC", "bad/name", "1 to 249 of"),
        ("CLICKFAN_ES_GROUP", " ", "not empty"),
        ("CLICKFAN_PRODUCE_IDEMPOTENCE", "maybe", "true or false"),
    ],
)
def test_a_value_out_of_range_names_the_variable_and_the_range(
    variable: str, value: str, allowed: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}={value!r}: expected ") and allowed in message
    assert "\n" not in message
    assert isinstance(caught.value, ClickfanError) and caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CLICKFAN_MIN_INSYNC_REPLICAS": "4"}, "CLICKFAN_REPLICATION_FACTOR=3"),
        ({"CLICKFAN_SINK_RETRY_INITIAL_S": "20"}, "CLICKFAN_SINK_RETRY_MAX_S=10.0"),
        ({"CLICKFAN_MAX_EVENT_BYTES": "102400"}, "CLICKFAN_OVERSIZED_EVENT_BYTES=102400"),
        ({"CLICKFAN_KAFKA_PORTS": "9092,9093"}, "CLICKFAN_KAFKA_CONTROLLER_PORTS"),
    ],
)
def test_settings_that_must_agree(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load(env)


def test_values_in_range_are_taken() -> None:
    settings = load(
        {
            "CLICKFAN_HDFS_ROLL_S": "0.5",
            "CLICKFAN_KAFKA_PORTS": "12092, 12093,12094",
            "CLICKFAN_BAD_FRACTION": "1",
            "CLICKFAN_PRODUCE_ACKS": "all",
        }
    )
    assert settings.hdfs_roll_s == 0.5 and settings.kafka_ports == (12092, 12093, 12094)
    assert settings.bad_fraction == 1.0


def test_clickfan_status_with_a_bad_variable_exits_2_with_one_line(tmp_path: os.PathLike) -> None:
    env = {**os.environ, "CLICKFAN_HOME": str(tmp_path), "CLICKFAN_HDFS_ROLL_RECORDS": "0"}
    result = subprocess.run(
        [CLICKFAN, "status"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "clickfan: CLICKFAN_HDFS_ROLL_RECORDS='0': expected an integer of at least 1"
    ]
    assert result.stdout == ""
