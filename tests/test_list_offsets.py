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
    # One batch: librdkafka sends a partition's queue when batch.num.messages are queued, and
    # before that only when linger.ms ran out: a linger of a minute keeps a stalled machine
    # (a CI run once saw the two records of the compressed case below in two batches) from
    # sending the first records alone.
    batched = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                        "linger.ms": 60000, "batch.num.messages": 5})
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


# ----- a timestamp lookup inside one batch, across batch shapes (issue 9) -----

def list_offsets_v9(connection, topic, partition, timestamp):
    """ListOffsets v9 (flexible) for one partition: (error_code, timestamp, offset)."""
    body = wire.int32(-1) + wire.int8(0)  # replica_id, isolation_level
    body += wire.unsigned_varint(2) + wire.compact_string(topic)
    body += wire.unsigned_varint(2) + wire.int32(partition) + wire.int32(-1) + wire.int64(timestamp)
    body += wire.EMPTY_TAGGED_FIELDS + wire.EMPTY_TAGGED_FIELDS + wire.EMPTY_TAGGED_FIELDS
    response = connection.request(wire.LIST_OFFSETS, 9, body, flexible_header=True,
                                  flexible_response_header=True)
    response.int32()  # throttle_time_ms
    assert response.unsigned_varint() == 2, "one topic"
    response.take(response.unsigned_varint() - 1)  # name
    assert response.unsigned_varint() == 2, "one partition"
    assert response.int32() == partition
    error_code, found_timestamp, offset = response.int16(), response.int64(), response.int64()
    response.int32()  # leader_epoch
    return error_code, found_timestamp, offset


BIG = 999_999_999_999


def produce_shapes(broker):
    """Topics holding the records (1234, BIG) as Kafka's clients write them: one raw batch,
    one batch per record, many records with the two inside, compressed, LogAppendTime."""
    topics = {}
    single = harness.create_topic(broker, harness.unique_topic("lo-one-batch"), 1)
    per_record = harness.create_topic(broker, harness.unique_topic("lo-per-record"), 1)
    many = harness.create_topic(broker, harness.unique_topic("lo-many"), 1)
    with wire.Connection(broker.bootstrap) as connection:
        batch = wire.record_batch([wire.Record(b"a", timestamp=1234),
                                   wire.Record(b"b", timestamp=BIG)])
        assert connection.produce({single: {0: batch}})[(single, 0)][0] == wire.NONE
        for timestamp in (1234, BIG):
            one = wire.record_batch([wire.Record(b"x", timestamp=timestamp)])
            assert connection.produce({per_record: {0: one}})[(per_record, 0)][0] == wire.NONE
        # 30 records 1000..1029, then the two, then 30 more at BIG + i, all in one batch.
        records = [wire.Record(b"m", timestamp=1000 + i) for i in range(30)]
        records += [wire.Record(b"a", timestamp=1234), wire.Record(b"b", timestamp=BIG)]
        records += [wire.Record(b"m", timestamp=BIG + 1 + i) for i in range(30)]
        assert connection.produce({many: {0: wire.record_batch(records)}})[(many, 0)][0] == \
            wire.NONE
    topics["one batch"] = (single, {BIG: 1, 5000: 1, 1234: 0, 0: 0, BIG + 1: -1})
    topics["one batch per record"] = (per_record, {BIG: 1, 5000: 1, 1234: 0, BIG + 1: -1})
    topics["many in one batch"] = (many, {BIG: 31, 5000: 31, 1234: 30, 1029: 29, 1030: 30,
                                          BIG + 30: 61, BIG + 31: -1})
    for codec in ("gzip", "zstd"):
        compressed = harness.create_topic(broker, harness.unique_topic(f"lo-{codec}"), 1)
        # One batch: sent once both are queued (see produce_setup's batched producer).
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 60000,
                             "batch.num.messages": 2, "compression.type": codec})
        # Compressible values: librdkafka sends a batch uncompressed when that is smaller.
        producer.produce(compressed, b"a" * 1000, partition=0, timestamp=1234)
        producer.produce(compressed, b"b" * 1000, partition=0, timestamp=BIG)
        assert producer.flush(30) == 0
        with wire.Connection(broker.bootstrap) as connection:
            fetched = connection.fetch({(compressed, 0): 0})[(compressed, 0)]
        [stored] = wire.parse_record_batches(fetched["records"])
        assert stored.attributes & 0x07 != 0 and stored.record_count == 2
        topics[f"{codec} batch"] = (compressed, {BIG: 1, 5000: 1, 1234: 0, BIG + 1: -1})
    return topics


