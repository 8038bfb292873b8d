"""Operator APIs of issue 9 with real clients: CreatePartitions, DeleteRecords, DescribeLogDirs,
leader epochs with OffsetForLeaderEpoch (KIP-320), ElectLeaders, CreateTopics with manual
assignments and a too high replication factor, KIP-584 features in ApiVersions.

Clients: confluent-kafka's AdminClient, Producer and Consumer; kafka-python's KafkaAdminClient;
for the requests no high-level client exposes (OffsetForLeaderEpoch, Metadata's leader epoch,
ListOffsets with current_leader_epoch, ElectLeaders per-partition answers, ApiVersions
features) kafka-python's protocol classes (its schema-generated encoders) over a plain socket.

Every expectation was checked against a single-node KRaft Kafka 4.1
(RINGTAIL_TEST_TARGET=kafka). Ringtail brokers run with 2 shards, so requests cross shards.
"""

import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewPartitions, NewTopic

import harness
import kafka_wire as wire

# Kafka's error codes.
NONE = 0
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75
ELECTION_NOT_NEEDED = 84

# Kafka 4.1: at every start of a single-node KRaft broker each partition's leader epoch goes up
# by 2 (fenced at shutdown: no leader, +1; registered again: elected, +1).
EPOCH_BUMP_PER_START = 2
SEGMENT_BYTES = 1 << 20  # Kafka 4's minimum segment.bytes


@pytest.fixture
def admin_broker(start_broker):
    return start_broker(shards=2)


# ----- raw requests through kafka-python's protocol classes -----

def call(broker, request_class, response_class, version, **fields):
    """Sends one request (kafka-python's encoder, header included) and decodes the answer."""
    request = request_class[version](**fields)
    request.with_header(correlation_id=1, client_id="test-admin-apis")
    host, port = broker.bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=15) as connection:
        connection.sendall(request.encode(header=True, framed=True))
        size = struct.unpack(">i", _read_exactly(connection, 4))[0]
        frame = _read_exactly(connection, size)
    return response_class[version].decode(struct.pack(">i", size) + frame, header=True,
                                          framed=True)


def _read_exactly(connection, count):
    data = b""
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def leader_epochs(broker, topic):
    from kafka.protocol.metadata.metadata import MetadataRequest, MetadataResponse
    response = call(broker, MetadataRequest, MetadataResponse, 12,
                    topics=[MetadataRequest.MetadataRequestTopic(name=topic, topic_id=None)],
                    allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    (found,) = response.topics
    assert found.error_code == NONE, found
    return {p.partition_index: p.leader_epoch for p in found.partitions}


def offset_for_leader_epoch(broker, topic, partition, leader_epoch, current_leader_epoch=-1):
    """(error_code, leader_epoch, end_offset) from OffsetForLeaderEpoch v4."""
    from kafka.protocol.consumer.offsets import (OffsetForLeaderEpochRequest as Request,
                                                 OffsetForLeaderEpochResponse as Response)
    wanted = Request.OffsetForLeaderTopic.OffsetForLeaderPartition(
        partition=partition, current_leader_epoch=current_leader_epoch, leader_epoch=leader_epoch)
    response = call(broker, Request, Response, 4, replica_id=-1, topics=[
        Request.OffsetForLeaderTopic(topic=topic, partitions=[wanted])])
    (answer,) = response.topics[0].partitions
    return answer.error_code, answer.leader_epoch, answer.end_offset


def list_offsets(broker, topic, partition, timestamp, current_leader_epoch=-1):
    """(error_code, offset, leader_epoch) from ListOffsets v7."""
    from kafka.protocol.consumer.offsets import ListOffsetsRequest, ListOffsetsResponse
    Topic = ListOffsetsRequest.ListOffsetsTopic
    response = call(broker, ListOffsetsRequest, ListOffsetsResponse, 7, replica_id=-1,
                    isolation_level=0, topics=[Topic(name=topic, partitions=[
                        Topic.ListOffsetsPartition(partition_index=partition,
                                                   current_leader_epoch=current_leader_epoch,
                                                   timestamp=timestamp)])])
    (answer,) = response.topics[0].partitions
    return answer.error_code, answer.offset, answer.leader_epoch


def batch_leader_epochs(broker, topic, partition, offset=0):
    """partition_leader_epoch (header bytes 12..16) of every batch fetched from `offset`."""
    with wire.Connection(broker.bootstrap) as connection:
        fetched = connection.fetch({(topic, partition): offset})[(topic, partition)]
    assert fetched["error_code"] == NONE, fetched
    records, epochs = fetched["records"], []
    position = 0
    while position + 61 <= len(records):
        length = struct.unpack_from(">i", records, position + 8)[0]
        epochs.append(struct.unpack_from(">i", records, position + 12)[0])
        position += 12 + length
    return epochs


def delete_records(broker, topic, partition, offset):
    """(error_code, low_watermark) from DeleteRecords v2 (confluent-kafka refuses offset -1)."""
    from kafka.protocol.admin.topics import DeleteRecordsRequest, DeleteRecordsResponse
    Topic = DeleteRecordsRequest.DeleteRecordsTopic
    response = call(broker, DeleteRecordsRequest, DeleteRecordsResponse, 2, timeout_ms=10_000,
                    topics=[Topic(name=topic, partitions=[
                        Topic.DeleteRecordsPartition(partition_index=partition, offset=offset)])])
    (answer,) = response.topics[0].partitions
    return answer.error_code, answer.low_watermark


def produce(broker, topic, partition, count, value_bytes=100):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, value=b"%06d" % i + b"x" * (value_bytes - 6), partition=partition)
    assert producer.flush(60) == 0


