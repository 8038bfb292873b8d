"""Consumer groups and committed offsets with real clients (issue 3).

1. Three confluent-kafka consumers in one group on a 6-partition topic: every partition is
   assigned to exactly one member and together they read every record once.
2. One member is closed, another SIGKILLed (its session times out): the survivors continue from
   the committed offsets, nothing lost, nothing read twice beyond the uncommitted tail.
3. The same with kafka-python, aiokafka and `kcat -G`.
4. cooperative-sticky rebalancing (librdkafka), static membership across a consumer restart.
5. Committed offsets (with metadata) and group state survive a broker SIGKILL and restart.
6. ListGroups/DescribeGroups/DeleteGroups through confluent-kafka's AdminClient.

Groups run on a 2-shard broker so that group requests cross shards (the coordinator of a group
is the shard owning its `__consumer_offsets` partition, not the connection's shard).
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient

import harness
import kafka_wire as wire

PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
GROUP_SETTINGS = {"group.initial.rebalance.delay.ms": "300"}


@pytest.fixture
def group_broker(start_broker):
    return start_broker(shards=2, settings=GROUP_SETTINGS)


def produce(broker, topic, count, start=0):
    """Produces keyed messages `start..start+count` round-robin over the partitions."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(start, start + count):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % PARTITIONS)
    assert producer.flush(60) == 0


def consumer_config(broker, group, **extra):
    config = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 500,
    }
    config.update(extra)
    return config


class PollingConsumers:
    """confluent-kafka consumers of `topic` in one group, each polled by its own thread, which
    records what it reads and its current assignment, and commits each record synchronously."""

    def __init__(self, broker, topic, group, count, **extra):
        self.broker = broker
        self.topic = topic
        self.group = group
        self.records = []  # (member index, partition, offset, value)
        self.assignments = {}
        self.lock = threading.Lock()
        self.threads = []
        for index in range(count):
            self.add(index, **extra)

    def add(self, index, **extra):
        consumer = Consumer(consumer_config(self.broker, self.group, **extra))
        consumer.subscribe([self.topic])
        stop = threading.Event()

        def run():
            while not stop.is_set():
                message = consumer.poll(0.2)
                assigned = sorted(tp.partition for tp in consumer.assignment())
                with self.lock:
                    self.assignments[index] = assigned
                if message is None or message.error():
                    continue
                with self.lock:
                    self.records.append((index, message.partition(), message.offset(),
                                         message.value()))
                try:
                    consumer.commit(message=message, asynchronous=False)
                except KafkaException:
                    pass  # a rebalance revoked the partition; the next owner re-reads
            consumer.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.stop_event = stop
        thread.start()
        self.threads.append(thread)

    def close(self):
        for thread in self.threads:
            thread.stop_event.set()
        for thread in self.threads:
            thread.join(30)

    def snapshot(self):
        with self.lock:
            return list(self.records), {k: list(v) for k, v in self.assignments.items()}


def start_consumers(broker, topic, group, count, **extra):
    return PollingConsumers(broker, topic, group, count, **extra)


def test_three_confluent_consumers_share_six_partitions(group_broker):
    topic = harness.create_topic(group_broker, harness.unique_topic("groups"), PARTITIONS)
    produce(group_broker, topic, 600)
    group = harness.unique_topic("g3")
    consumers = start_consumers(group_broker, topic, group, 3)
    try:
        def settled():
            records, assignments = consumers.snapshot()
            owned = sorted(p for parts in assignments.values() for p in parts)
            return len(records) >= 600 and len(assignments) == 3 and owned == list(range(6))
        harness.wait_until(settled, 90, message="3 members reading all 600 records")
        records, assignments = consumers.snapshot()
        assert all(len(parts) == 2 for parts in assignments.values()), assignments
        seen = [(p, o) for _, p, o, _ in records]
        assert len(seen) == len(set(seen)) == 600, "every record read exactly once"
        # Each partition was read by exactly the member it is assigned to.
        for member, partition, _, _ in records:
            assert partition in assignments[member]
    finally:
        consumers.close()
    admin = AdminClient({"bootstrap.servers": group_broker.bootstrap})
    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    committed = {tp.partition: tp.offset for tp in offsets.topic_partitions}
    assert committed == {p: 100 for p in range(PARTITIONS)}


# ----- test 2 and 3: close one member, SIGKILL another, per client -----

