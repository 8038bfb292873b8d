"""KIP-848 smoke test (issue 15): confluent-kafka consumers with `group.protocol=consumer`.

1. Three consumers split a 6-partition topic: the broker's uniform assignor gives each two
   partitions, together they read every record once, and ConsumerGroupDescribe (AdminClient
   `describe_consumer_groups`) shows a Stable consumer group with three members.
2. Committed offsets and the group survive a broker SIGKILL: after the restart a new member
   of the same group continues after the committed offsets and the group epoch has not gone
   back (the group state was replayed from `__consumer_offsets`).

The full KIP-848 suite is tests/test_consumer_group_protocol.py (k848tests); this file only
checks that the protocol works end to end. Runs against Kafka 4.1 too.
"""

import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import harness

PARTITIONS = 6
RECORDS = 60


def produce(broker, topic, count, start=0):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(start, start + count):
        producer.produce(topic, value=b"v%d" % i, partition=i % PARTITIONS)
    assert producer.flush(60) == 0


def consumer(broker, group):
    return Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })


def poll_until(consumers, done, timeout_s):
    """Polls every consumer in turn until `done(read)` holds; returns what each read."""
    read = [[] for _ in consumers]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done(read):
        for index, c in enumerate(consumers):
            message = c.poll(0.2)
            if message is not None and message.error() is None:
                read[index].append((message.partition(), message.offset(), message.value()))
    return read


def wait_for_assignments(consumers, expected_total, timeout_s=60, read=None, balanced=False):
    """Polls until the assignments cover `expected_total` partitions, every consumer holding
    some (and, when `balanced`, no two holding counts more than one apart: while a member still
    reconciles, the union can be complete but uneven, e.g. [[0, 1, 2], [3, 4], [5]] before the
    first member revokes partition 2); records polled meanwhile go to `read` (one list per
    consumer) when given."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for index, c in enumerate(consumers):
            message = c.poll(0.1)
            if read is not None and message is not None and message.error() is None:
                read[index].append((message.partition(), message.offset(), message.value()))
        assignments = [sorted(tp.partition for tp in c.assignment()) for c in consumers]
        sizes = [len(a) for a in assignments]
        even = not balanced or max(sizes) - min(sizes) <= 1
        if sum(sizes) == expected_total and all(assignments) and even:
            return assignments
    raise AssertionError(f"no complete assignment within {timeout_s}s: "
                         f"{[sorted(tp.partition for tp in c.assignment()) for c in consumers]}")


def describe(broker, group):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    return admin.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=30)


def test_three_consumers_split_six_partitions(start_broker):
    broker = start_broker(shards=2)
    topic, group = "k848-split", "k848-split-group"
    harness.create_topic(broker, topic, PARTITIONS)
    produce(broker, topic, RECORDS)
    consumers = [consumer(broker, group) for _ in range(3)]
    try:
        for c in consumers:
            c.subscribe([topic])
        # Records polled while the assignment settles count too: a member may fetch from its
        # first partitions before the others are assigned.
        early = [[] for _ in consumers]
        assignments = wait_for_assignments(consumers, PARTITIONS, read=early, balanced=True)
        assert [len(a) for a in assignments] == [2, 2, 2], assignments
        assert sorted(p for a in assignments for p in a) == list(range(PARTITIONS))
        expected = {b"v%d" % i for i in range(RECORDS)}
        read = poll_until(
            consumers,
            lambda r: {v for m in early + r for (_, _, v) in m} >= expected, 60)
        values = {v for member in early + read for (_, _, v) in member}
        assert values == expected, "every record read"
        for index, member in enumerate(read):
            assert {p for (p, _, _) in member} <= set(assignments[index])
        description = describe(broker, group)
        assert description.state == ConsumerGroupState.STABLE, description.state
        assert len(description.members) == 3
        described = sorted(sorted(tp.partition for tp in m.assignment.topic_partitions)
                           for m in description.members)
        assert described == sorted(assignments)
    finally:
        for c in consumers:
            c.close()


@pytest.mark.timeout(240)
def test_offsets_and_group_survive_sigkill(start_broker):
    """The member stays open across the crash: after the restart the replayed group still
    knows it (same member id and assignment), it keeps consuming after its committed offsets
    without reading a committed record again."""
    broker = start_broker(shards=2)
    topic, group = "k848-crash", "k848-crash-group"
    harness.create_topic(broker, topic, PARTITIONS)
    produce(broker, topic, RECORDS)
    member = consumer(broker, group)
    try:
        member.subscribe([topic])
        wait_for_assignments([member], PARTITIONS)
        read = poll_until([member], lambda r: len(r[0]) >= RECORDS // 2, 60)[0]
        last = {}
        for partition, offset, _ in read:
            last[partition] = max(last.get(partition, -1), offset)
        committed = [TopicPartition(topic, p, o + 1) for p, o in sorted(last.items())]
        member.commit(offsets=committed, asynchronous=False)
        before = describe(broker, group)
        assert len(before.members) == 1
        broker.kill()
        broker.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                after = describe(broker, group)
                break
            except Exception:  # the coordinator may still be loading
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert [m.member_id for m in after.members] == [m.member_id for m in before.members]
        assert (sorted(tp.partition for tp in after.members[0].assignment.topic_partitions)
                == list(range(PARTITIONS)))
        fetched = member.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                   timeout=30)
        got = {tp.partition: tp.offset for tp in fetched if tp.offset >= 0}
        assert got == {p: o + 1 for p, o in last.items()}, got
        remaining = RECORDS - len(read)
        rest = poll_until([member], lambda r: len(r[0]) >= remaining, 90)[0]
        for partition, offset, _ in rest:
            assert offset > last.get(partition, -1), "re-read a committed record"
        values = sorted(v for (_, _, v) in read + rest)
        assert values == sorted(b"v%d" % i for i in range(RECORDS))
    finally:
        member.close()