def node_id(broker):
    metadata = harness.admin_client(broker).list_topics(timeout=10)
    (broker_id,) = metadata.brokers
    return broker_id


# ----- CreatePartitions -----

def test_create_partitions_then_produce_to_the_new_ones(admin_broker):
    topic = harness.create_topic(admin_broker, harness.unique_topic("grow"), 2)
    admin = harness.admin_client(admin_broker)
    admin.create_partitions([NewPartitions(topic, 5)])[topic].result(30)
    harness.wait_for_partitions(admin_broker, topic, 5)
    for partition in range(5):
        produce(admin_broker, topic, partition, 3)
    read = harness.read_all_confluent(admin_broker, topic, 5, expected_count=15)
    assert {p: len(messages) for p, messages in read.items()} == {p: 3 for p in range(5)}

    def refusal(count, validate_only=False):
        future = admin.create_partitions([NewPartitions(topic, count)],
                                         validate_only=validate_only)[topic]
        with pytest.raises(KafkaException) as raised:
            future.result(30)
        return raised.value.args[0]

    shrink = refusal(3)
    assert shrink.code() == INVALID_PARTITIONS
    assert shrink.str() == f"The topic {topic} currently has 5 partition(s); 3 would not be an increase."
    same = refusal(5)
    assert same.code() == INVALID_PARTITIONS
    assert same.str() == "Topic already has 5 partition(s)."
    admin.create_partitions([NewPartitions(topic, 8)], validate_only=True)[topic].result(30)
    assert len(admin.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 5


def test_create_partitions_with_assignments_kafka_python(admin_broker):
    from kafka.admin import KafkaAdminClient
    from kafka.errors import InvalidReplicationAssignmentError, UnknownTopicOrPartitionError
    topic = harness.create_topic(admin_broker, harness.unique_topic("assign"), 1)
    me = node_id(admin_broker)
    admin = KafkaAdminClient(bootstrap_servers=admin_broker.bootstrap)
    try:
        with pytest.raises(InvalidReplicationAssignmentError):
            admin.create_partitions({topic: {"count": 2, "assignments": [[me + 99]]}})
        admin.create_partitions({topic: {"count": 3, "assignments": [[me], [me]]}})
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.create_partitions({harness.unique_topic("absent"): 2})
    finally:
        admin.close()
    harness.wait_for_partitions(admin_broker, topic, 3)
    produce(admin_broker, topic, 2, 4)
    assert harness.read_all_confluent(admin_broker, topic, 3, expected_count=4)[2]


# ----- DeleteRecords -----

def test_delete_records_then_consume_and_restart(admin_broker):
    topic = harness.create_topic(admin_broker, harness.unique_topic("purge"), 2,
                                 configs={"segment.bytes": str(SEGMENT_BYTES)})
    produce(admin_broker, topic, 0, 300, value_bytes=10_000)  # about 3 segments
    produce(admin_broker, topic, 1, 5)
    admin = harness.admin_client(admin_broker)
    deleted = admin.delete_records([TopicPartition(topic, 0, 250)])
    assert deleted[TopicPartition(topic, 0, 250)].result(30).low_watermark == 250
    assert delete_records(admin_broker, topic, 1, -1) == (NONE, 5), "-1: the high watermark"
    beyond = admin.delete_records([TopicPartition(topic, 1, 6)])[TopicPartition(topic, 1, 6)]
    with pytest.raises(KafkaException) as raised:
        beyond.result(30)
    assert raised.value.args[0].code() == OFFSET_OUT_OF_RANGE

    def check_start():
        assert list_offsets(admin_broker, topic, 0, wire.EARLIEST_TIMESTAMP)[:2] == (NONE, 250)
        with wire.Connection(admin_broker.bootstrap) as connection:
            below = connection.fetch({(topic, 0): 10})[(topic, 0)]
        assert below["error_code"] == OFFSET_OUT_OF_RANGE
        read = harness.read_all_confluent(admin_broker, topic, 2, expected_count=50)
        assert [m.offset() for m in read[0]] == list(range(250, 300))
        assert read[1] == []

    check_start()
    admin_broker.stop()
    admin_broker.start()
    harness.wait_for_partitions(admin_broker, topic, 2)
    check_start()


@pytest.mark.ringtail_only("Kafka writes log-start-offset-checkpoint every "
                           "log.flush.start.offset.checkpoint.interval.ms (60 s) and deletes the "
                           "segments below the start at its next retention check (5 min), "
                           "Ringtail does both before answering")
def test_delete_records_is_checkpointed_in_kafka_format(admin_broker):
    topic = harness.create_topic(admin_broker, harness.unique_topic("checkpoint"), 1,
                                 configs={"segment.bytes": str(SEGMENT_BYTES)})
    produce(admin_broker, topic, 0, 300, value_bytes=10_000)  # about 3 segments
    admin = harness.admin_client(admin_broker)
    deleted = admin.delete_records([TopicPartition(topic, 0, 250)])
    deleted[TopicPartition(topic, 0, 250)].result(30)
    lines = (admin_broker.data_dir / "log-start-offset-checkpoint").read_text().splitlines()
    assert lines[0] == "0" and int(lines[1]) == len(lines) - 2
    assert f"{topic} 0 250" in lines[2:]
    segments = sorted(p.name for p in (admin_broker.data_dir / f"{topic}-0").glob("*.log"))
    assert len(segments) == 1 and segments[0] != "00000000000000000000.log", \
        f"whole segments below the log start offset deleted: {segments}"
    admin_broker.kill()
    admin_broker.start()
    assert list_offsets(admin_broker, topic, 0, wire.EARLIEST_TIMESTAMP)[:2] == (NONE, 250)


# ----- DescribeLogDirs -----

def test_describe_log_dirs_sizes(admin_broker):
    from kafka.admin import KafkaAdminClient
    topic = harness.create_topic(admin_broker, harness.unique_topic("dirs"), 2)
    produce(admin_broker, topic, 0, 200, value_bytes=1000)
    admin = KafkaAdminClient(bootstrap_servers=admin_broker.bootstrap)
    try:
        deadline = time.monotonic() + 30
        while True:  # Kafka counts the segment size once its write is visible
            (answer,) = admin.describe_log_dirs()
            (log_dir,) = answer["log_dirs"]
            sizes = {p["partition_index"]: p for t in log_dir["topics"] if t["name"] == topic
                     for p in t["partitions"]}
            if sizes.get(0, {}).get("partition_size", 0) >= 200_000 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        filtered = admin.describe_log_dirs({topic: [1]})
    finally:
        admin.close()
    assert log_dir["error_code"] == NONE
    assert set(sizes) == {0, 1}
    assert 200 * 1000 <= sizes[0]["partition_size"] < 200 * 1000 * 2, sizes[0]
    assert sizes[1]["partition_size"] == 0
    assert all(p["offset_lag"] == 0 and p["is_future_key"] is False for p in sizes.values())
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]
    (only,) = filtered[0]["log_dirs"]
    assert [(t["name"], [p["partition_index"] for p in t["partitions"]])
            for t in only["topics"]] == [(topic, [1])]


