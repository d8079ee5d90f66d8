"""Kafka's murmur2 placement and the VIP partitioner."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Message, Producer

from clickfan.generators.partitioners import VipPartitioner, murmur2, partition_for_key, to_positive

# Apache Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
# testMurmur2: Utils.murmur2 of these bytes (Java signed ints).
KAFKA_UTILS_TEST_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# librdkafka, src/rdmurmur2.c, unittest_murmur2(): java_murmur2_results, the
# Java client's hashes as unsigned 32-bit values; the suffixes of "1234" and of
# the long key exercise every tail length and unaligned reads.
LIBRDKAFKA_JAVA_VECTORS = {
    b"kafka": 0xD067CF64,
    b"giberish123456789": 0x8F552B0C,
    b"1234": 0x9FC97B14,
    b"234": 0xE7C009CA,
    b"34": 0x873930DA,
    b"4": 0x5A4B5CA1,
    b"PreAmbleWillBeRemoved,ThePrePartThatIs": 0x78424F1C,
    b"reAmbleWillBeRemoved,ThePrePartThatIs": 0x4A62B377,
    b"eAmbleWillBeRemoved,ThePrePartThatIs": 0xE0E4E09E,
    b"AmbleWillBeRemoved,ThePrePartThatIs": 0x62B8B43F,
    b"": 0x106E08D9,
}


@pytest.mark.parametrize(("data", "expected"), KAFKA_UTILS_TEST_VECTORS.items())
def test_murmur2_matches_kafka_utils_test(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@pytest.mark.parametrize(("data", "expected"), LIBRDKAFKA_JAVA_VECTORS.items())
def test_murmur2_matches_librdkafka_java_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) & 0xFFFFFFFF == expected
    assert -(2**31) <= murmur2(data) < 2**31  # a Java int


def test_to_positive_clears_the_sign_bit_like_java() -> None:
    assert to_positive(-1) == 0x7FFFFFFF  # not abs(): abs(-1) would be 1
    assert to_positive(-(2**31)) == 0
    assert to_positive(12345) == 12345


def test_partition_for_key_worked_examples() -> None:
    # by hand: -790332482 & 0x7fffffff = 1357151166 = 6 * 226191861
    assert partition_for_key(b"foobar", 6) == 0
    # 479470107 is positive: 479470107 % 10 = 7
    assert partition_for_key(b"abc", 10) == 7
    # -973932308 & 0x7fffffff = 1173551340 = 7 * 167650191 + 3
    assert partition_for_key(b"21", 7) == 3


def test_partition_for_key_rejects_no_partitions() -> None:
    with pytest.raises(ValueError):
        partition_for_key(b"x", 0)


def test_partition_for_key_equals_librdkafka_murmur2_random() -> None:
    """The producer's own partitioner (librdkafka, in-process mock cluster) agrees.

    No broker: librdkafka's built-in mock cluster answers metadata and produce
    requests inside this process.
    """
    producer = Producer({"test.mock.num.brokers": 1, "partitioner": "murmur2_random"})
    topic = "partitioner-check"
    partitions = len(producer.list_topics(topic, timeout=10).topics[topic].partitions)
    keys = [f"u{n:08d}".encode() for n in range(0, 400 * 104729, 104729)]
    keys += [b"", "사용자".encode(), bytes(range(256))]
    placed: dict[bytes, int] = {}

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        placed[msg.key()] = msg.partition()

    for key in keys:
        producer.produce(topic, key=key, value=b"v", on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert len(placed) == len(keys)
    assert {k: partition_for_key(k, partitions) for k in keys} == placed
    assert len(set(placed.values())) == partitions  # the sample reaches every partition


def _keys(n: int) -> list[bytes]:
    return [f"user-{i}".encode() for i in range(n)]


def test_vip_partitioner_reserves_the_seed_example_lanes() -> None:
    vip = VipPartitioner(10, 8)
    keys = _keys(2000)
    vip_placed = {vip.partition(k, True) for k in keys}
    regular_placed = {vip.partition(k, False) for k in keys}
    assert vip_placed == set(range(8))
    assert regular_placed == {8, 9}


def test_vip_partitioner_hashes_like_kafka_within_each_lane() -> None:
    # Hashing over the first k partitions is Kafka's placement on a k-partition
    # topic; the rest is that placement shifted past the reserved ones.
    vip = VipPartitioner(6, 4)
    for key in _keys(500):
        assert vip.partition(key, True) == partition_for_key(key, 4)
        assert vip.partition(key, False) == 4 + partition_for_key(key, 2)


def test_vip_partitioner_is_stable_per_user() -> None:
    vip = VipPartitioner(10, 8)
    for key in _keys(100):
        assert len({vip.partition(key, True) for _ in range(5)}) == 1


@pytest.mark.parametrize(("partitions", "reserved"), [(10, 0), (10, 10), (10, 11), (6, -1)])
def test_vip_partitioner_keeps_a_partition_for_everybody_else(
    partitions: int, reserved: int
) -> None:
    with pytest.raises(ValueError, match="at least one must stay"):
        VipPartitioner(partitions, reserved)


def test_vip_partitioner_needs_two_partitions() -> None:
    with pytest.raises(ValueError, match="at least 2 partitions"):
        VipPartitioner(1, 1)
    with pytest.raises(ValueError, match="at least 2 partitions"):
        VipPartitioner.from_share(1, 0.5)


@pytest.mark.parametrize(
    ("partitions", "share", "reserved"),
    [(10, 0.8, 8), (6, 0.8, 5), (6, 0.5, 3), (2, 0.99, 1), (10, 0.01, 1), (3, 0.9, 2)],
)
def test_vip_share_rounds_and_clamps(partitions: int, share: float, reserved: int) -> None:
    vip = VipPartitioner.from_share(partitions, share)
    assert len(vip.vip) == reserved
    assert len(vip.regular) == partitions - reserved


@pytest.mark.parametrize("share", [0.0, 1.0, -0.5, 1.5])
def test_vip_share_must_be_a_proper_fraction(share: float) -> None:
    with pytest.raises(ValueError):
        VipPartitioner.from_share(10, share)
