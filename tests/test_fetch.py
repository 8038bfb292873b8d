"""Fetch semantics from a raw socket (issue 2, Kafka protocol section): long poll on min_bytes /
max_wait_ms, the KIP-74 rule that the first batch is returned even when larger than the limits,
whole batches only (also when the fetch offset is inside a batch), the high watermark, and
OFFSET_OUT_OF_RANGE past the end."""

import threading
import time

import pytest

import harness
import kafka_wire as wire
from kafka_wire import Record

TIMESTAMP = 1_700_000_000_000
# Ringtail returns whole batches only (ARCHITECTURE.md, Fetch); Kafka slices the log by bytes and
# may end a response with a partial batch, which clients drop (protocol guide).
WHOLE_BATCHES = harness.TARGET == "ringtail"
# The partition leader epoch stamped into every stored batch: the leader epoch, 0 for a new topic
# on one node, on Kafka and Ringtail alike (tests/test_admin_apis.py covers epochs after restarts).
STORED_LEADER_EPOCH = 0


def assert_stored_as_produced(stored, produced):
    """The stored batch is the produced one byte for byte from the magic byte on (what the
    CRC covers, and the CRC itself); before it, the base offset is the broker's and the
    partition leader epoch is the broker's leader epoch."""
    assert stored[16:] == produced[16:], "stored batch differs from the produced one"
    assert int.from_bytes(stored[12:16], "big", signed=True) == STORED_LEADER_EPOCH


def batch(count, label, value_bytes=20):
    return wire.record_batch([
        Record((f"{label}-{i}-".encode() + b"v" * value_bytes), key=f"{label}".encode(),
               timestamp=TIMESTAMP + i) for i in range(count)])


@pytest.fixture
def topic_broker(broker):
    topic = harness.create_topic(broker, harness.unique_topic("fetch"), 2)
    return broker, topic


def test_fetch_at_end_waits_and_returns_nothing(topic_broker):
    broker, topic = topic_broker
    with wire.Connection(broker.bootstrap) as connection:
        answer = connection.fetch({(topic, 0): 0}, max_wait_ms=200)[(topic, 0)]
        assert answer["error_code"] == wire.NONE
        assert answer["high_watermark"] == 0
        assert not answer["records"]


def test_long_poll_is_woken_by_a_produce(topic_broker):
    """A fetch at the end with a long max_wait_ms returns the record produced meanwhile (from
    another connection), well before its max wait would have run out."""
    broker, topic = topic_broker
    produced = {}

    def produce_later():
        time.sleep(0.3)
        with wire.Connection(broker.bootstrap) as producer:
            produced["result"] = producer.produce({topic: {0: batch(1, "late")}})

    thread = threading.Thread(target=produce_later, daemon=True)
    with wire.Connection(broker.bootstrap, timeout_s=30) as connection:
        thread.start()
        answer = connection.fetch({(topic, 0): 0}, max_wait_ms=20_000, min_bytes=1)[(topic, 0)]
    thread.join(10)
    assert produced["result"] == {(topic, 0): (wire.NONE, 0)}
    assert answer["error_code"] == wire.NONE
    records = wire.records_of(wire.parse_record_batches(answer["records"], True))
    assert [(offset, record.value) for offset, record in records] == \
        [(0, b"late-0-" + b"v" * 20)]


def test_min_bytes_not_reached_returns_what_there_is_after_max_wait(topic_broker):
    broker, topic = topic_broker
    with wire.Connection(broker.bootstrap) as connection:
        assert connection.produce({topic: {0: batch(2, "small")}}) == {(topic, 0): (0, 0)}
        answer = connection.fetch({(topic, 0): 0}, max_wait_ms=300,
                                  min_bytes=10_000_000)[(topic, 0)]
        assert answer["error_code"] == wire.NONE
        records = wire.records_of(wire.parse_record_batches(answer["records"], True))
        assert [offset for offset, _ in records] == [0, 1]


