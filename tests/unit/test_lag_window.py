"""`clickfan lag evaluate` fed what is not a window: one line and exit 2, never a traceback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickfan.errors import ClickfanError
from clickfan.lagmon.commands import lag

WINDOW = {
    "commits": [{"offset": 10, "timestamp_ms": 1000, "lag": 5}],
    "broker_offsets": [15],
    "current_lag": 5,
    "now_ms": 1500,
}


def evaluate(data: bytes) -> Result:
    return CliRunner().invoke(lag, ["evaluate"], input=data)


def refused(data: bytes) -> str:
    """The one-line message of input that `lag evaluate` refuses with exit code 2."""
    result = evaluate(data)
    assert isinstance(result.exception, ClickfanError), (result.output, result.exception)
    assert result.exception.exit_code == 2
    message = str(result.exception)
    assert "\n" not in message
    return message


def test_invalid_utf8() -> None:
    assert "not UTF-8" in refused(b'{"commits": [], "now_ms": 1, "current_lag": 0, "x": "\xff"}')


def test_a_byte_order_mark_is_fine() -> None:
    plain = evaluate(json.dumps(WINDOW).encode())
    result = evaluate(b"\xef\xbb\xbf" + json.dumps(WINDOW).encode())
    assert result.exit_code == 0, result.output
    # one commit, then nothing for longer than the window spans
    assert json.loads(result.output) == json.loads(plain.output) == {"status": "STOP"}


def test_an_integer_too_long_to_parse() -> None:
    doc = json.dumps(WINDOW).replace('"now_ms": 1500', '"now_ms": ' + "9" * 5000)
    assert "integer too long" in refused(doc.encode())


def test_a_long_integer_that_parses_is_judged_or_refused_by_its_field() -> None:
    big = 10**4000
    caught_up = {**WINDOW, "now_ms": big, "current_lag": 0}
    assert json.loads(evaluate(json.dumps(caught_up).encode()).output) == {"status": "OK"}
    stopped = {**WINDOW, "now_ms": big}
    assert json.loads(evaluate(json.dumps(stopped).encode()).output) == {"status": "STOP"}
    message = refused(json.dumps({**WINDOW, "current_lag": -big}).encode())
    assert message.startswith("invalid window: current_lag: must not be negative")
    assert len(message) < 200  # the value is shortened


@pytest.mark.parametrize("depth", [20, 100_000])
def test_deep_nesting(depth: int) -> None:
    assert "nested too deeply" in refused(b"[" * depth + b"]" * depth)
    assert "nested too deeply" in refused(b'{"a":' * depth + b"1" + b"}" * depth)


def test_odd_keys_and_values_are_quoted_safely() -> None:
    message = refused(b'{"commits": [], "current_lag": 0, "now_ms": 1, "\\ud800 x": 1}')
    assert message == 'invalid window: "\\ud800 x": unknown field'
    assert "NaN" in refused(json.dumps({**WINDOW, "now_ms": float("nan")}).encode())


def _check(data: bytes) -> None:
    result = evaluate(data)
    if result.exit_code == 0:
        assert isinstance(json.loads(result.output), dict | list)
        return
    refused(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_exit_0_or_2(data: bytes) -> None:
    _check(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "commits": st.lists(
                st.fixed_dictionaries(
                    {}, optional={k: json_values for k in ("offset", "timestamp_ms", "lag")}
                )
                | json_values,
                max_size=4,
            ),
            "broker_offsets": st.lists(json_values, max_size=3) | json_values,
            "current_lag": json_values,
            "now_ms": json_values,
            "allowed_lag": json_values,
        },
    )
    | json_values
)
def test_window_shaped_json_exits_0_or_2(doc: object) -> None:
    _check(json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 200))
def test_mutated_windows_exit_0_or_2(noise: bytes, at: int) -> None:
    text = json.dumps(WINDOW).encode()
    at = min(at, len(text))
    _check(text[:at] + noise + text[at:])
