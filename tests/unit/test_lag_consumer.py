"""Decoding __consumer_offsets records, built byte by byte from Kafka's schemas."""

from __future__ import annotations

import struct

import pytest

from clickfan.lagmon.consumer import CommitKey, CommitValue, decode_key, decode_value


def string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def key(version: int, group: str, topic: str, partition: int) -> bytes:
    return struct.pack(">h", version) + string(group) + string(topic) + struct.pack(">i", partition)


@pytest.mark.parametrize("version", [0, 1])
def test_offset_commit_keys(version: int) -> None:
    assert decode_key(key(version, "es-indexer", "click-logs", 5)) == CommitKey(
        "es-indexer", "click-logs", 5
    )


def test_other_record_types_are_not_commits() -> None:
    group_metadata = struct.pack(">h", 2) + string("es-indexer")
    assert decode_key(group_metadata) is None
    assert decode_key(struct.pack(">h", 3) + string("g")) is None  # a KIP-848 record


VALUES = {
    0: struct.pack(">hq", 0, 42) + string("m") + struct.pack(">q", 1700000000000),
    1: struct.pack(">hq", 1, 42) + string("") + struct.pack(">qq", 1700000000000, -1),
    2: struct.pack(">hq", 2, 42) + string("meta") + struct.pack(">q", 1700000000000),
    3: struct.pack(">hqi", 3, 42, 7) + string("") + struct.pack(">q", 1700000000000),
    # flexible: compact string (length + 1 as an unsigned varint), then tagged fields
    4: struct.pack(">hqi", 4, 42, 7) + bytes([4]) + b"abc" + struct.pack(">q", 1700000000000)
    + bytes([0]),
}  # fmt: skip


@pytest.mark.parametrize("version", sorted(VALUES))
def test_offset_commit_values(version: int) -> None:
    assert decode_value(VALUES[version]) == CommitValue(42, 1700000000000)


def test_values_that_do_not_decode_raise() -> None:
    with pytest.raises(ValueError, match="unknown OffsetCommitValue version 9"):
        decode_value(struct.pack(">hq", 9, 1))
    with pytest.raises(ValueError, match="runs past the end"):
        decode_value(struct.pack(">hq", 0, 1) + struct.pack(">h", 50) + b"short")
    with pytest.raises(struct.error):
        decode_value(struct.pack(">h", 0))
