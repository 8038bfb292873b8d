"""The produce path's topic and broker settings do what Kafka's do (issue 9).

- `compression.type`: a codec other than `producer` recompresses batches whose codec differs
  (stored batch attributes seen in a raw Fetch, the on-disk size, the records intact);
- `min.insync.replicas=2` on one node: nothing refused, as Kafka 4 checks acks=all against
  min(min.insync.replicas, replication factor);
- `message.timestamp.type=LogAppendTime`: the broker stamps the batch and answers the time;
- `message.timestamp.before.max.ms` / `after.max.ms` (KIP-937) and the broker's
  `log.message.timestamp.*` forms: INVALID_TIMESTAMP with per-record errors;
- records without a key on a compacted topic: INVALID_RECORD with KIP-467 per-record errors;
- topic auto-creation from Metadata (`allow_auto_topic_creation`) and from a confluent-kafka
  consumer with `allow.auto.create.topics=true`, as Kafka answers both.

Per-record errors need Produce v8+; this file speaks Produce v8 and Metadata v4 itself.
"""

import json
import re
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TIMESTAMP_LOG_APPEND_TIME

import harness
import kafka_wire as wire

INVALID_TIMESTAMP = 32
LEADER_NOT_AVAILABLE = 5
CODEC_MASK = 0x07
LOG_APPEND_TIME_BIT = 0x08
ZSTD = 4
GZIP = 1


# ----- Produce v8 and Metadata v4 on the raw wire -----

def produce_v8(connection, topic, partition, records, acks=-1, timeout_ms=30000):
    """One partition's Produce v8. Returns dict(error_code, base_offset, log_append_time,
    log_start_offset, record_errors=[(batch_index, message)], error_message)."""
    body = wire.string(None) + wire.int16(acks) + wire.int32(timeout_ms)
    body += wire.array([topic], lambda name: wire.string(name) + wire.array(
        [partition], lambda p: wire.int32(p) + wire.bytes_(records)))
    if acks == 0:  # no response at all
        connection.send_raw(connection.request_bytes(wire.PRODUCE, 8, body))
        return None
    response = connection.request(wire.PRODUCE, 8, body)
    answers = response.array(lambda r: (r.string(), r.array(lambda p: {
        "partition": p.int32(), "error_code": p.int16(), "base_offset": p.int64(),
        "log_append_time": p.int64(), "log_start_offset": p.int64(),
        "record_errors": p.array(lambda e: (e.int32(), e.string())),
        "error_message": p.string()})))
    response.int32()  # throttle_time_ms
    response.expect_end("Produce v8 response")
    [(name, [answer])] = answers
    assert (name, answer["partition"]) == (topic, partition)
    return answer


def metadata_v4(connection, topics, allow_auto_topic_creation):
    """Metadata v4: {name: (error_code, partition count)}."""
    body = wire.array(topics, wire.string) + wire.int8(1 if allow_auto_topic_creation else 0)
    response = connection.request(wire.METADATA, 4, body)
    response.int32()  # throttle_time_ms
    response.array(lambda r: (r.int32(), r.string(), r.int32(), r.string()))
    response.string()  # cluster_id
    response.int32()  # controller_id
    topics = response.array(lambda r: (r.int16(), r.string(), r.boolean(), r.array(
        lambda p: (p.int16(), p.int32(), p.int32(), p.array(wire.Reader.int32),
                   p.array(wire.Reader.int32)))))
    response.expect_end("Metadata v4 response")
    return {name: (error, len(partitions)) for error, name, _internal, partitions in topics}


def fetch_batches(broker, topic, partition=0, offset=0):
    with wire.Connection(broker.bootstrap) as connection:
        fetched = connection.fetch({(topic, partition): offset})[(topic, partition)]
    assert fetched["error_code"] == wire.NONE, fetched
    return wire.parse_record_batches(fetched["records"])


def latest(broker, topic, partition=0):
    with wire.Connection(broker.bootstrap) as connection:
        return connection.latest_offset(topic, partition)


def log_bytes(broker, topic, partition=0):
    """Bytes of the partition's segment files (Kafka's layout on both brokers)."""
    directory = broker.data_dir / f"{topic}-{partition}"
    return sum(path.stat().st_size for path in directory.glob("*.log"))


