"""A header key that is not UTF-8 (any producer can send one) is read, not fatal."""

from __future__ import annotations

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


def _batch(headers: list[tuple[str, bytes]]) -> bytes:
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
    return bytes(builder.build())


def _read(data: bytes) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    records = memory_records._MemoryRecordsPy(data)
    out = []
    while (batch := records.next_batch()) is not None:
        out += [(r.value, list(r.headers)) for r in batch]
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