def test_first_batch_returned_even_when_larger_than_limits(topic_broker):
    """KIP-74: partition_max_bytes and max_bytes are not absolute for the first batch."""
    broker, topic = topic_broker
    big = batch(3, "big", value_bytes=5000)
    with wire.Connection(broker.bootstrap) as connection:
        assert connection.produce({topic: {0: big}}) == {(topic, 0): (wire.NONE, 0)}
        assert connection.produce({topic: {0: batch(1, "next")}}) == {(topic, 0): (0, 3)}
        for limits in ({"partition_max_bytes": 100}, {"max_bytes": 100},
                       {"partition_max_bytes": 1, "max_bytes": 1}):
            answer = connection.fetch({(topic, 0): 0}, **limits)[(topic, 0)]
            assert answer["error_code"] == wire.NONE, limits
            batches = wire.parse_record_batches(answer["records"], whole_batches_only=True)
            assert batches, f"nothing returned with {limits}"
            assert batches[0].base_offset == 0 and batches[0].record_count == 3, limits
            assert_stored_as_produced(batches[0].raw, big)


def test_whole_batches_within_partition_max_bytes(topic_broker):
    """At most partition_max_bytes, and every complete batch in it in offset order."""
    broker, topic = topic_broker
    with wire.Connection(broker.bootstrap) as connection:
        sizes = []
        for i in range(10):
            produced = batch(2, f"b{i}", value_bytes=400)
            sizes.append(len(produced))
            assert connection.produce({topic: {1: produced}}) == {(topic, 1): (0, 2 * i)}
        limit = sum(sizes[:3]) + sizes[3] // 2  # room for 3.5 batches
        answer = connection.fetch({(topic, 1): 0}, partition_max_bytes=limit)[(topic, 1)]
        assert answer["error_code"] == wire.NONE
        assert answer["high_watermark"] == 20
        assert len(answer["records"]) <= limit
        # Complete batches (a trailing partial one is dropped, or an error on Ringtail).
        batches = wire.parse_record_batches(answer["records"], whole_batches_only=WHOLE_BATCHES)
        assert 1 <= len(batches) <= 3
        assert [b.base_offset for b in batches] == [2 * i for i in range(len(batches))]


def test_fetch_inside_a_batch_returns_the_whole_batch(topic_broker):
    """Kafka returns the whole batch containing the fetch offset; the client skips the records
    before it."""
    broker, topic = topic_broker
    with wire.Connection(broker.bootstrap) as connection:
        first = batch(5, "five")
        assert connection.produce({topic: {0: first}}) == {(topic, 0): (wire.NONE, 0)}
        assert connection.produce({topic: {0: batch(2, "two")}}) == {(topic, 0): (0, 5)}
        answer = connection.fetch({(topic, 0): 3})[(topic, 0)]
        assert answer["error_code"] == wire.NONE
        assert answer["high_watermark"] == 7
        batches = wire.parse_record_batches(answer["records"], whole_batches_only=True)
        assert [(b.base_offset, b.record_count) for b in batches] == [(0, 5), (5, 2)]
        assert_stored_as_produced(batches[0].raw, first)


def test_fetch_past_the_end_is_offset_out_of_range(topic_broker):
    broker, topic = topic_broker
    with wire.Connection(broker.bootstrap) as connection:
        assert connection.produce({topic: {0: batch(3, "x")}}) == {(topic, 0): (0, 0)}
        answer = connection.fetch({(topic, 0): 10}, max_wait_ms=100)[(topic, 0)]
        assert answer["error_code"] == wire.OFFSET_OUT_OF_RANGE
        answer = connection.fetch({(topic, 0): 3}, max_wait_ms=100)[(topic, 0)]
        assert answer["error_code"] == wire.NONE and not answer["records"]


def test_unknown_topic_or_partition(topic_broker):
    broker, topic = topic_broker
    with wire.Connection(broker.bootstrap) as connection:
        answer = connection.fetch({(topic, 7): 0}, max_wait_ms=100)[(topic, 7)]
        assert answer["error_code"] == wire.UNKNOWN_TOPIC_OR_PARTITION
        result = connection.produce({topic: {7: batch(1, "nowhere")}})
        assert result[(topic, 7)][0] == wire.UNKNOWN_TOPIC_OR_PARTITION
