"""Thread-per-core (issue 2, test 7): with --shards 2 an 8-partition topic is spread over both
shards (as recorded in ringtail-metadata.json), and produce/fetch of all 8 partitions works from
a connection accepted on shard 0 and from one accepted on shard 1."""

import re
import time

import pytest

import harness
import kafka_wire as wire
from kafka_wire import Record

PARTITIONS = 8
MAX_CONNECTIONS = 64

pytestmark = pytest.mark.skipif(harness.available_cpus() < 2, reason="needs 2 CPUs for 2 shards")


def shard_of_connection(broker, local_port, timeout_s=5.0):
    """The shard the broker logged for the connection from our `local_port`."""
    pattern = re.compile(
        rf"accepted connection from 127\.0\.0\.1:{local_port} on shard (\d+)\b")

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = pattern.search(broker.log_text())
        if match:
            return int(match.group(1))
        time.sleep(0.05)
    raise AssertionError(
        f"no 'accepted connection from 127.0.0.1:{local_port} on shard N' line in the log")


def connections_on_both_shards(broker):
    """Opens connections until one was accepted on shard 0 and one on shard 1; closes the rest.

    Kafka has no shards (RINGTAIL_TEST_TARGET=kafka): two connections stand in for them, so the
    tests built on this still check what Kafka does for two connections."""
    if harness.TARGET == "kafka":
        by_shard = {}
        for shard in (0, 1):
            connection = wire.Connection(broker.bootstrap)
            error_code, _ = connection.api_versions(version=0)
            assert error_code == wire.NONE
            by_shard[shard] = connection
        return by_shard
    by_shard = {}
    extra = []
    for _ in range(MAX_CONNECTIONS):
        connection = wire.Connection(broker.bootstrap)
        error_code, _ = connection.api_versions(version=0)  # accepted and served
        assert error_code == wire.NONE
        shard = shard_of_connection(broker, connection.local_port())
        assert shard in (0, 1), f"connection accepted on shard {shard} of a 2-shard broker"
        if shard in by_shard:
            extra.append(connection)
        else:
            by_shard[shard] = connection
        if len(by_shard) == 2:
            break
    for connection in extra:
        connection.close()
    assert sorted(by_shard) == [0, 1], \
        f"{MAX_CONNECTIONS} connections were all accepted on shard(s) {sorted(by_shard)}"
    return by_shard


@pytest.mark.timeout(180)
@pytest.mark.ringtail_only("thread-per-core shard placement: ringtail-metadata.json and the "
                           "per-shard 'accepted connection' log lines")
