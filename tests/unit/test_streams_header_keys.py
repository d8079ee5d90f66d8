"""A header key that is not UTF-8 (any producer can send one) is read, not fatal."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.record import default_records, memory_records

from clickfan.streams import faust_compat
from clickfan.streams.records import _headers


class _RawKey(str):
    """A header key whose wire bytes are not UTF-8 (what a C producer can send)."""

    def __new__(cls, raw: bytes) -> _RawKey:
        key = super().__new__(cls, "k")
        key.raw = raw
        return key

    def encode(self, *args: object, **kwargs: object) -> bytes:  # type: ignore[override]
        return self.raw


def _batch(headers: list[tuple[str, bytes]], base: int = 0) -> bytes:
    builder = default_records._DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    builder.append(0, timestamp=1, key=b"k", value=b"first", headers=headers)
    builder.append(1, timestamp=1, key=b"k", value=b"second", headers=[("ok", b"y")])
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big")  # the batch's base offset (not in its CRC)
    return bytes(data)


def _read(data: bytes) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    return [(r.value, list(r.headers)) for r in _records(data)]


def _records(data: bytes) -> list[Any]:
    """What the fetcher does with a fetch: every batch's CRC checked, its records read."""
    records = memory_records._MemoryRecordsPy(data)
    out = []
    while (batch := records.next_batch()) is not None:
        assert batch.validate_crc()
        out += list(batch)
    return out


def test_a_header_key_that_is_not_utf8_is_read_and_shown_escaped() -> None:
    data = _batch([(_RawKey(b"\xff\xfekey"), b"x"), ("plain", b"p")])
    faust_compat.read_any_header_keys()
    (first_value, first_headers), (second_value, second_headers) = _read(data)
    assert (first_value, second_value) == (b"first", b"second")
    key, value = first_headers[0]
    assert key.encode("utf-8", "surrogateescape") == b"\xff\xfekey"  # the bytes, kept
    assert value == b"x"
    assert second_headers == [("ok", b"y")]
    # on the way to the dead-letter topic the key becomes text any producer can write
    assert _headers(first_headers) == (("\\xff\\xfekey", b"x"), ("plain", b"p"))


def test_the_fetcher_uses_the_lenient_reader() -> None:
    from aiokafka.consumer import fetcher

    faust_compat.read_any_header_keys()
    assert fetcher.MemoryRecords is memory_records._MemoryRecordsPy


def test_only_a_batch_that_fails_is_read_again_by_the_python_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faust_compat.read_any_header_keys()
    lenient = []

    class _Counted(faust_compat._LenientRecordBatch):
        def __init__(self, buffer: Any) -> None:
            lenient.append(bytes(buffer))
            super().__init__(buffer)

    monkeypatch.setattr(faust_compat, "_LenientRecordBatch", _Counted)
    bad = _batch([(_RawKey(b"\xc3\x28"), b"x")], base=2)
    data = _batch([("a", b"1")], base=0) + bad + _batch([("b", b"2")], base=4)
    records = _records(data)
    assert [r.offset for r in records] == [0, 1, 2, 3, 4, 5]
    assert [r.value for r in records] == [b"first", b"second"] * 3
    assert [r.headers[0][0].encode("utf-8", "surrogateescape") for r in records[::2]] == [
        b"a",
        b"\xc3\x28",
        b"b",
    ]
    assert lenient == [bad]  # the two valid batches never left the C reader