def check_shapes(broker, topics):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lo-shapes"})
    try:
        with wire.Connection(broker.bootstrap) as connection:
            for shape, (topic, queries) in topics.items():
                for target, expected in queries.items():
                    error, _, offset = connection.list_offsets({(topic, 0): target})[(topic, 0)]
                    assert (error, offset) == (wire.NONE, expected), \
                        f"{shape}: ListOffsets v1 {target} -> {offset}, Kafka: {expected}"
                    [answer] = consumer.offsets_for_times([TopicPartition(topic, 0, target)],
                                                          timeout=10)
                    assert answer.offset == expected, f"{shape}: offsets_for_times {target}"
    finally:
        consumer.close()


@pytest.mark.timeout(180)
def test_list_offsets_inside_one_batch_across_batch_shapes(broker):
    """The issue's example: 1234 and 999999999999 produced together; 999999999999 and 5000
    answer offset 1 (the first record whose timestamp is >= the target), in every batch shape."""
    check_shapes(broker, produce_shapes(broker))


@pytest.mark.timeout(240)
def test_list_offsets_inside_one_batch_after_restart(broker):
    topics = produce_shapes(broker)
    assert broker.stop() == broker.clean_exit_status()
    broker.start()
    for topic, _ in topics.values():
        harness.wait_for_partitions(broker, topic, 1)
    check_shapes(broker, topics)


@pytest.mark.timeout(120)
def test_list_offsets_log_append_time_topic(broker):
    topic = harness.create_topic(broker, harness.unique_topic("lo-append-time"), 1,
                                 {"message.timestamp.type": "LogAppendTime"})
    with wire.Connection(broker.bootstrap) as connection:
        stamps = []
        for _ in range(3):
            batch = wire.record_batch([wire.Record(b"a", timestamp=1234),
                                       wire.Record(b"b", timestamp=BIG)])
            assert connection.produce({topic: {0: batch}})[(topic, 0)][0] == wire.NONE
            fetched = connection.fetch({(topic, 0): len(stamps) * 2})[(topic, 0)]
            stamps.append(wire.parse_record_batches(fetched["records"])[0].max_timestamp)
            time.sleep(0.01)
        # Every record of a LogAppendTime batch has the batch's append time.
        assert connection.list_offsets({(topic, 0): 5000})[(topic, 0)] == (wire.NONE, stamps[0], 0)
        later = stamps[2] + 86_400_000
        assert connection.list_offsets({(topic, 0): later})[(topic, 0)] == (wire.NONE, -1, -1)
        assert connection.list_offsets({(topic, 0): stamps[2]})[(topic, 0)][2] == \
            (4 if stamps[1] < stamps[2] else 2)


@pytest.mark.timeout(120)
def test_list_offsets_earliest_local_and_latest_tiered(broker):
    """-4 (EARLIEST_LOCAL_TIMESTAMP, KIP-405) answers the log start offset; -5
    (LATEST_TIERED_TIMESTAMP, KIP-1005) answers offset -1 without tiered storage; -3 the max."""
    topic = harness.create_topic(broker, harness.unique_topic("lo-special"), 1)
    with wire.Connection(broker.bootstrap) as connection:
        assert list_offsets_v9(connection, topic, 0, -4) == (wire.NONE, -1, 0)
        assert list_offsets_v9(connection, topic, 0, -5) == (wire.NONE, -1, -1)
        batch = wire.record_batch([wire.Record(b"a", timestamp=1234),
                                   wire.Record(b"b", timestamp=BIG),
                                   wire.Record(b"c", timestamp=2000)])
        assert connection.produce({topic: {0: batch}})[(topic, 0)][0] == wire.NONE
        assert list_offsets_v9(connection, topic, 0, -4) == (wire.NONE, -1, 0)
        assert list_offsets_v9(connection, topic, 0, -5) == (wire.NONE, -1, -1)
        assert list_offsets_v9(connection, topic, 0, -3) == (wire.NONE, BIG, 1)
        assert list_offsets_v9(connection, topic, 0, -1)[2] == 3
        # The first offset whose timestamp is >= 1500 is 1 (BIG), not the closer 2000 at 2.
        assert list_offsets_v9(connection, topic, 0, 1500) == (wire.NONE, BIG, 1)
        assert list_offsets_v9(connection, topic, 0, BIG + 1) == (wire.NONE, -1, -1)