# ----- Leader epochs and OffsetForLeaderEpoch -----

def test_offset_for_leader_epoch_and_epoch_checks(admin_broker):
    topic = harness.create_topic(admin_broker, harness.unique_topic("epochs"), 2)
    produce(admin_broker, topic, 0, 4)
    epoch = leader_epochs(admin_broker, topic)[0]
    assert epoch >= 0
    assert set(batch_leader_epochs(admin_broker, topic, 0)) == {epoch}
    assert offset_for_leader_epoch(admin_broker, topic, 0, epoch) == (NONE, epoch, 4)
    assert offset_for_leader_epoch(admin_broker, topic, 0, epoch, epoch) == (NONE, epoch, 4)
    assert offset_for_leader_epoch(admin_broker, topic, 0, epoch + 1) == (NONE, -1, -1)
    assert offset_for_leader_epoch(admin_broker, topic, 0, -1) == (NONE, -1, -1)
    assert offset_for_leader_epoch(admin_broker, topic, 1, epoch) == (NONE, epoch, 0)
    assert offset_for_leader_epoch(admin_broker, topic, 0, epoch, epoch + 1)[0] == \
        UNKNOWN_LEADER_EPOCH
    assert offset_for_leader_epoch(admin_broker, topic, 9, epoch)[0] == UNKNOWN_TOPIC_OR_PARTITION
    assert list_offsets(admin_broker, topic, 0, wire.LATEST_TIMESTAMP, epoch) == (NONE, 4, epoch)
    assert list_offsets(admin_broker, topic, 0, wire.EARLIEST_TIMESTAMP) == (NONE, 0, epoch)
    assert list_offsets(admin_broker, topic, 0, wire.LATEST_TIMESTAMP, epoch + 1)[0] == \
        UNKNOWN_LEADER_EPOCH
    if epoch > 0:
        assert list_offsets(admin_broker, topic, 0, wire.LATEST_TIMESTAMP, epoch - 1)[0] == \
            FENCED_LEADER_EPOCH