def consume(broker, topic, count, timeout_s=60):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
    finally:
        consumer.close()
    assert len(messages) == count, f"consumed {len(messages)} of {count}"
    return messages


def json_events(count):
    return [json.dumps({"id": i, "kind": "page_view", "path": f"/products/{i % 50}",
                        "user": f"user-{i % 200}", "ok": True}).encode() for i in range(count)]


def produce_all(broker, topic, values, **config):
    settings = {"bootstrap.servers": broker.bootstrap, "linger.ms": 50}
    settings.update(config)
    producer = Producer(settings)
    errors = []
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=b"k%d" % (i % 10), partition=0,
                         on_delivery=lambda error, _: error and errors.append(error))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]


# ----- compression.type -----

@pytest.mark.timeout(180)
@pytest.mark.parametrize("producer_codec", ["none", "lz4"])
def test_zstd_topic_stores_batches_zstd_compressed(broker, producer_codec):
    # Without preallocation the segment files hold only the stored batches.
    topic = harness.create_topic(broker, harness.unique_topic(f"zstd-{producer_codec}"), 1,
                                 {"compression.type": "zstd", "preallocate": "false"})
    values = json_events(5000)
    produce_all(broker, topic, values, **{"compression.type": producer_codec,
                                          "enable.idempotence": True, "acks": "all"})
    batches = fetch_batches(broker, topic)
    assert batches, "nothing stored"
    assert {b.attributes & CODEC_MASK for b in batches} == {ZSTD}, \
        [b.attributes for b in batches]
    assert all(b.producer_id >= 0 for b in batches), "producer id lost in recompression"
    assert [b.base_offset for b in batches] == sorted(b.base_offset for b in batches)
    assert sum(b.record_count for b in batches) == len(values)
    raw = sum(len(v) for v in values)
    assert log_bytes(broker, topic) < raw / 4, f"{log_bytes(broker, topic)} bytes for {raw}"
    messages = consume(broker, topic, len(values))
    assert [m.value() for m in messages] == values
    assert [m.offset() for m in messages] == list(range(len(values)))
    assert [m.key() for m in messages] == [b"k%d" % (i % 10) for i in range(len(values))]


@pytest.mark.timeout(120)
def test_uncompressed_topic_stores_gzip_batches_uncompressed(broker):
    topic = harness.create_topic(broker, harness.unique_topic("uncompressed"), 1,
                                 {"compression.type": "uncompressed"})
    values = json_events(500)
    produce_all(broker, topic, values, **{"compression.type": "gzip"})
    batches = fetch_batches(broker, topic)
    assert {b.attributes & CODEC_MASK for b in batches} == {0}
    assert [r.value for _, r in wire.records_of(batches)] == values


@pytest.mark.timeout(120)
def test_producer_codec_is_kept_by_default(broker):
    topic = harness.create_topic(broker, harness.unique_topic("producer-codec"), 1)
    produce_all(broker, topic, json_events(300), **{"compression.type": "gzip"})
    assert {b.attributes & CODEC_MASK for b in fetch_batches(broker, topic)} == {GZIP}


@pytest.mark.timeout(120)
def test_recompression_keeps_timestamps_and_offsets(broker):
    topic = harness.create_topic(broker, harness.unique_topic("recompress-ts"), 1,
                                 {"compression.type": "gzip"})
    now = int(time.time() * 1000)
    records = [wire.Record(b"v%d" % i, key=b"k", timestamp=now - 1000 + 10 * i) for i in range(5)]
    with wire.Connection(broker.bootstrap) as connection:
        answer = produce_v8(connection, topic, 0, wire.record_batch(records))
    assert answer["error_code"] == wire.NONE, answer
    [batch] = fetch_batches(broker, topic)
    assert batch.attributes & CODEC_MASK == GZIP
    assert (batch.base_timestamp, batch.max_timestamp) == (now - 1000, now - 960)
    assert [(m.offset(), m.timestamp()[1]) for m in consume(broker, topic, 5)] == \
        [(i, now - 1000 + 10 * i) for i in range(5)]


# ----- min.insync.replicas -----

