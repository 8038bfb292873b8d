"""confluent-kafka (librdkafka) against the broker (issue 2, test 2).

acks=all, 100,000 messages over 4 partitions for each compression codec, read back with assign()
from the beginning: every key, value, header and timestamp intact, at the offset the delivery
report gave. Also: auto-creation with num.partitions, and topics plus data surviving a restart.
"""

import random
import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Producer, TopicCollection
from confluent_kafka.admin import AdminClient

import harness

MESSAGES = 100_000
PARTITIONS = 4
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def make_messages(count, seed, label):
    """Deterministic messages of varied shape: repeated and null keys, null and empty values,
    compressible text and random bytes, repeated and null headers."""
    rng = random.Random(seed)
    base_ms = int(time.time() * 1000) - 2 * count - 60_000
    messages = []
    for i in range(count):
        key = None if i % 97 == 0 else b"key-%d" % (i % 1000)
        if i % 101 == 0:
            value = None
        elif i % 103 == 0:
            value = b""
        elif i % 2:
            value = (b"value %d %s " % (i, label.encode())) * rng.randrange(1, 8)
        else:
            value = rng.randbytes(rng.randrange(1, 300))
        headers = [("seq", b"%d" % i), ("codec", label.encode())]
        if i % 7 == 0:
            headers += [("dup", b"1"), ("dup", b"2"), ("empty", b""), ("null", None)]
        messages.append((key, value, headers, base_ms + 2 * i))
    return messages


def produce_all(broker, topic, messages, config):
    """Produces every message; returns [(partition, offset)] per message from delivery reports."""
    delivered = [None] * len(messages)
    errors = []

    def report(index):
        def on_delivery(error, message):
            if error is not None:
                errors.append((index, error))
            else:
                delivered[index] = (message.partition(), message.offset())
        return on_delivery

    producer = Producer({"bootstrap.servers": broker.bootstrap, **config})
    deadline = time.monotonic() + 300
    for index, (key, value, headers, timestamp) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers,
                                 timestamp=timestamp, on_delivery=report(index))
                break
            except BufferError:
                assert time.monotonic() < deadline, "producer queue stayed full"
                producer.poll(0.05)
        if index % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    assert remaining == 0, f"{remaining} messages not delivered within 120 s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    assert None not in delivered
    return delivered


def assert_read_back(broker, topic, partitions, messages, delivered):
    by_partition = harness.read_all_confluent(
        broker, topic, partitions, expected_count=len(messages),
        extra_config={"check.crcs": True})
    where = {position: index for index, position in enumerate(delivered)}
    assert len(where) == len(messages), "two messages were acknowledged at the same offset"
    total = 0
    for partition, read in by_partition.items():
        offsets = [message.offset() for message in read]
        assert offsets == list(range(len(read))), \
            f"partition {partition}: offsets not contiguous from 0"
        for message in read:
            index = where.get((partition, message.offset()))
            assert index is not None, f"unexpected message at {partition}/{message.offset()}"
            key, value, headers, timestamp = messages[index]
            assert message.key() == key, f"key of message {index}"
            assert message.value() == value, f"value of message {index}"
            assert (message.headers() or []) == headers, f"headers of message {index}"
            assert message.timestamp() == (TIMESTAMP_CREATE_TIME, timestamp), \
                f"timestamp of message {index}"
        total += len(read)
    assert total == len(messages)
    return by_partition


@pytest.mark.timeout(600)
@pytest.mark.parametrize("codec", CODECS)
def test_acks_all_100k_messages_round_trip(broker, codec):
    topic = harness.create_topic(broker, harness.unique_topic(f"confluent-{codec}"), PARTITIONS)
    seed = harness.test_seed(f"confluent {codec}")
    messages = make_messages(MESSAGES, seed, codec)
    delivered = produce_all(broker, topic, messages, {
        "acks": "all", "compression.type": codec, "linger.ms": 5})
    by_partition = assert_read_back(broker, topic, PARTITIONS, messages, delivered)
    assert all(by_partition[p] for p in range(PARTITIONS)), "a partition got no messages"


def test_auto_create_uses_num_partitions(start_broker):
    broker = start_broker(settings={"num.partitions": 3})
    topic = harness.unique_topic("auto")
    messages = make_messages(300, 1, "auto")
    delivered = produce_all(broker, topic, messages, {"acks": "all"})
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert topic in metadata.topics
    assert sorted(metadata.topics[topic].partitions) == [0, 1, 2]
    assert_read_back(broker, topic, 3, messages, delivered)


def test_auto_create_disabled(start_broker):
    broker = start_broker(settings={"auto.create.topics.enable": "false"})
    topic = harness.unique_topic("no-auto")
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 3000})
    errors = []
    producer.produce(topic, b"v", on_delivery=lambda error, _: errors.append(error))
    producer.flush(15)
    assert errors and errors[0] is not None, "produce to a missing topic succeeded"
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert topic not in metadata.topics or metadata.topics[topic].error is not None


def test_restart_keeps_topics_ids_and_data(broker):
    topic = harness.create_topic(broker, harness.unique_topic("restart"), PARTITIONS)
    messages = make_messages(2000, 7, "restart")
    delivered = produce_all(broker, topic, messages, {"acks": "all", "compression.type": "lz4"})

    def describe():
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        futures = admin.describe_topics(TopicCollection([topic]), request_timeout=10)
        return futures[topic].result(timeout=15)

    before = describe()
    assert str(before.topic_id) not in ("", "AAAAAAAAAAAAAAAAAAAAAA"), "topic id is zero"
    status = broker.stop()
    assert status == broker.clean_exit_status(), f"SIGTERM shutdown exited {status}"
    broker.start()
    after = describe()
    assert str(after.topic_id) == str(before.topic_id), "topic id changed across a restart"
    assert len(after.partitions) == PARTITIONS
    assert_read_back(broker, topic, PARTITIONS, messages, delivered)
    # And the log goes on at the right offsets after the restart.
    more = make_messages(500, 8, "restart2")
    delivered_more = produce_all(broker, topic, more, {"acks": "all"})
    ends = {}
    for partition, offset in delivered:
        ends[partition] = max(ends.get(partition, -1), offset)
    for partition, offset in delivered_more:
        assert offset > ends.get(partition, -1), "offset reused after restart"
    assert_read_back(broker, topic, PARTITIONS, messages + more, delivered + delivered_more)

