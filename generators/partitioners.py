"""Where a record goes: Kafka's key hash, and a partitioner that keeps lanes for VIPs.

Keyed records: Kafka's Java producer (BuiltInPartitioner.partitionForKey) puts a
record with a key on ``toPositive(murmur2(key)) % numPartitions``. librdkafka's
``partitioner=murmur2_random`` does exactly the same for keyed records (and
spreads null keys over sticky random partitions, switching partition every
``sticky.partitioning.linger.ms``), so ``clickfan produce --keys user`` lets
librdkafka place records and only ``--keys vip`` computes partitions here.

murmur2 below is a port of org.apache.kafka.common.utils.Utils.murmur2 (signed
32-bit result, like Java's int); it must stay bit-for-bit identical, because a
key's partition has to match every other Kafka client's.
"""

from __future__ import annotations

import struct

_M32 = 0xFFFFFFFF
_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` as a signed 32-bit int (Java ``Utils.murmur2``)."""
    length = len(data)
    h = (_SEED ^ length) & _M32
    body = length & ~3
    # Java assembles each 4-byte block little-endian from unsigned bytes
    for (k,) in struct.iter_unpack("<I", data[:body]):
        k = (k * _M) & _M32
        k ^= k >> _R
        k = (k * _M) & _M32
        h = (h * _M) & _M32
        h ^= k
    tail = length & 3
    # the Java switch falls through: case 3 also does 2 and 1
    if tail == 3:
        h ^= data[body + 2] << 16
    if tail >= 2:
        h ^= data[body + 1] << 8
    if tail >= 1:
        h ^= data[body]
        h = (h * _M) & _M32
    h ^= h >> 13
    h = (h * _M) & _M32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(number: int) -> int:
    """Java ``Utils.toPositive``: clear the sign bit (not abs: -1 -> 2147483647)."""
    return number & 0x7FFFFFFF


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a keyed record."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be at least 1, got {num_partitions}")
    return to_positive(murmur2(key)) % num_partitions


class VipPartitioner:
    """Reserve the first ``vip_partitions`` partitions for VIP users.

    VIP keys are hashed with murmur2 over the reserved partitions, everybody
    else's over the rest, so a user still always lands on one partition and
    VIP traffic never queues behind the crowd. The seed notes' example: 10
    partitions, 8 reserved for VIPs.
    """

    def __init__(self, num_partitions: int, vip_partitions: int) -> None:
        if num_partitions < 2:
            raise ValueError(
                f"a VIP partitioner needs at least 2 partitions (one VIP, one regular), "
                f"the topic has {num_partitions}"
            )
        if not 1 <= vip_partitions <= num_partitions - 1:
            raise ValueError(
                f"vip_partitions must be 1..{num_partitions - 1} for {num_partitions} "
                f"partitions (at least one must stay for non-VIP users), got {vip_partitions}"
            )
        self.num_partitions = num_partitions
        self.vip = tuple(range(vip_partitions))
        self.regular = tuple(range(vip_partitions, num_partitions))

    @classmethod
    def from_share(cls, num_partitions: int, share: float) -> VipPartitioner:
        """Reserve ``share`` of the partitions, rounded, but at least one of each kind."""
        if not 0.0 < share < 1.0:
            raise ValueError(f"the VIP share must be between 0 and 1 (exclusive), got {share}")
        reserved = min(max(round(share * num_partitions), 1), num_partitions - 1)
        return cls(num_partitions, reserved)

    def partition(self, key: bytes, is_vip: bool) -> int:
        lanes = self.vip if is_vip else self.regular
        return lanes[to_positive(murmur2(key)) % len(lanes)]