@pytest.mark.timeout(120)
def test_min_insync_replicas_above_the_replication_factor(broker):
    """Kafka 4 checks acks=all against the *effective* min ISR, min(min.insync.replicas,
    replication factor) (`Partition.effectiveMinIsr`): on a one-replica partition
    `min.insync.replicas=2` refuses nothing, for acks=all, 1 and 0 alike."""
    topic = harness.create_topic(broker, harness.unique_topic("min-isr"), 1,
                                 {"min.insync.replicas": "2"})
    batch = wire.record_batch([wire.Record(b"value", key=b"key")])
    with wire.Connection(broker.bootstrap) as connection:
        for offset, acks in enumerate((-1, 1)):
            answer = produce_v8(connection, topic, 0, batch, acks=acks)
            assert (answer["error_code"], answer["base_offset"]) == (wire.NONE, offset), \
                (acks, answer)
        produce_v8(connection, topic, 0, batch, acks=0)
        harness.wait_until(lambda: connection.latest_offset(topic, 0) == 3, 10,
                           message="acks=0 batch appended")
    produce_all(broker, topic, [b"a", b"b"], acks="all")
    assert latest(broker, topic) == 5


# ----- message.timestamp.type=LogAppendTime -----

@pytest.mark.timeout(120)
def test_log_append_time_stamps_the_batch(broker):
    topic = harness.create_topic(broker, harness.unique_topic("log-append-time"), 1,
                                 {"message.timestamp.type": "LogAppendTime"})
    records = [wire.Record(b"v%d" % i, timestamp=1234 + i) for i in range(3)]
    before = int(time.time() * 1000)
    with wire.Connection(broker.bootstrap) as connection:
        answer = produce_v8(connection, topic, 0, wire.record_batch(records))
    after = int(time.time() * 1000)
    assert answer["error_code"] == wire.NONE, answer
    append_time = answer["log_append_time"]
    assert before - 1000 <= append_time <= after + 1000, (before, append_time, after)
    [batch] = fetch_batches(broker, topic)
    assert batch.attributes & LOG_APPEND_TIME_BIT
    assert batch.max_timestamp == append_time
    messages = consume(broker, topic, 3)
    assert {m.timestamp() for m in messages} == {(TIMESTAMP_LOG_APPEND_TIME, append_time)}
    # A CreateTime topic answers -1.
    plain = harness.create_topic(broker, harness.unique_topic("create-time"), 1)
    with wire.Connection(broker.bootstrap) as connection:
        answer = produce_v8(connection, plain, 0, wire.record_batch(records))
    assert (answer["error_code"], answer["log_append_time"]) == (wire.NONE, -1)


# ----- timestamp bounds (KIP-937) -----

TIMESTAMP_ERROR = re.compile(
    r"Timestamp (-?\d+) of message with offset (\d+) is out of range\. "
    r"The timestamp should be within \[(-?\d+), (-?\d+)\]")


def check_timestamp_refusal(answer, expected, before_ms, after_ms):
    """`expected`: [(batch_index, timestamp)] of the refused records."""
    assert answer["error_code"] == INVALID_TIMESTAMP, answer
    assert answer["error_message"] == \
        "One or more records have been rejected due to invalid timestamp"
    assert [index for index, _ in answer["record_errors"]] == [i for i, _ in expected]
    for (index, message), (_, timestamp) in zip(answer["record_errors"], expected):
        match = TIMESTAMP_ERROR.fullmatch(message)
        assert match, message
        low, high = int(match[3]), int(match[4])
        assert (int(match[1]), int(match[2])) == (timestamp, index)
        assert high - low == before_ms + after_ms, message
        assert abs(high - after_ms - int(time.time() * 1000)) < 60_000


@pytest.mark.timeout(120)
def test_timestamp_bounds_refuse_records_out_of_range(broker):
    hour = 3_600_000
    topic = harness.create_topic(broker, harness.unique_topic("timestamp-bounds"), 1, {
        "message.timestamp.before.max.ms": str(hour),
        "message.timestamp.after.max.ms": str(hour)})
    now = int(time.time() * 1000)
    records = [wire.Record(b"ok", timestamp=now), wire.Record(b"old", timestamp=now - 2 * hour),
               wire.Record(b"ok", timestamp=now - 1000),
               wire.Record(b"future", timestamp=now + 2 * hour)]
    with wire.Connection(broker.bootstrap) as connection:
        answer = produce_v8(connection, topic, 0, wire.record_batch(records))
        check_timestamp_refusal(answer, [(1, now - 2 * hour), (3, now + 2 * hour)], hour, hour)
        assert connection.latest_offset(topic, 0) == 0, "part of a refused batch was appended"
        taken = produce_v8(connection, topic, 0, wire.record_batch([records[0], records[2]]))
        assert (taken["error_code"], taken["base_offset"]) == (wire.NONE, 0), taken


