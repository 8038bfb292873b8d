"""ListOffsets gives Kafka's answers (issue 2, test 4).

One 4-partition topic:
  p0: 10 records, one batch each, timestamps T0, T0+1000, ..., T0+9000
  p1: 3 records, one batch each, timestamps T0, T0+5000, T0+1000 (the max is in the middle)
  p2: 5 records in ONE batch, timestamps T0, T0+1000, ..., T0+4000
  p3: empty
Kafka's rules: earliest = log start offset (0), latest = log end offset; by timestamp = the
first offset whose record timestamp is >= the target, looked up record by record (also inside a
batch), or offset -1 (and timestamp -1) when no record is that late; max timestamp = the offset
of the record with the largest timestamp.
"""

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

import harness
import kafka_wire as wire

PARTITIONS = 4


def produce_setup(broker):
    topic = harness.create_topic(broker, harness.unique_topic("list-offsets"), PARTITIONS)
    t0 = int(time.time() * 1000) - 600_000
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "linger.ms": 0, "enable.idempotence": False})
    errors = []

    def send(partition, timestamp, flush):
        producer.produce(topic, value=b"ts-%d" % timestamp, partition=partition,
                         timestamp=timestamp,
                         on_delivery=lambda error, _: error and errors.append(error))
        if flush:
            assert producer.flush(30) == 0

    for i in range(10):
        send(0, t0 + 1000 * i, flush=True)
    for delta in (0, 5000, 1000):
        send(1, t0 + delta, flush=True)
    # One batch: queue all five, then flush once (linger lets them accumulate).
    batched = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                        "linger.ms": 1000, "batch.num.messages": 100})
    for i in range(5):
        batched.produce(topic, value=b"batched-%d" % i, partition=2, timestamp=t0 + 1000 * i,
                        on_delivery=lambda error, _: error and errors.append(error))
    assert batched.flush(30) == 0
    assert not errors, errors
    return topic, t0


def check_answers(broker, topic, t0):
    # The p2 records must really be in one batch for the inside-a-batch answers to mean much.
    with wire.Connection(broker.bootstrap) as connection:
        fetched = connection.fetch({(topic, 2): 0})[(topic, 2)]
        batches = wire.parse_record_batches(fetched["records"])
        assert [(b.base_offset, b.record_count) for b in batches] == [(0, 5)], \
            "partition 2's five records are not one batch"

        # ListOffsets v1 on the raw wire: (error, timestamp, offset).
        answers = connection.list_offsets({
            (topic, 0): wire.EARLIEST_TIMESTAMP, (topic, 1): wire.LATEST_TIMESTAMP,
            (topic, 2): t0 + 1500, (topic, 3): wire.LATEST_TIMESTAMP})
        assert answers[(topic, 0)][::2] == (wire.NONE, 0)
        assert answers[(topic, 1)][::2] == (wire.NONE, 3)
        assert answers[(topic, 2)] == (wire.NONE, t0 + 2000, 2)
        assert answers[(topic, 3)][::2] == (wire.NONE, 0)
        answers = connection.list_offsets({(topic, 0): t0 + 9001, (topic, 3): t0})
        assert answers[(topic, 0)] == (wire.NONE, -1, -1)
        assert answers[(topic, 3)] == (wire.NONE, -1, -1)

    # Watermarks (ListOffsets earliest + latest through librdkafka).
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "list-offsets"})
    try:
        watermarks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                                        cached=False)
                      for p in range(PARTITIONS)}
        assert watermarks == {0: (0, 10), 1: (0, 3), 2: (0, 5), 3: (0, 0)}

        # offsets_for_times: first offset with timestamp >= target, else -1.
        queries = {
            (0, t0 - 5000): 0,        # before the first record
            (0, t0): 0,               # exact, first
            (0, t0 + 3000): 3,        # exact
            (0, t0 + 3500): 4,        # between two records
            (0, t0 + 9000): 9,        # exact, last
            (0, t0 + 9001): -1,       # after the last record
            (1, t0 + 1000): 1,        # the first record >= target is offset 1 (ts T0+5000)
            (1, t0 + 5001): -1,
            (2, t0 + 2000): 2,        # exact, inside one batch
            (2, t0 + 2500): 3,        # between, inside one batch
            (2, t0 + 4001): -1,
            (3, t0): -1,              # empty partition
        }
        for (partition, timestamp), expected in queries.items():
            [answer] = consumer.offsets_for_times([TopicPartition(topic, partition, timestamp)],
                                                  timeout=10)
            assert answer.error is None, answer.error
            assert answer.offset == expected, \
                f"offsets_for_times p{partition} T0{timestamp - t0:+d}: {answer.offset}"
    finally:
        consumer.close()

    # AdminClient.list_offsets with every OffsetSpec (ListOffsets v7+ for max_timestamp).
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def list_offsets(partition, spec):
        tp = TopicPartition(topic, partition)
        result = admin.list_offsets({tp: spec}, request_timeout=10)[tp].result(timeout=15)
        return result.offset, result.timestamp

    assert list_offsets(0, OffsetSpec.earliest())[0] == 0
    assert list_offsets(0, OffsetSpec.latest())[0] == 10
    assert list_offsets(3, OffsetSpec.earliest())[0] == 0
    assert list_offsets(3, OffsetSpec.latest())[0] == 0
    assert list_offsets(0, OffsetSpec.for_timestamp(t0 + 3000)) == (3, t0 + 3000)
    assert list_offsets(0, OffsetSpec.for_timestamp(t0 + 3500)) == (4, t0 + 4000)
    assert list_offsets(0, OffsetSpec.for_timestamp(t0 + 9001))[0] == -1
    assert list_offsets(2, OffsetSpec.for_timestamp(t0 + 2500)) == (3, t0 + 3000)
    assert list_offsets(0, OffsetSpec.max_timestamp()) == (9, t0 + 9000)
    assert list_offsets(1, OffsetSpec.max_timestamp()) == (1, t0 + 5000)
    assert list_offsets(2, OffsetSpec.max_timestamp()) == (4, t0 + 4000)


@pytest.mark.timeout(180)
def test_list_offsets_earliest_latest_and_by_timestamp(broker):
    topic, t0 = produce_setup(broker)
    check_answers(broker, topic, t0)


@pytest.mark.timeout(240)
def test_list_offsets_after_restart(broker):
    """The same answers from the indexes a restart reads back (clean shutdown), and after an
    unclean one (SIGKILL: recovery rebuilds what it must)."""
    topic, t0 = produce_setup(broker)
    assert broker.stop() == broker.clean_exit_status()
    broker.start()
    harness.wait_for_partitions(broker, topic, PARTITIONS)  # Kafka: leaders again after start
    check_answers(broker, topic, t0)
    broker.kill()
    broker.start()
    harness.wait_for_partitions(broker, topic, PARTITIONS)
    check_answers(broker, topic, t0)