def test_leader_epoch_after_restart(admin_broker):
    topic = harness.create_topic(admin_broker, harness.unique_topic("restart-epoch"), 1)
    assert leader_epochs(admin_broker, topic) == {0: 0}
    produce(admin_broker, topic, 0, 3)
    admin_broker.stop()
    admin_broker.start()
    harness.wait_for_partitions(admin_broker, topic, 1)
    epoch = EPOCH_BUMP_PER_START
    assert leader_epochs(admin_broker, topic) == {0: epoch}
    produce(admin_broker, topic, 0, 2)
    assert batch_leader_epochs(admin_broker, topic, 0) == [0, epoch]
    assert offset_for_leader_epoch(admin_broker, topic, 0, 0) == (NONE, 0, 3)
    assert offset_for_leader_epoch(admin_broker, topic, 0, 1) == (NONE, 0, 3)
    assert offset_for_leader_epoch(admin_broker, topic, 0, epoch) == (NONE, epoch, 5)
    assert offset_for_leader_epoch(admin_broker, topic, 0, 0, 0)[0] == FENCED_LEADER_EPOCH
    checkpoint = (admin_broker.data_dir / f"{topic}-0" / "leader-epoch-checkpoint").read_text()
    assert checkpoint == f"0\n2\n0 0\n{epoch} 3\n"
    # DeleteRecords drops the epochs wholly below the new start: epoch 0 is then below the
    # first entry, answered with the requested epoch and the first entry's start offset.
    admin = harness.admin_client(admin_broker)
    admin.delete_records([TopicPartition(topic, 0, 4)])[TopicPartition(topic, 0, 4)].result(30)
    assert offset_for_leader_epoch(admin_broker, topic, 0, 0) == (NONE, 0, 4)
    assert offset_for_leader_epoch(admin_broker, topic, 0, epoch) == (NONE, epoch, 5)


