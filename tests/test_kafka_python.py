"""kafka-python 3.x against the broker (issue 2, test 3): the producer with its default settings
(idempotent, acks=all) produces; KafkaConsumer reads back with assign() + seek_to_beginning()."""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import harness

MESSAGES = 5000
PARTITIONS = 3


def messages(count, label):
    base_ms = int(time.time() * 1000) - 3 * count - 60_000
    return [(b"k%d" % (i % 50), b"%s value %d " % (label.encode(), i) * (1 + i % 5),
             [("seq", b"%d" % i), ("lib", b"kafka-python")], base_ms + 3 * i)
            for i in range(count)]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_kafka_python_default_producer_and_consumer(broker, compression):
    topic = harness.create_topic(broker, harness.unique_topic("kafka-python"), PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=compression,
                             request_timeout_ms=30000, max_block_ms=30000)
    try:
        # The defaults we want to exercise, not silently downgraded after version probing.
        assert producer.config["enable_idempotence"] is True
        assert producer.config["acks"] == -1
        expected = messages(MESSAGES, str(compression))
        futures = [producer.send(topic, key=key, value=value, headers=headers,
                                 timestamp_ms=timestamp)
                   for key, value, headers, timestamp in expected]
        producer.flush(timeout=120)
        delivered = [future.get(timeout=60) for future in futures]
    finally:
        producer.close(timeout=10)

    where = {(m.partition, m.offset): i for i, m in enumerate(delivered)}
    assert len(where) == MESSAGES, "two messages acknowledged at the same offset"

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, request_timeout_ms=30000,
                             check_crcs=True)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        read = {p: [] for p in range(PARTITIONS)}
        count = 0
        deadline = time.monotonic() + 120
        while count < MESSAGES and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                read[tp.partition].extend(records)
                count += len(records)
        assert count == MESSAGES, f"read {count} of {MESSAGES} within 120 s"
        ends = consumer.end_offsets(partitions)
    finally:
        consumer.close()

    for partition, records in read.items():
        assert [r.offset for r in records] == list(range(len(records))), \
            f"partition {partition}: offsets not contiguous from 0"
        assert ends[TopicPartition(topic, partition)] == len(records)
        for record in records:
            index = where[(partition, record.offset)]
            key, value, headers, timestamp = expected[index]
            assert record.key == key
            assert record.value == value
            assert list(record.headers) == headers
            assert record.timestamp == timestamp and record.timestamp_type == 0