def test_eight_partitions_over_two_shards(start_broker):
    broker = start_broker(shards=2)
    topic = harness.create_topic(broker, harness.unique_topic("shards"), PARTITIONS)

    # The partition -> shard map is persisted and uses both shards.
    def topic_entry():
        if not broker.metadata_file().exists():
            return None
        for entry in broker.metadata()["topics"]:
            if entry["name"] == topic:
                return entry
        return None

    entry = harness.wait_until(topic_entry, 10, message=f"{topic} in ringtail-metadata.json")
    placement = {p["partition"]: p["shard"] for p in entry["partitions"]}
    assert sorted(placement) == list(range(PARTITIONS)), placement
    assert set(placement.values()) == {0, 1}, f"partitions not on both shards: {placement}"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                        entry["topic_id"]), entry["topic_id"]

    by_shard = connections_on_both_shards(broker)
    try:
        # Metadata from either shard: all 8 partitions, each led by the one broker.
        for shard, connection in by_shard.items():
            metadata = connection.metadata([topic])
            [broker_entry] = metadata["brokers"]
            assert (broker_entry["host"], broker_entry["port"]) == ("127.0.0.1", broker.port)
            [topic_metadata] = metadata["topics"]
            assert topic_metadata["error_code"] == wire.NONE
            partitions = {p["partition"]: p for p in topic_metadata["partitions"]}
            assert sorted(partitions) == list(range(PARTITIONS))
            assert all(p["leader"] == broker_entry["node_id"] and p["error_code"] == wire.NONE
                       for p in partitions.values()), f"shard {shard}: {partitions}"

        # Produce to all 8 partitions from each shard's connection, in one request each.
        expected = {p: [] for p in range(PARTITIONS)}
        timestamp = int(time.time() * 1000)
        for shard, connection in sorted(by_shard.items()):
            batches = {}
            for partition in range(PARTITIONS):
                records = [Record(f"from shard {shard} to {partition} #{i}".encode(),
                                  key=f"{shard}-{partition}".encode(),
                                  headers=[("shard", str(shard).encode())],
                                  timestamp=timestamp + i) for i in range(3)]
                batches[partition] = wire.record_batch(records)
                first_offset = len(expected[partition])
                expected[partition].extend(
                    (first_offset + i, record) for i, record in enumerate(records))
            result = connection.produce({topic: batches})
            assert result == {(topic, p): (wire.NONE, len(expected[p]) - 3)
                              for p in range(PARTITIONS)}, f"produce via shard {shard}: {result}"

        # Fetch all 8 partitions from each connection: both see every record.
        for shard, connection in sorted(by_shard.items()):
            fetched = connection.fetch({(topic, p): 0 for p in range(PARTITIONS)})
            for partition in range(PARTITIONS):
                answer = fetched[(topic, partition)]
                assert answer["error_code"] == wire.NONE, (shard, partition, answer)
                assert answer["high_watermark"] == len(expected[partition])
                records = wire.records_of(wire.parse_record_batches(answer["records"]))
                assert records == expected[partition], \
                    f"fetch of partition {partition} via shard {shard}"
            # ListOffsets latest through this shard agrees.
            latest = connection.list_offsets(
                {(topic, p): wire.LATEST_TIMESTAMP for p in range(PARTITIONS)})
            assert {tp[1]: answer[2] for tp, answer in latest.items()} == \
                {p: len(expected[p]) for p in range(PARTITIONS)}
    finally:
        for connection in by_shard.values():
            connection.close()


@pytest.mark.timeout(120)
def test_pipelined_requests_are_answered_in_order(start_broker):
    """Kafka answers requests on one connection in the order they were sent, also when a slow
    one (acks=-1 produce to partitions of both shards, a long-poll fetch) comes before fast ones
    (ApiVersions)."""
    broker = start_broker(shards=2)
    topic = harness.create_topic(broker, harness.unique_topic("pipeline"), PARTITIONS)
    for shard, connection in connections_on_both_shards(broker).items():
        with connection:
            produce_body = wire.string(None) + wire.int16(-1) + wire.int32(30000) + wire.array(
                [topic], lambda name: wire.string(name) + wire.array(
                    list(range(PARTITIONS)), lambda p: wire.int32(p) + wire.bytes_(
                        wire.record_batch([Record(b"pipelined %d" % p)]))))
            fetch_at_end_body = (wire.int32(-1) + wire.int32(300) + wire.int32(1_000_000)
                                 + wire.int32(1 << 20) + wire.int8(0) + wire.array(
                                     [topic], lambda name: wire.string(name) + wire.array(
                                         [0], lambda p: wire.int32(p) + wire.int64(0)
                                         + wire.int32(1 << 20))))
            requests = [
                (wire.PRODUCE, 3, produce_body),
                (wire.API_VERSIONS, 0, b""),
                (wire.FETCH, 4, fetch_at_end_body),
                (wire.API_VERSIONS, 1, b""),
                (wire.METADATA, 1, wire.array([topic], wire.string)),
                (wire.LIST_OFFSETS, 1, wire.int32(-1) + wire.array(
                    [topic], lambda name: wire.string(name) + wire.array(
                        list(range(PARTITIONS)), lambda p: wire.int32(p) + wire.int64(-1)))),
                (wire.API_VERSIONS, 2, b""),
            ]
            first_id = connection.correlation_id + 1
            connection.send_raw(b"".join(connection.request_bytes(key, version, body)
                                         for key, version, body in requests))
            answered = [wire.Reader(connection.recv_frame()).int32() for _ in requests]
            assert answered == list(range(first_id, first_id + len(requests))), \
                f"responses out of order on a shard-{shard} connection"