def test_kafka_python_consumer_resumes_from_an_epoch_stamped_commit(admin_broker):
    """kafka-python (KIP-320) commits the leader epoch with the offset; a new member of the
    group fetches the commit, validates the position with OffsetForLeaderEpoch (the epoch is
    known from Metadata) and reads on from it."""
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata, TopicPartition as KTopicPartition
    topic = harness.create_topic(admin_broker, harness.unique_topic("kip320"), 1)
    produce(admin_broker, topic, 0, 6)
    group = harness.unique_topic("kip320-group")
    partition = KTopicPartition(topic, 0)
    epoch = leader_epochs(admin_broker, topic)[0]

    def consumer():
        return KafkaConsumer(bootstrap_servers=admin_broker.bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="none",
                             consumer_timeout_ms=15_000)

    first = consumer()
    try:
        first.assign([partition])
        first.commit({partition: OffsetAndMetadata(2, "", epoch)})
    finally:
        first.close()
    second = consumer()
    try:
        second.assign([partition])
        records = []
        for record in second:
            records.append(record)
            if record.offset == 5:
                break
        assert [r.offset for r in records] == [2, 3, 4, 5]
        assert {r.leader_epoch for r in records} == {epoch}
        assert second.committed(partition, metadata=True).leader_epoch == epoch
    finally:
        second.close()


# ----- ElectLeaders, CreateTopics -----

def test_elect_leaders_not_needed(admin_broker):
    from kafka.protocol.admin.topics import ElectLeadersRequest, ElectLeadersResponse
    topic = harness.create_topic(admin_broker, harness.unique_topic("elect"), 2)
    Partitions = ElectLeadersRequest.TopicPartitions
    response = call(admin_broker, ElectLeadersRequest, ElectLeadersResponse, 2, election_type=0,
                    topic_partitions=[Partitions(topic=topic, partitions=[0, 1, 7]),
                                      Partitions(topic=harness.unique_topic("none"),
                                                 partitions=[0])],
                    timeout_ms=10_000)
    assert response.error_code == NONE
    codes = {(r.topic, p.partition_id): p.error_code for r in response.replica_election_results
             for p in r.partition_result}
    assert {k: v for k, v in codes.items() if k[0] == topic} == {
        (topic, 0): ELECTION_NOT_NEEDED, (topic, 1): ELECTION_NOT_NEEDED,
        (topic, 7): UNKNOWN_TOPIC_OR_PARTITION}
    assert [v for k, v in codes.items() if k[0] != topic] == [UNKNOWN_TOPIC_OR_PARTITION]


def test_create_topics_replication_factor_and_assignments(admin_broker):
    admin = harness.admin_client(admin_broker)
    me = node_id(admin_broker)
    too_many = harness.unique_topic("rf3")
    future = admin.create_topics([NewTopic(too_many, 1, 3)])[too_many]
    with pytest.raises(KafkaException) as raised:
        future.result(30)
    error = raised.value.args[0]
    assert error.code() == INVALID_REPLICATION_FACTOR
    assert ("The target replication factor of 3 cannot be reached because only 1 broker(s) are "
            "registered") in error.str()
    assigned = harness.unique_topic("assigned")
    admin.create_topics([NewTopic(assigned, 2, replication_factor=-1, replica_assignment=[[me], [me]])])[assigned].result(30)
    harness.wait_for_partitions(admin_broker, assigned, 2)
    elsewhere = harness.unique_topic("elsewhere")
    future = admin.create_topics([NewTopic(elsewhere, 1, replication_factor=-1, replica_assignment=[[me + 7]])])[elsewhere]
    with pytest.raises(KafkaException) as raised:
        future.result(30)
    assert raised.value.args[0].code() == INVALID_REPLICA_ASSIGNMENT


def test_api_versions_features(admin_broker):
    from kafka.protocol.metadata.api_versions import ApiVersionsRequest, ApiVersionsResponse
    response = call(admin_broker, ApiVersionsRequest, ApiVersionsResponse, 4,
                    client_software_name="test", client_software_version="1")
    supported = {f.name: (f.min_version, f.max_version) for f in response.supported_features}
    finalized = {f.name: (f.min_version_level, f.max_version_level)
                 for f in response.finalized_features}
    assert supported["metadata.version"] == (7, 27)
    assert finalized["metadata.version"] == (27, 27)
    assert response.finalized_features_epoch >= 0
    ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert {key: ranges.get(key) for key in (21, 23, 35, 37, 43)} == {
        21: (0, 2), 23: (2, 4), 35: (1, 4), 37: (0, 3), 43: (0, 2)}