@pytest.mark.timeout(120)
def test_default_after_bound_is_one_hour(broker):
    """Kafka 4's `log.message.timestamp.after.max.ms` default is 3600000; `before` is unbounded."""
    topic = harness.create_topic(broker, harness.unique_topic("timestamp-default"), 1)
    now = int(time.time() * 1000)
    with wire.Connection(broker.bootstrap) as connection:
        old = produce_v8(connection, topic, 0, wire.record_batch([wire.Record(b"x", timestamp=1)]))
        assert old["error_code"] == wire.NONE, old
        future = now + 3 * 3_600_000
        answer = produce_v8(connection, topic, 0,
                            wire.record_batch([wire.Record(b"x", timestamp=future)]))
        check_timestamp_refusal(answer, [(0, future)], (1 << 63) - 1, 3_600_000)
        assert connection.latest_offset(topic, 0) == 1


@pytest.mark.timeout(180)
def test_broker_timestamp_bound_is_the_topic_default(start_broker):
    broker = start_broker(settings={"log.message.timestamp.before.max.ms": "60000"})
    topic = harness.create_topic(broker, harness.unique_topic("timestamp-broker"), 1)
    loose = harness.create_topic(broker, harness.unique_topic("timestamp-topic"), 1,
                                 {"message.timestamp.before.max.ms": "86400000"})
    now = int(time.time() * 1000)
    batch = wire.record_batch([wire.Record(b"x", timestamp=now - 600_000)])
    with wire.Connection(broker.bootstrap) as connection:
        check_timestamp_refusal(produce_v8(connection, topic, 0, batch),
                                [(0, now - 600_000)], 60_000, 3_600_000)
        assert produce_v8(connection, loose, 0, batch)["error_code"] == wire.NONE


# ----- keyless records on a compacted topic -----

@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["compact", "compact,delete"])
def test_keyless_records_refused_on_compacted_topic(broker, policy):
    topic = harness.create_topic(broker, harness.unique_topic("compacted-keys"), 1,
                                 {"cleanup.policy": policy})
    records = [wire.Record(b"keyed", key=b"k"), wire.Record(b"keyless"),
               wire.Record(b"keyed", key=b"k2"), wire.Record(b"keyless")]
    expected = f"Compacted topic cannot accept message without key in topic partition {topic}-0"
    with wire.Connection(broker.bootstrap) as connection:
        answer = produce_v8(connection, topic, 0, wire.record_batch(records))
        assert answer["error_code"] == wire.INVALID_RECORD, answer
        assert answer["base_offset"] == -1
        assert answer["record_errors"] == [(1, expected), (3, expected)]
        assert answer["error_message"] == (
            "One or more records have been rejected due to 2 record errors in total, and only "
            f"showing the first three errors at most: [RecordError(batchIndex=1, "
            f"message='{expected}'), RecordError(batchIndex=3, message='{expected}')]")
        assert connection.latest_offset(topic, 0) == 0, "part of a refused batch was appended"
        keyed = produce_v8(connection, topic, 0, wire.record_batch([records[0], records[2]]))
        assert (keyed["error_code"], keyed["base_offset"]) == (wire.NONE, 0), keyed
    # confluent-kafka sees the error too, for a compressed batch as well.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4",
                         "linger.ms": 20, "retries": 0})
    errors = []
    for _ in range(3):
        producer.produce(topic, value=b"no key", partition=0,
                         on_delivery=lambda error, _: errors.append(error))
    assert producer.flush(30) == 0
    assert errors and all(e is not None and e.code() == KafkaError.INVALID_RECORD for e in errors), \
        errors
    assert latest(broker, topic) == 2


# ----- auto-creation -----