CONFLUENT_MEMBER = """
import signal, sys
from confluent_kafka import Consumer, KafkaException
bootstrap, group, topic = sys.argv[1:4]
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
stopping = []
signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
consumer.subscribe([topic])
while not stopping:
    message = consumer.poll(0.2)
    if message is None or message.error():
        continue
    print(message.partition(), message.offset(), flush=True)
    try:
        consumer.commit(message=message, asynchronous=False)
    except KafkaException:
        print("uncommitted", message.partition(), message.offset(), flush=True)
consumer.close()
"""

KAFKA_PYTHON_MEMBER = """
import signal, sys
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
bootstrap, group, topic = sys.argv[1:4]
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         session_timeout_ms=6000, heartbeat_interval_ms=500)
stopping = []
signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
while not stopping:
    for tp, messages in consumer.poll(timeout_ms=200, max_records=1).items():
        for message in messages:
            print(message.partition, message.offset, flush=True)
            try:
                consumer.commit({tp: OffsetAndMetadata(message.offset + 1, "", -1)})
            except Exception:
                print("uncommitted", message.partition, message.offset, flush=True)
consumer.close()
"""

AIOKAFKA_MEMBER = """
import asyncio, signal, sys
from aiokafka import AIOKafkaConsumer, TopicPartition
bootstrap, group, topic = sys.argv[1:4]
async def main():
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=6000, heartbeat_interval_ms=500)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await consumer.start()
    while not stopping.is_set():
        batches = await consumer.getmany(timeout_ms=200, max_records=1)
        for tp, messages in batches.items():
            for message in messages:
                print(message.partition, message.offset, flush=True)
                try:
                    await consumer.commit({tp: message.offset + 1})
                except Exception:
                    print("uncommitted", message.partition, message.offset, flush=True)
    await consumer.stop()
asyncio.run(main())
"""

# Each member takes one record at a time and commits it before taking the next, so that at a
# rebalance at most one record per partition is read but not yet committed (with larger batches
# the rest of a batch in hand is the uncommitted tail, re-read by the next owner as with Kafka).
MEMBER_SCRIPTS = {
    "confluent": CONFLUENT_MEMBER,
    "kafka-python": KAFKA_PYTHON_MEMBER,
    "aiokafka": AIOKAFKA_MEMBER,
}


