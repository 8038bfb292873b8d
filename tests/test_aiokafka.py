"""aiokafka against the broker (issue 2, test 3): AIOKafkaProducer (defaults, and idempotent)
produces, AIOKafkaConsumer reads back with assign() + seek_to_beginning()."""

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import harness

MESSAGES = 5000
PARTITIONS = 3


async def produce(bootstrap, topic, expected, producer_config):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=30000,
                                **producer_config)
    await producer.start()
    try:
        futures = []
        for key, value, headers, timestamp in expected:
            futures.append(await producer.send(topic, key=key, value=value, headers=headers,
                                               timestamp_ms=timestamp))
        await producer.flush()
        return [await asyncio.wait_for(future, 60) for future in futures]
    finally:
        await producer.stop()


async def consume(bootstrap, topic, count):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, request_timeout_ms=30000,
                                check_crcs=True)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        read = {p: [] for p in range(PARTITIONS)}
        total = 0
        deadline = time.monotonic() + 120
        while total < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                read[tp.partition].extend(records)
                total += len(records)
        ends = await consumer.end_offsets(partitions)
        return read, total, {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("producer_config", [
    {},
    {"enable_idempotence": True, "acks": "all", "compression_type": "gzip"},
], ids=["defaults", "idempotent-gzip"])
def test_aiokafka_produce_and_consume(broker, producer_config):
    topic = harness.create_topic(broker, harness.unique_topic("aiokafka"), PARTITIONS)
    base_ms = int(time.time() * 1000) - 3 * MESSAGES - 60_000
    expected = [(b"k%d" % (i % 40), b"aiokafka value %d " % i * (1 + i % 4),
                 [("seq", b"%d" % i), ("lib", b"aiokafka")], base_ms + 3 * i)
                for i in range(MESSAGES)]

    delivered = asyncio.run(asyncio.wait_for(
        produce(broker.bootstrap, topic, expected, producer_config), 180))
    where = {(m.partition, m.offset): i for i, m in enumerate(delivered)}
    assert len(where) == MESSAGES, "two messages acknowledged at the same offset"

    read, total, ends = asyncio.run(asyncio.wait_for(
        consume(broker.bootstrap, topic, MESSAGES), 180))
    assert total == MESSAGES, f"read {total} of {MESSAGES} within 120 s"
    for partition, records in read.items():
        assert [r.offset for r in records] == list(range(len(records))), \
            f"partition {partition}: offsets not contiguous from 0"
        assert ends[partition] == len(records)
        for record in records:
            index = where[(partition, record.offset)]
            key, value, headers, timestamp = expected[index]
            assert record.key == key
            assert record.value == value
            assert list(record.headers) == headers
            assert record.timestamp == timestamp and record.timestamp_type == 0