@pytest.mark.timeout(180)
def test_metadata_auto_creates_with_num_partitions(start_broker):
    broker = start_broker(settings={"num.partitions": "3"})
    created, refused = harness.unique_topic("auto-yes"), harness.unique_topic("auto-no")
    with wire.Connection(broker.bootstrap) as connection:
        answer = metadata_v4(connection, [refused], allow_auto_topic_creation=False)
        assert answer == {refused: (wire.UNKNOWN_TOPIC_OR_PARTITION, 0)}
        first = metadata_v4(connection, [created], allow_auto_topic_creation=True)
        # Kafka 4.1 (KRaft) answers the creating request with UNKNOWN_TOPIC_OR_PARTITION while
        # its controller creates the topic (older Kafka: LEADER_NOT_AVAILABLE); Ringtail creates
        # the topic before it answers. Clients retry either way.
        assert first[created][0] in (wire.NONE, wire.UNKNOWN_TOPIC_OR_PARTITION,
                                     LEADER_NOT_AVAILABLE), first
        harness.wait_until(
            lambda: metadata_v4(connection, [created], False) == {created: (wire.NONE, 3)}, 30,
            message="auto-created topic with num.partitions partitions")
        assert metadata_v4(connection, [refused], False) == \
            {refused: (wire.UNKNOWN_TOPIC_OR_PARTITION, 0)}, "refused topic was created"


@pytest.mark.timeout(120)
def test_confluent_consumer_does_not_auto_create(broker):
    """librdkafka's consumer with `allow.auto.create.topics=true` subscribing to a missing topic:
    Apache Kafka 4.1 answers UNKNOWN_TOPIC_OR_PARTITION and creates nothing (librdkafka's
    subscription Metadata does not ask for creation, librdkafka#3395), and so does Ringtail."""
    topic = harness.unique_topic("consumer-auto")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic,
                         "allow.auto.create.topics": True, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not seen:
            message = consumer.poll(0.5)
            if message is not None and message.error():
                seen.append(message.error().code())
    finally:
        consumer.close()
    assert seen == [KafkaError.UNKNOWN_TOPIC_OR_PART], seen
    topics = harness.admin_client(broker).list_topics(timeout=10).topics
    assert topic not in topics


# ----- preallocate -----

def segment_sizes(broker, topic, partition=0):
    directory = broker.data_dir / f"{topic}-{partition}"
    return [path.stat().st_size for path in sorted(directory.glob("*.log"))]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("preallocate", ["true", "false"])
def test_preallocate_extends_the_active_segment_to_segment_bytes(broker, preallocate):
    # Kafka sets a preallocated segment's length to segment.bytes and trims it at the roll;
    # Ringtail writes zeros ahead of the appends, never past segment.bytes, and cuts them at
    # the roll (README, Storage). Without preallocate the file holds the data (Ringtail: plus
    # the zero padding of the last page).
    segment_bytes = 1 << 20
    topic = harness.create_topic(broker, harness.unique_topic(f"prealloc-{preallocate}"), 1,
                                 {"preallocate": preallocate, "segment.bytes": str(segment_bytes),
                                  "compression.type": "producer"})
    value = b"p" * 1000
    produce_all(broker, topic, [value] * 300, acks="all")
    deadline = time.monotonic() + 30
    while True:
        sizes = segment_sizes(broker, topic)
        if preallocate == "false" or sizes == [segment_bytes] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if preallocate == "true":
        assert sizes == [segment_bytes], sizes
    else:
        assert len(sizes) == 1 and 300 * 1000 < sizes[0] < 300 * 1000 + 40_000, sizes
    # Past segment.bytes: the full segment rolls and is trimmed to its batches.
    produce_all(broker, topic, [value] * 1200, acks="all")
    deadline = time.monotonic() + 30
    while True:
        sizes = segment_sizes(broker, topic)
        settled = preallocate == "false" or sizes[-1] == segment_bytes
        if (len(sizes) >= 2 and settled) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(sizes) >= 2, sizes
    assert all(100 * 1000 < size < segment_bytes for size in sizes[:-1]), sizes
    if preallocate == "true":
        assert sizes[-1] == segment_bytes, sizes
    else:
        assert sizes[-1] < segment_bytes, sizes
    assert len(consume(broker, topic, 1500)) == 1500