class Member:
    """One consumer process that prints `partition offset` per record it reads."""

    def __init__(self, client, broker, group, topic, log_dir):
        self.lines = []
        self.uncommitted = set()  # records whose commit failed (a rebalance was under way)
        self.log = open(log_dir / f"{client}-{len(os.listdir(log_dir))}.stderr", "wb")
        if client == "kcat":
            command = ["kcat", "-q", "-b", broker.bootstrap, "-G", group, topic,
                       "-f", "%p %o\\n", "-X", "auto.offset.reset=earliest", "-u",
                       "-X", f"session.timeout.ms={SESSION_TIMEOUT_MS}",
                       "-X", "heartbeat.interval.ms=500"]
        else:
            command = [sys.executable, "-c", textwrap.dedent(MEMBER_SCRIPTS[client]),
                       broker.bootstrap, group, topic]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log,
                                        stdin=subprocess.DEVNULL)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            parts = line.split()
            if len(parts) == 2:
                self.lines.append((int(parts[0]), int(parts[1])))
            elif len(parts) == 3 and parts[0] == b"uncommitted":
                self.uncommitted.add((int(parts[1]), int(parts[2])))

    def terminate(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.reader.join(10)

    def kill(self):
        self.process.kill()
        self.process.wait(30)
        self.reader.join(10)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", ["confluent", "kafka-python", "aiokafka", "kcat"])
def test_members_leave_and_die_survivors_continue_from_commits(group_broker, client,
                                                               tmp_path):
    topic = harness.create_topic(group_broker, harness.unique_topic(f"fail-{client}"),
                                 PARTITIONS)
    group = harness.unique_topic(f"gf-{client}")
    members = [Member(client, group_broker, group, topic, tmp_path) for _ in range(3)]
    try:
        def read_count():
            return len({r for m in members for r in m.lines})

        def quiet(expected):
            # Everything read, and the commits are done: per record, or by kcat's auto-commit
            # (librdkafka 2.0.2 under kcat 1.7 commits about every 5 s whatever the interval).
            harness.wait_until(lambda: read_count() >= expected, 120,
                               message=f"{expected} records read ({read_count()} so far)")
            time.sleep(6.0 if client == "kcat" else 1.5)

        produce(group_broker, topic, 300)
        quiet(300)
        readers = [m for m in members if m.lines]
        assert len(readers) >= 2, "the partitions are spread over the members"
        members[0].terminate()  # clean close: LeaveGroup
        produce(group_broker, topic, 300, start=300)
        quiet(600)
        members[1].kill()  # no LeaveGroup: the session must time out
        produce(group_broker, topic, 300, start=600)
        quiet(900)
        all_reads = [r for m in members for r in m.lines]
        distinct = set(all_reads)
        assert len(distinct) == 900, f"records lost: read {len(distinct)} of 900"
        expected = {(p, o) for p in range(PARTITIONS) for o in range(150)}
        assert distinct == expected
        # Only the uncommitted tail may be read twice: records whose commit failed during a
        # rebalance, and at most one record per partition of the killed member (read, printed,
        # then killed before its commit).
        uncommitted = set().union(*(m.uncommitted for m in members))
        counts = {}
        for record in all_reads:
            counts[record] = counts.get(record, 0) + 1
        reread = {r for r, n in counts.items() if n > 1} - uncommitted
        where = [(i, sorted(r for r in reread if r in set(m.lines))[:8]) for i, m in enumerate(members)]
        assert len(reread) <= PARTITIONS, f"{len(reread)} committed records read twice: {where}"
        assert all(counts[r] <= 2 for r in reread)
    finally:
        for member in members:
            if member.process.poll() is None:
                member.kill()


# ----- test 4: cooperative-sticky and static membership -----

@pytest.mark.timeout(180)
def test_cooperative_sticky_incremental_rebalance(group_broker):
    topic = harness.create_topic(group_broker, harness.unique_topic("coop"), PARTITIONS)
    produce(group_broker, topic, 600)
    group = harness.unique_topic("gcoop")
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    consumers = start_consumers(group_broker, topic, group, 2, **extra)
    try:
        def owned(expected_members):
            _, assignments = consumers.snapshot()
            parts = sorted(p for v in assignments.values() for p in v)
            return len(assignments) == expected_members and parts == list(range(PARTITIONS))
        harness.wait_until(lambda: owned(2) and len(consumers.snapshot()[0]) >= 600, 90,
                           message="two cooperative members own all partitions")
        _, before = consumers.snapshot()
        consumers.add(2, **extra)
        harness.wait_until(lambda: owned(3) and all(consumers.snapshot()[1].values()), 90,
                           message="the third member gets partitions")
        _, after = consumers.snapshot()
        # Sticky: members keep partitions they had; only moved ones change owner.
        for member in (0, 1):
            assert set(after[member]) <= set(before[member]), (before, after)
        assert sorted(len(v) for v in after.values()) == [2, 2, 2], after
        produce(group_broker, topic, 600, start=600)
        harness.wait_until(lambda: len({(p, o) for _, p, o, _ in consumers.snapshot()[0]})
                           >= 1200, 90, message="all 1200 records read")
    finally:
        consumers.close()


@pytest.mark.timeout(180)
def test_static_member_restart_keeps_assignment_without_rebalance(group_broker):
    topic = harness.create_topic(group_broker, harness.unique_topic("static"), PARTITIONS)
    produce(group_broker, topic, 60)
    group = harness.unique_topic("gstatic")
    config = consumer_config(group_broker, group, **{
        "group.instance.id": "instance-1", "session.timeout.ms": 30000})

    def run_once(expected):
        consumer = Consumer(config)
        consumer.subscribe([topic])
        seen = []
        deadline = time.monotonic() + 60
        while len(seen) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            seen.append((message.partition(), message.offset()))
            consumer.commit(message=message, asynchronous=False)
        member_ids = describe_members(group_broker, group)
        consumer.close()  # a static member does not leave the group
        return seen, member_ids

    first, members_first = run_once(60)
    assert len(first) == 60
    assert [m.group_instance_id for m in members_first] == ["instance-1"]
    produce(group_broker, topic, 60, start=60)
    started = time.monotonic()
    second, members_second = run_once(60)
    # Rejoining replaced the old member id at once: no wait for the 30 s session timeout.
    assert time.monotonic() - started < 20
    assert set(second) == {(p, o) for p in range(PARTITIONS) for o in range(10, 20)}
    assert len(members_second) == 1
    assert members_second[0].member_id != members_first[0].member_id


def describe_members(broker, group):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return description.members


# ----- test 5: broker crash -----

# Right after a start Kafka is still loading __consumer_offsets: OffsetFetch is answered with
# these retriable errors, which librdkafka's committed() hands to the caller.
COORDINATOR_NOT_READY = ("NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS",
                         "COORDINATOR_NOT_AVAILABLE")


def committed_after_restart(consumer, partitions, timeout_s=60):
    """consumer.committed(), retried (bounded) while the coordinator is not ready yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.committed(partitions, timeout=30)
        except KafkaException as error:
            retriable = any(name in str(error) for name in COORDINATOR_NOT_READY)
            if not retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)

@pytest.mark.timeout(180)
def test_offsets_and_group_survive_broker_sigkill(start_broker):
    broker = start_broker(shards=2, settings=GROUP_SETTINGS)
    topic = harness.create_topic(broker, harness.unique_topic("crash"), PARTITIONS)
    produce(broker, topic, 120)
    group = harness.unique_topic("gcrash")
    consumer = Consumer(consumer_config(broker, group))
    consumer.subscribe([topic])
    read = 0
    deadline = time.monotonic() + 60
    while read < 120 and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            read += 1
    assert read == 120
    commits = [TopicPartition(topic, p, 15 + p, metadata=f"meta-{p}", leader_epoch=0)
               for p in range(PARTITIONS)]
    consumer.commit(offsets=commits, asynchronous=False)
    consumer.close()

    broker.kill()
    broker.start()

    consumer = Consumer(consumer_config(broker, group))
    committed = committed_after_restart(consumer, [TopicPartition(topic, p)
                                                   for p in range(PARTITIONS)])
    assert [(tp.partition, tp.offset, tp.metadata) for tp in committed] == \
        [(p, 15 + p, f"meta-{p}") for p in range(PARTITIONS)]
    consumer.subscribe([topic])
    seen = set()
    deadline = time.monotonic() + 60
    expected = {(p, o) for p in range(PARTITIONS) for o in range(15 + p, 20)}
    while seen != expected and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            seen.add((message.partition(), message.offset()))
    consumer.close()
    assert seen == expected, "the new member resumes exactly at the committed offsets"

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = {g.group_id: g for g in admin.list_consumer_groups().result(timeout=30).valid}
    assert group in listed


# ----- test 6: AdminClient -----

@pytest.mark.timeout(180)
def test_admin_list_describe_delete_groups(group_broker):
    from confluent_kafka import ConsumerGroupState
    topic = harness.create_topic(group_broker, harness.unique_topic("admin"), PARTITIONS)
    produce(group_broker, topic, 30)
    groups = [harness.unique_topic(f"ga{i}") for i in range(4)]
    consumers = []
    for group in groups:
        consumer = Consumer(consumer_config(group_broker, group, **{"client.id": "admin-test"}))
        consumer.subscribe([topic])
        consumers.append(consumer)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(c.assignment() for c in consumers):
        for consumer in consumers:
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                consumer.commit(message=message, asynchronous=False)
    assert all(c.assignment() for c in consumers)

    admin = AdminClient({"bootstrap.servers": group_broker.bootstrap})
    listed = admin.list_consumer_groups().result(timeout=30)
    states = {g.group_id: g.state for g in listed.valid}
    for group in groups:
        assert states.get(group) == ConsumerGroupState.STABLE, states
    stable_only = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(timeout=30)
    assert not set(groups) & {g.group_id for g in stable_only.valid}

    described = admin.describe_consumer_groups(groups)
    for group in groups:
        description = described[group].result(timeout=30)
        assert description.state == ConsumerGroupState.STABLE
        assert description.partition_assignor == "range"
        assert len(description.members) == 1
        member = description.members[0]
        assert member.client_id == "admin-test"
        assert member.host.endswith("127.0.0.1")
        assigned = sorted(tp.partition for tp in member.assignment.topic_partitions)
        assert assigned == list(range(PARTITIONS))

    # A group with members cannot be deleted.
    with pytest.raises(KafkaException) as raised:
        admin.delete_consumer_groups([groups[0]])[groups[0]].result(timeout=30)
    assert "NON_EMPTY_GROUP" in str(raised.value) or "not empty" in str(raised.value)

    consumers[0].close()
    consumers[1].close()
    harness.wait_until(
        lambda: admin.describe_consumer_groups([groups[0]])[groups[0]].result(timeout=30).state
        == ConsumerGroupState.EMPTY, 30, message="group empty after close")
    results = admin.delete_consumer_groups([groups[0], groups[1]])
    for group in groups[:2]:
        results[group].result(timeout=30)
    listed = {g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid}
    assert groups[0] not in listed and groups[1] not in listed
    assert groups[2] in listed
    gone = admin.describe_consumer_groups([groups[0]])[groups[0]].result(timeout=30)
    assert gone.state == ConsumerGroupState.DEAD
    with pytest.raises(KafkaException) as missing:
        admin.delete_consumer_groups(["no-such-group"])["no-such-group"].result(timeout=30)
    assert "GROUP_ID_NOT_FOUND" in str(missing.value) or "does not exist" in str(missing.value)
    for consumer in consumers[2:]:
        consumer.close()


def test_commit_to_unknown_topic_or_partition_is_rejected(group_broker):
    topic = harness.create_topic(group_broker, harness.unique_topic("known"), 2)
    consumer = Consumer(consumer_config(group_broker, harness.unique_topic("gunknown")))
    try:
        result = consumer.commit(offsets=[TopicPartition(topic, 0, 5),
                                          TopicPartition(topic, 7, 5),
                                          TopicPartition("no-such-topic-here", 0, 5)],
                                 asynchronous=False)
        errors = {(tp.topic, tp.partition): tp.error for tp in result}
        assert errors[(topic, 0)] is None
        for key in [(topic, 7), ("no-such-topic-here", 0)]:
            assert errors[key] is not None and "UNKNOWN_TOPIC" in errors[key].name(), errors
    except KafkaException as error:
        # librdkafka may raise the first partition error instead of returning it.
        assert "UNKNOWN_TOPIC" in str(error)
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=30)
    assert committed[0].offset == 5
    consumer.close()


@pytest.mark.timeout(240)
@pytest.mark.ringtail_only("Ringtail's log lines, replay counts and cleaner files of "
                           "__consumer_offsets compacted while it runs")
def test_consumer_offsets_compacted(start_broker):
    """12,000 commits of 6 offsets: the log cleaner compacts the partition log (64 KiB
    segments) down to the live offsets while the broker runs, and a crash afterwards replays
    only the compacted log."""
    import re
    broker = start_broker(shards=2, settings={**GROUP_SETTINGS,
                                              "offsets.topic.segment.bytes": "65536",
                                              "log.cleaner.backoff.ms": "100"})
    topic = harness.create_topic(broker, harness.unique_topic("compact"), PARTITIONS)
    group = harness.unique_topic("gcompact")
    consumer = Consumer(consumer_config(broker, group))
    rounds = 2000  # 12,000 offset records in one __consumer_offsets partition

    def committed():
        reader = Consumer(consumer_config(broker, group))
        offsets = reader.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                   timeout=30)
        reader.close()
        return [tp.offset for tp in offsets]

    for i in range(rounds):
        consumer.commit(offsets=[TopicPartition(topic, p, i * 10 + p) for p in range(PARTITIONS)],
                        asynchronous=False)
    consumer.close()
    # The log is written asynchronously: wait for the line rather than read it once.
    harness.wait_until(lambda: re.search(r"cleaned log.*__consumer_offsets|"
                                         r"__consumer_offsets.*cleaned log",
                                         broker.log_text()), 30,
                       message="compaction while the broker runs")
    last = [(rounds - 1) * 10 + p for p in range(PARTITIONS)]
    assert committed() == last
    broker.kill()
    broker.start()
    # A shard serves as soon as it is loaded; "listening" is logged once every shard is.
    harness.wait_until(lambda: "ringtail listening" in broker.log_text().split("start #2")[-1],
                       30, message="every shard loaded")
    replayed = [int(n) for n in re.findall(r"records=(\d+)",
                                           broker.log_text().split("start #2")[-1])]
    assert replayed and max(replayed) < 10_000, replayed
    assert not list(broker.data_dir.glob("__consumer_offsets-*/*.cleaned"))
    assert not list(broker.data_dir.glob("__consumer_offsets-*/*.swap"))
    assert committed() == last




def test_consumer_offsets_listed_as_internal(group_broker):
    """Kafka creates __consumer_offsets (offsets.topic.num.partitions = 50) when a group first
    needs a coordinator; from then on Metadata describes it when named and lists it, marked
    internal, among all topics (clients such as the Java AdminClient filter it out)."""
    broker = group_broker
    topic = harness.create_topic(broker, harness.unique_topic("named"), 1)
    consumer = Consumer(consumer_config(broker, harness.unique_topic("gnamed")))
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    named = admin.list_topics(topic="__consumer_offsets", timeout=10).topics["__consumer_offsets"]
    assert named.error is None
    assert len(named.partitions) == 50
    again = admin.list_topics(topic="__consumer_offsets", timeout=10).topics["__consumer_offsets"]
    assert sorted(again.partitions) == sorted(named.partitions)
    with wire.Connection(broker.bootstrap) as connection:
        [described] = connection.metadata(["__consumer_offsets"])["topics"]
        assert described["error_code"] == wire.NONE and described["is_internal"] is True
        listed = {t["name"]: t for t in connection.metadata(None)["topics"]}
    assert topic in listed and listed[topic]["is_internal"] is False
    assert "__consumer_offsets" in listed, "all-topics Metadata lacks __consumer_offsets"
    assert listed["__consumer_offsets"]["is_internal"] is True
    assert len(listed["__consumer_offsets"]["partitions"]) == 50
