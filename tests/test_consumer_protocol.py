"""The KIP-848 consumer group protocol (`group.protocol=consumer`) with real clients (issue 15).

confluent-kafka (librdkafka) consumers with `group.protocol=consumer`: the broker computes the
assignment (server-side assignors `uniform`, the default, and `range`) and members learn it from
their ConsumerGroupHeartbeat. The protocol refuses the classic settings
(`partition.assignment.strategy`, `session.timeout.ms`, `heartbeat.interval.ms`), so none are set
here; the broker's `group.consumer.heartbeat.interval.ms` is lowered to 1 s (its minimum with
it) so that members learn a new target assignment within a second, as on Kafka with the same
settings.

1. uniform: three members split six partitions 2/2/2, disjoint, all covered.
2. A member leaves (close): the others take its partitions over while they keep consuming their
   own -- no partition of a survivor is revoked and their records keep arriving (no
   stop-the-world pause as in the classic eager protocol).
3. range (`group.remote.assignor=range`): per topic contiguous ranges, co-partitioned.
4. Regex subscription (`^prefix-.*`): a topic created later is picked up.
5. Static membership (`group.instance.id`): a restarted member gets its partitions back, the
   other member's assignment does not move.
6. Committed offsets and the group survive a broker SIGKILL and restart; a new member resumes
   at the committed offsets.
7. Classic and consumer groups on one broker at once.
8. AdminClient list_consumer_groups / describe_consumer_groups show type CONSUMER.
9. ConsumerGroupHeartbeat and OffsetCommit v9 errors over the raw wire (FENCED_MEMBER_EPOCH,
   UNKNOWN_MEMBER_ID, UNSUPPORTED_ASSIGNOR, STALE_MEMBER_EPOCH, INVALID_REQUEST), as Kafka 4.1
   answers them.

Every expectation was checked against Apache Kafka 4.1.2 (RINGTAIL_TEST_TARGET=kafka).
"""

import threading
import time
import uuid

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupType, KafkaError,
                             KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient

import harness
import kafka_wire as wire

# Broker settings (Kafka's names): members heartbeat every second instead of every 5 s.
SETTINGS = {
    "group.consumer.heartbeat.interval.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "1000",
}
HEARTBEAT_INTERVAL_MS = 1000
SETTLE_TIMEOUT_S = 45

# Kafka's error codes (org.apache.kafka.common.protocol.Errors).
UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42
GROUP_ID_NOT_FOUND = 69
FENCED_MEMBER_EPOCH = 110
UNSUPPORTED_ASSIGNOR = 112
STALE_MEMBER_EPOCH = 113

CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69
OFFSET_COMMIT = 8


@pytest.fixture
def cp_broker(start_broker):
    """Two Ringtail shards, so that a group's coordinator and its partitions need not share one."""
    return start_broker(shards=2, settings=SETTINGS)


def produce(broker, topic, partitions, per_partition, start=0):
    """`per_partition` records to each partition; value `p<partition>-<index>`."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for index in range(start, start + per_partition):
        for partition in range(partitions):
            producer.produce(topic, value=f"p{partition}-{index}".encode(), partition=partition)
    assert producer.flush(60) == 0, "every record delivered"


class Member:
    """One confluent-kafka consumer with `group.protocol=consumer`, polled by its own thread.

    Records what it reads (arrival time, topic, partition, offset), its assignment after each
    poll and every rebalance callback with its time; commits synchronously after each batch and
    before giving partitions away (Kafka's documented pattern)."""

    def __init__(self, broker, group, topics, name, **extra):
        self.name = name
        self.config = {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
        self.config.update(extra)
        self.lock = threading.Lock()
        self.records = []      # (monotonic time, topic, partition, offset)
        self.events = []       # (monotonic time, "assign" | "revoke" | "lost", {(topic, p)})
        self.assignment = set()
        self.errors = []
        self.failure = None
        self.stop_event = threading.Event()
        self.closed = threading.Event()
        self.consumer = Consumer(self.config)
        self.consumer.subscribe(list(topics), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        self.thread = threading.Thread(target=self._run, name=f"member-{name}", daemon=True)
        self.thread.start()

    def _event(self, kind, partitions):
        with self.lock:
            self.events.append((time.monotonic(), kind,
                                {(tp.topic, tp.partition) for tp in partitions}))

    def _on_assign(self, consumer, partitions):
        self._event("assign", partitions)

    def _on_revoke(self, consumer, partitions):
        self._event("revoke", partitions)
        if partitions:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as error:
                self.errors.append(f"commit on revoke: {error}")

    def _on_lost(self, consumer, partitions):
        self._event("lost", partitions)

    def _run(self):
        try:
            while not self.stop_event.is_set():
                messages = self.consumer.consume(num_messages=500, timeout=0.1)
                now = time.monotonic()
                got = []
                for message in messages:
                    if message.error():
                        self.errors.append(str(message.error()))
                        continue
                    got.append((now, message.topic(), message.partition(), message.offset()))
                assignment = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
                with self.lock:
                    self.records.extend(got)
                    self.assignment = assignment
                if got:
                    try:
                        self.consumer.commit(asynchronous=False)
                    except KafkaException as error:
                        # e.g. a partition revoked meanwhile; the next owner re-reads from the
                        # last commit.
                        self.errors.append(f"commit: {error}")
            self.consumer.close()
        except Exception as error:  # reported by the tests through `check()`
            self.failure = error
        finally:
            self.closed.set()

    def close(self, timeout_s=30):
        self.stop_event.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"member {self.name} did not close in {timeout_s}s"
        self.check()

    def check(self):
        assert self.failure is None, f"member {self.name} failed: {self.failure!r}"

    def owned(self):
        with self.lock:
            return set(self.assignment)

    def partitions(self, topic=None):
        return sorted(p for t, p in self.owned() if topic is None or t == topic)

    def read(self):
        """{(topic, partition, offset)} read so far."""
        with self.lock:
            return {(t, p, o) for _, t, p, o in self.records}

    def records_snapshot(self):
        with self.lock:
            return list(self.records)

    def events_snapshot(self):
        with self.lock:
            return list(self.events)


def close_all(members):
    for member in members:
        if not member.closed.is_set():
            member.stop_event.set()
    for member in members:
        member.thread.join(30)


def wait_for_split(members, expected_total, timeout_s=SETTLE_TIMEOUT_S, sizes=None):
    """Waits until the members' assignments are disjoint, cover `expected_total` partitions and,
    if given, have `sizes` (sorted); returns them as a list of sets."""
    seen = []

    def settled():
        seen[:] = [member.owned() for member in members]
        for member in members:
            member.check()
        union = set().union(*seen)
        if len(union) != expected_total or sum(len(s) for s in seen) != expected_total:
            return False
        return sizes is None or sorted(len(s) for s in seen) == sorted(sizes)

    try:
        harness.wait_until(settled, timeout_s, interval_s=0.1)
    except AssertionError:
        raise AssertionError(
            f"assignment not settled in {timeout_s}s: "
            + ", ".join(f"{m.name}={sorted(s)}" for m, s in zip(members, seen))) from None
    return seen


def describe(broker, group):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    return admin.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=40)


def describe_when(broker, group, predicate, timeout_s=30):
    """describe_consumer_groups until `predicate(description)` holds (the assignment a member
    reports reaches the describe answer at the member's next heartbeat)."""
    found = []

    def ok():
        found[:] = [describe(broker, group)]
        return predicate(found[0])

    try:
        harness.wait_until(ok, timeout_s, interval_s=0.5)
    except AssertionError:
        raise AssertionError(f"describe of {group} never matched: {found and found[0]}") from None
    return found[0]


def member_partitions(description):
    """{client_id: {(topic, partition)}} from a ConsumerGroupDescription."""
    return {m.client_id: {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions}
            for m in description.members}


# ----- 1. uniform -----

@pytest.mark.timeout(300)
def test_uniform_assignor_splits_six_partitions_two_each(cp_broker):
    topic = harness.create_topic(cp_broker, harness.unique_topic("cp-uniform"), 6)
    produce(cp_broker, topic, 6, 50)
    group = harness.unique_topic("cpg-uniform")
    members = [Member(cp_broker, group, [topic], f"m{i}") for i in range(3)]
    try:
        split = wait_for_split(members, 6, sizes=[2, 2, 2])
        assert set().union(*split) == {(topic, p) for p in range(6)}
        expected = {(topic, p, o) for p in range(6) for o in range(50)}
        harness.wait_until(lambda: set().union(*(m.read() for m in members)) >= expected, 30,
                           message="every record read by some member")
        description = describe_when(
            cp_broker, group,
            lambda d: sorted(len(s) for s in member_partitions(d).values()) == [2, 2, 2])
        assert description.type == ConsumerGroupType.CONSUMER
        assert description.state == ConsumerGroupState.STABLE
        assert description.partition_assignor == "uniform"
        assert not description.is_simple_consumer_group
        by_client = member_partitions(description)
        assert by_client == {m.name: m.owned() for m in members}
    finally:
        close_all(members)
    for member in members:
        member.check()


# ----- 2. a member leaves without a stop-the-world pause -----

class PacedProducer(threading.Thread):
    """Produces `rate_per_s` records per second per partition until stopped."""

    def __init__(self, broker, topic, partitions, rate_per_s):
        super().__init__(name="paced-producer", daemon=True)
        self.producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                                  "linger.ms": 2})
        self.topic = topic
        self.partitions = partitions
        self.interval_s = 1.0 / rate_per_s
        self.stop_event = threading.Event()
        self.sent = 0
        self.failure = None

    def run(self):
        try:
            while not self.stop_event.is_set():
                for partition in range(self.partitions):
                    self.producer.produce(self.topic, value=b"x%d" % self.sent,
                                          partition=partition)
                self.sent += 1
                self.producer.poll(0)
                time.sleep(self.interval_s)
            self.producer.flush(10)  # what is left undelivered does not matter here
        except Exception as error:
            self.failure = error


def max_gap(times, start, end):
    """The longest stretch without an arrival inside [start, end]."""
    points = [start] + sorted(t for t in times if start <= t <= end) + [end]
    return max(b - a for a, b in zip(points, points[1:]))


@pytest.mark.timeout(300)
def test_member_leaves_others_take_over_while_consuming(cp_broker):
    topic = harness.create_topic(cp_broker, harness.unique_topic("cp-leave"), 6)
    group = harness.unique_topic("cpg-leave")
    producer = PacedProducer(cp_broker, topic, 6, rate_per_s=40)
    producer.start()
    members = [Member(cp_broker, group, [topic], f"m{i}") for i in range(3)]
    try:
        before = wait_for_split(members, 6, sizes=[2, 2, 2])
        # Every member is consuming its two partitions.
        stable_at = time.monotonic()
        harness.wait_until(
            lambda: all({(t, p) for at, t, p, _ in m.records_snapshot() if at > stable_at}
                        == m.owned() for m in members), 20,
            message="each member receiving records on both its partitions")
        leaver, survivors = members[2], members[:2]
        leaver_partitions = before[2]
        time.sleep(1.5)
        closed_at = time.monotonic()
        leaver.close()
        after = wait_for_split(survivors, 6, sizes=[3, 3])
        taken_over_at = time.monotonic()
        # The survivors read on after the takeover, on old and new partitions.
        time.sleep(2.0)
        end = time.monotonic()
        for member, owned_before, owned_after in zip(survivors, before, after):
            assert owned_before < owned_after, (
                f"{member.name} kept {sorted(owned_before)} and gained some of the leaver's "
                f"{sorted(leaver_partitions)}: has {sorted(owned_after)}")
            revoked = [e for e in member.events_snapshot()
                       if e[0] >= stable_at and e[1] in ("revoke", "lost") and e[2]]
            assert not revoked, f"{member.name} had partitions revoked: {revoked}"
            records = member.records_snapshot()
            for partition in owned_before:
                times = [at for at, t, p, _ in records if (t, p) == partition]
                gap = max_gap(times, closed_at - 1.0, end)
                assert gap < 2.5, (
                    f"{member.name}: {partition} paused {gap:.2f}s around the takeover "
                    f"(close at {closed_at - stable_at:.2f}s, takeover after "
                    f"{taken_over_at - closed_at:.2f}s)")
            for partition in owned_after - owned_before:
                assert any(at > closed_at and (t, p) == partition for at, t, p, _ in records), (
                    f"{member.name} took {partition} over but read nothing from it")
        print(f"takeover {taken_over_at - closed_at:.2f}s after close")
    finally:
        producer.stop_event.set()
        producer.join(40)
        close_all(members)
    assert producer.failure is None, producer.failure
    for member in members:
        member.check()


# ----- 3. range -----

@pytest.mark.timeout(300)
def test_range_assignor_gives_co_partitioned_ranges(cp_broker):
    topics = [harness.create_topic(cp_broker, harness.unique_topic(f"cp-range{i}"), 3)
              for i in range(2)]
    group = harness.unique_topic("cpg-range")
    members = [Member(cp_broker, group, topics, f"m{i}", **{"group.remote.assignor": "range"})
               for i in range(2)]
    try:
        # Range assigns each topic on its own: 3 partitions over 2 members is 2 + 1 per topic,
        # and the member with the extra partition gets it in both topics (uniform: 3 + 3).
        split = wait_for_split(members, 6, sizes=[2, 4])
        for owned in split:
            per_topic = [sorted(p for t, p in owned if t == topic) for topic in topics]
            assert per_topic[0] == per_topic[1], f"co-partitioned: {sorted(owned)}"
            ranges = per_topic[0]
            assert ranges == list(range(ranges[0], ranges[0] + len(ranges))), \
                f"a contiguous range: {ranges}"
        description = describe_when(
            cp_broker, group,
            lambda d: sorted(len(s) for s in member_partitions(d).values()) == [2, 4])
        assert description.partition_assignor == "range"
        assert description.type == ConsumerGroupType.CONSUMER
    finally:
        close_all(members)
    for member in members:
        member.check()


# ----- 4. regex -----

@pytest.mark.timeout(300)
def test_regex_subscription_picks_up_a_topic_created_later(cp_broker):
    prefix = f"cpre-{uuid.uuid4().hex[:8]}"
    first = harness.create_topic(cp_broker, f"{prefix}-a", 2)
    other = harness.create_topic(cp_broker, f"x{prefix}-b", 2)  # does not match ^prefix-
    produce(cp_broker, first, 2, 5)
    produce(cp_broker, other, 2, 5)
    group = harness.unique_topic("cpg-regex")
    member = Member(cp_broker, group, [f"^{prefix}-.*"], "regex")
    try:
        harness.wait_until(lambda: member.owned() == {(first, 0), (first, 1)}, SETTLE_TIMEOUT_S,
                           message=f"{first} assigned (have {member.owned()})")
        harness.wait_until(lambda: len(member.read()) >= 10, 30, message="10 records of a")
        later = harness.create_topic(cp_broker, f"{prefix}-c", 3)
        produce(cp_broker, later, 3, 4)
        expected = {(first, p) for p in range(2)} | {(later, p) for p in range(3)}
        harness.wait_until(lambda: member.owned() == expected, 90,
                           message=f"{later} picked up (have {sorted(member.owned())})")
        harness.wait_until(lambda: {(t, p, o) for t, p, o in member.read() if t == later}
                           == {(later, p, o) for p in range(3) for o in range(4)}, 30,
                           message=f"the records of {later}")
        assert all(t != other for t, _, _ in member.read()), "nothing read from the other topic"
        description = describe_when(
            cp_broker, group, lambda d: member_partitions(d).get("regex") == expected)
        assert description.type == ConsumerGroupType.CONSUMER
    finally:
        close_all([member])
    member.check()


# ----- 5. static membership -----

@pytest.mark.timeout(300)
def test_static_member_restart_keeps_its_assignment(cp_broker):
    topic = harness.create_topic(cp_broker, harness.unique_topic("cp-static"), 4)
    produce(cp_broker, topic, 4, 10)
    group = harness.unique_topic("cpg-static")
    a = Member(cp_broker, group, [topic], "a", **{"group.instance.id": "instance-a"})
    b = Member(cp_broker, group, [topic], "b", **{"group.instance.id": "instance-b"})
    members = [a, b]
    try:
        owned_a, owned_b = wait_for_split(members, 4, sizes=[2, 2])
        expected = {(topic, p, o) for p in range(4) for o in range(10)}
        harness.wait_until(lambda: a.read() | b.read() >= expected, 30,
                           message="the first 40 records read")
        first = describe_when(cp_broker, group, lambda d: len(d.members) == 2 and all(
            len(m.assignment.topic_partitions) == 2 for m in d.members))
        instance_of = {m.client_id: m.group_instance_id for m in first.members}
        assert instance_of == {"a": "instance-a", "b": "instance-b"}
        settled_at = time.monotonic()
        a.close()  # a static member leaves with epoch -2: the group keeps its assignment
        produce(cp_broker, topic, 4, 10, start=10)
        restarted = Member(cp_broker, group, [topic], "a2", **{"group.instance.id": "instance-a"})
        members.append(restarted)
        harness.wait_until(lambda: restarted.owned() == owned_a, 30,
                           message=f"the restarted member gets {sorted(owned_a)} back "
                                   f"(has {sorted(restarted.owned())})")
        # It resumes at the committed offsets: the records produced while it was away, only.
        new = {(topic, p, o) for (_, p) in owned_a for o in range(10, 20)}
        harness.wait_until(lambda: restarted.read() >= new, 30, message="records since restart")
        assert restarted.read() == new, "resumed exactly at the committed offsets"
        time.sleep(2 * HEARTBEAT_INTERVAL_MS / 1000)
        assert b.owned() == owned_b
        moved = [e for e in b.events_snapshot() if e[0] >= settled_at and e[2]]
        assert not moved, f"the other member's assignment moved: {moved}"
        after = describe_when(cp_broker, group, lambda d: len(d.members) == 2 and all(
            len(m.assignment.topic_partitions) == 2 for m in d.members))
        assert {m.client_id: m.group_instance_id for m in after.members} == \
            {"a2": "instance-a", "b": "instance-b"}
        assert member_partitions(after)["a2"] == owned_a
    finally:
        close_all(members)
    for member in members:
        member.check()


# ----- 6. broker SIGKILL -----

# Right after a start the coordinator may still load __consumer_offsets: Kafka answers these
# retriable errors (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR).
COORDINATOR_NOT_READY = (14, 15, 16)
OFFSET_FETCH = 9


def committed_offsets(broker, group, topic, partitions, timeout_s=60):
    """{partition: committed offset} by OffsetFetch v1 on a raw connection, retried (bounded)
    while the coordinator is not ready. (The raw wire, not librdkafka's AdminClient: right after
    a Kafka restart, confluent-kafka 2.16's admin calls crashed the test process with SIGSEGV.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with wire.Connection(broker.bootstrap) as connection:
                body = wire.string(group) + wire.array([topic], lambda name: wire.string(name)
                                                       + wire.array(list(range(partitions)),
                                                                    wire.int32))
                response = connection.request(OFFSET_FETCH, 1, body)
                answers = response.array(lambda r: (r.string(), r.array(
                    lambda q: (q.int32(), q.int64(), q.string(), q.int16()))))
                response.expect_end("OffsetFetch v1 response")
        except (ConnectionError, OSError) as error:
            answers, last = None, error
        if answers is not None:
            ((name, parts),) = answers
            assert name == topic
            errors = {error for _, _, _, error in parts}
            if errors <= {wire.NONE}:
                return {partition: offset for partition, offset, _, _ in parts}
            assert errors <= set(COORDINATOR_NOT_READY) | {wire.NONE}, f"OffsetFetch: {parts}"
            last = errors
        if time.monotonic() > deadline:
            raise AssertionError(f"OffsetFetch of {group} not answered in {timeout_s}s: {last}")
        time.sleep(0.5)


def described_on_the_wire(broker, group, timeout_s=60):
    """ConsumerGroupDescribe of one group on a raw connection, retried while the coordinator is
    not ready."""
    deadline = time.monotonic() + timeout_s
    while True:
        with wire.Connection(broker.bootstrap) as connection:
            (described,) = consumer_group_describe(connection, [group])
        if described["error_code"] not in COORDINATOR_NOT_READY:
            return described
        if time.monotonic() > deadline:
            raise AssertionError(f"ConsumerGroupDescribe of {group}: {described}")
        time.sleep(0.5)


@pytest.mark.timeout(600)
def test_offsets_and_group_survive_broker_sigkill(cp_broker):
    broker = cp_broker
    topic = harness.create_topic(broker, harness.unique_topic("cp-crash"), 2)
    produce(broker, topic, 2, 25)
    group = harness.unique_topic("cpg-crash")
    member = Member(broker, group, [topic], "before-crash")
    try:
        first = {(topic, p, o) for p in range(2) for o in range(25)}
        harness.wait_until(lambda: member.read() >= first, SETTLE_TIMEOUT_S,
                           message="the first 50 records")
        harness.wait_until(lambda: committed_offsets(broker, group, topic, 2) == {0: 25, 1: 25},
                           20, interval_s=0.3, message="offsets 25/25 committed")
    finally:
        # librdkafka 2.16's consumer-protocol member does not heartbeat again after its
        # coordinator was SIGKILLed and restarted (seen on Kafka 4.1.2: the member's session
        # expires), so the member leaves before the crash.
        close_all([member])
    member.check()
    broker.kill()
    broker.start()
    print("sigkill test: killed and restarted", flush=True)
    assert committed_offsets(broker, group, topic, 2) == {0: 25, 1: 25}, \
        "committed offsets survive SIGKILL"
    described = described_on_the_wire(broker, group)
    assert (described["error_code"], described["group_state"], described["members"]) == \
        (wire.NONE, "Empty", []), f"the group survives as an empty consumer group: {described}"
    print("sigkill test: offsets and group checked after the restart", flush=True)
    # A new member starts at the committed offsets and commits on.
    produce(broker, topic, 2, 5, start=25)
    fresh = Member(broker, group, [topic], "after-crash")
    try:
        expected = {(topic, p, o) for p in range(2) for o in range(25, 30)}
        harness.wait_until(lambda: fresh.read() >= expected, SETTLE_TIMEOUT_S,
                           message="a new member reads from the committed offsets")
        assert fresh.read() == expected
        harness.wait_until(lambda: committed_offsets(broker, group, topic, 2) == {0: 30, 1: 30},
                           30, interval_s=0.3, message="offsets 30/30 committed after restart")
        harness.wait_until(lambda: [(m["client_id"], m["assignment"]) for m in
                                    described_on_the_wire(broker, group)["members"]] ==
                           [("after-crash", {(topic, 0), (topic, 1)})], 30, interval_s=0.5,
                           message="the new member described with both partitions")
    finally:
        close_all([fresh])
    fresh.check()


# ----- 7. classic and consumer groups together -----

class ClassicMember(Member):
    """The same, with the classic protocol (JoinGroup/SyncGroup, client-side assignor)."""

    def __init__(self, broker, group, topics, name, **extra):
        super().__init__(broker, group, topics, name, **{
            "group.protocol": "classic", "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500, **extra})


@pytest.mark.timeout(300)
def test_classic_and_consumer_groups_on_one_broker(cp_broker):
    topic = harness.create_topic(cp_broker, harness.unique_topic("cp-mixed"), 4)
    produce(cp_broker, topic, 4, 20)
    classic_group = harness.unique_topic("cpg-classic")
    consumer_group = harness.unique_topic("cpg-consumer")
    members = [ClassicMember(cp_broker, classic_group, [topic], f"c{i}") for i in range(2)]
    members += [Member(cp_broker, consumer_group, [topic], f"n{i}") for i in range(2)]
    try:
        wait_for_split(members[:2], 4, sizes=[2, 2])
        wait_for_split(members[2:], 4, sizes=[2, 2])
        expected = {(topic, p, o) for p in range(4) for o in range(20)}
        for pair in (members[:2], members[2:]):
            harness.wait_until(lambda: pair[0].read() | pair[1].read() >= expected, 30,
                               message="each group reads every record")
        admin = AdminClient({"bootstrap.servers": cp_broker.bootstrap})
        listed = admin.list_consumer_groups(request_timeout=30).result(timeout=40)
        types = {g.group_id: g.type for g in listed.valid}
        assert types.get(classic_group) == ConsumerGroupType.CLASSIC, types
        assert types.get(consumer_group) == ConsumerGroupType.CONSUMER, types
        classic = describe(cp_broker, classic_group)
        assert classic.type == ConsumerGroupType.CLASSIC
        assert classic.partition_assignor == "range"  # librdkafka's default: range,roundrobin
        consumer = describe(cp_broker, consumer_group)
        assert consumer.type == ConsumerGroupType.CONSUMER
        assert consumer.partition_assignor == "uniform"
        # More records reach both groups.
        produce(cp_broker, topic, 4, 5, start=20)
        more = {(topic, p, o) for p in range(4) for o in range(20, 25)}
        for pair in (members[:2], members[2:]):
            harness.wait_until(lambda: pair[0].read() | pair[1].read() >= more, 30,
                               message="each group reads the new records")
    finally:
        close_all(members)
    for member in members:
        member.check()


# ----- 8. AdminClient -----

@pytest.mark.timeout(300)
def test_admin_lists_and_describes_a_consumer_group(cp_broker):
    topic = harness.create_topic(cp_broker, harness.unique_topic("cp-admin"), 3)
    produce(cp_broker, topic, 3, 4)
    group = harness.unique_topic("cpg-admin")
    member = Member(cp_broker, group, [topic], "admin-member")
    try:
        harness.wait_until(lambda: len(member.owned()) == 3, SETTLE_TIMEOUT_S,
                           message="three partitions assigned")
        description = describe_when(
            cp_broker, group, lambda d: len(d.members) == 1
            and len(d.members[0].assignment.topic_partitions) == 3)
        assert description.group_id == group
        assert description.type == ConsumerGroupType.CONSUMER
        assert description.state == ConsumerGroupState.STABLE
        assert description.partition_assignor == "uniform"
        assert description.coordinator is not None and description.coordinator.id >= 0
        (described,) = description.members
        assert described.client_id == "admin-member"
        assert described.member_id, "a member id"
        assert described.host, "the client host"
        assert described.group_instance_id is None
        assert {(tp.topic, tp.partition) for tp in described.assignment.topic_partitions} == \
            {(topic, p) for p in range(3)}
        assert described.target_assignment is not None, \
            "ConsumerGroupDescribe gives the target assignment"
        assert {(tp.topic, tp.partition)
                for tp in described.target_assignment.topic_partitions} == \
            {(topic, p) for p in range(3)}

        admin = AdminClient({"bootstrap.servers": cp_broker.bootstrap})
        only_consumer = admin.list_consumer_groups(
            request_timeout=30, types={ConsumerGroupType.CONSUMER}).result(timeout=40)
        assert group in {g.group_id for g in only_consumer.valid}
        assert all(g.type == ConsumerGroupType.CONSUMER for g in only_consumer.valid)
        only_classic = admin.list_consumer_groups(
            request_timeout=30, types={ConsumerGroupType.CLASSIC}).result(timeout=40)
        assert group not in {g.group_id for g in only_classic.valid}
        stable = admin.list_consumer_groups(
            request_timeout=30, states={ConsumerGroupState.STABLE}).result(timeout=40)
        assert group in {g.group_id for g in stable.valid}
    finally:
        close_all([member])
    member.check()
    empty = describe_when(cp_broker, group, lambda d: not d.members)
    assert empty.state == ConsumerGroupState.EMPTY
    assert empty.type == ConsumerGroupType.CONSUMER


# ----- 9. errors over the raw wire -----

def heartbeat_body(group, member_id, member_epoch, topics=None, regex=None, assignor=None,
                   rebalance_timeout_ms=-1, instance_id=None, owned=None, version=1):
    """ConsumerGroupHeartbeat request v0/v1 (flexible). `owned` is the TopicPartitions array
    ([(topic_id bytes, [partitions])]) or None (unchanged)."""
    body = wire.compact_string(group) + wire.compact_string(member_id)
    body += wire.int32(member_epoch)
    body += wire.compact_string(instance_id) + wire.compact_string(None)  # rack_id
    body += wire.int32(rebalance_timeout_ms)
    body += compact_array(topics, wire.compact_string)
    if version >= 1:
        body += wire.compact_string(regex)
    body += wire.compact_string(assignor)
    body += compact_array(owned, lambda tp: tp[0] + compact_array(tp[1], wire.int32)
                          + wire.EMPTY_TAGGED_FIELDS)
    return body + wire.EMPTY_TAGGED_FIELDS


def compact_array(items, encode):
    if items is None:
        return wire.unsigned_varint(0)
    return wire.unsigned_varint(len(items) + 1) + b"".join(encode(item) for item in items)


def read_compact_string(reader):
    length = reader.unsigned_varint()
    return None if length == 0 else reader.take(length - 1).decode()


def read_compact_array(reader, decode):
    count = reader.unsigned_varint()
    return None if count == 0 else [decode(reader) for _ in range(count - 1)]


def skip_tags(reader):
    for _ in range(reader.unsigned_varint()):
        reader.unsigned_varint()
        reader.take(reader.unsigned_varint())


def heartbeat(connection, version=1, **fields):
    """Sends one ConsumerGroupHeartbeat; returns the response as a dict."""
    response = connection.request(CONSUMER_GROUP_HEARTBEAT, version,
                                  heartbeat_body(version=version, **fields),
                                  flexible_header=True, flexible_response_header=True)
    answer = {"throttle_time_ms": response.int32(), "error_code": response.int16(),
              "error_message": read_compact_string(response),
              "member_id": read_compact_string(response), "member_epoch": response.int32(),
              "heartbeat_interval_ms": response.int32()}
    present = response.int8()  # nullable struct: -1 null, 1 present
    answer["assignment"] = None
    if present == 1:
        answer["assignment"] = read_compact_array(response, lambda r: (
            r.take(16), read_compact_array(r, wire.Reader.int32), skip_tags(r))[:2])
        skip_tags(response)
    skip_tags(response)
    response.expect_end("ConsumerGroupHeartbeat response")
    return answer


def offset_commit_v9(connection, group, member_id, member_epoch, topic, partition, offset):
    """OffsetCommit v9 (flexible) for one partition; returns its error code."""
    body = wire.compact_string(group) + wire.int32(member_epoch)
    body += wire.compact_string(member_id) + wire.compact_string(None)  # group_instance_id
    body += compact_array([topic], lambda name: wire.compact_string(name) + compact_array(
        [partition], lambda p: wire.int32(p) + wire.int64(offset) + wire.int32(-1)
        + wire.compact_string(None) + wire.EMPTY_TAGGED_FIELDS) + wire.EMPTY_TAGGED_FIELDS)
    body += wire.EMPTY_TAGGED_FIELDS
    response = connection.request(OFFSET_COMMIT, 9, body, flexible_header=True,
                                  flexible_response_header=True)
    response.int32()  # throttle_time_ms
    topics = read_compact_array(response, lambda r: (read_compact_string(r), read_compact_array(
        r, lambda q: (q.int32(), q.int16(), skip_tags(q))[:2]), skip_tags(r))[:2])
    skip_tags(response)
    response.expect_end("OffsetCommit v9 response")
    ((name, ((index, error_code),)),) = topics
    assert (name, index) == (topic, partition)
    return error_code


def consumer_group_describe(connection, groups, version=1):
    """ConsumerGroupDescribe v0/v1 (flexible); returns one dict per group."""
    body = compact_array(groups, wire.compact_string) + wire.int8(0) + wire.EMPTY_TAGGED_FIELDS
    response = connection.request(CONSUMER_GROUP_DESCRIBE, version, body, flexible_header=True,
                                  flexible_response_header=True)
    response.int32()  # throttle_time_ms

    def assignment(r):
        topics = read_compact_array(r, lambda t: (t.take(16), read_compact_string(t),
                                                   read_compact_array(t, wire.Reader.int32),
                                                   skip_tags(t))[:3])
        skip_tags(r)
        return {(name, p) for _, name, partitions in topics or [] for p in partitions or []}

    def member(r):
        out = {"member_id": read_compact_string(r), "instance_id": read_compact_string(r),
               "rack_id": read_compact_string(r), "member_epoch": r.int32(),
               "client_id": read_compact_string(r), "client_host": read_compact_string(r),
               "subscribed_topic_names": read_compact_array(r, read_compact_string),
               "subscribed_topic_regex": read_compact_string(r),
               "assignment": assignment(r), "target_assignment": assignment(r)}
        if version >= 1:
            out["member_type"] = r.int8()
        skip_tags(r)
        return out

    def group(r):
        out = {"error_code": r.int16(), "error_message": read_compact_string(r),
               "group_id": read_compact_string(r), "group_state": read_compact_string(r),
               "group_epoch": r.int32(), "assignment_epoch": r.int32(),
               "assignor_name": read_compact_string(r),
               "members": read_compact_array(r, member), "authorized_operations": r.int32()}
        skip_tags(r)
        return out

    described = read_compact_array(response, group)
    skip_tags(response)
    response.expect_end("ConsumerGroupDescribe response")
    return described


def join(connection, group, topic, **extra):
    fields = {"group": group, "member_id": uuid.uuid4().hex, "member_epoch": 0,
              "topics": [topic], "rebalance_timeout_ms": 30000, "owned": []}
    fields.update(extra)
    return fields["member_id"], heartbeat(connection, **fields)


@pytest.mark.timeout(300)
def test_consumer_group_apis_are_advertised(cp_broker):
    with wire.Connection(cp_broker.bootstrap) as connection:
        error_code, versions = connection.api_versions(version=3)
    assert error_code == wire.NONE
    assert versions.get(CONSUMER_GROUP_HEARTBEAT) == (0, 1)
    assert versions.get(CONSUMER_GROUP_DESCRIBE) == (0, 1)
    assert versions.get(OFFSET_COMMIT, (0, 0))[1] >= 9


@pytest.mark.timeout(300)
def test_heartbeat_errors_over_the_wire(cp_broker):
    topic = harness.create_topic(cp_broker, harness.unique_topic("cp-wire"), 2)
    group = harness.unique_topic("cpg-wire")
    with wire.Connection(cp_broker.bootstrap) as connection:
        member_id, joined = join(connection, group, topic)
        assert joined["error_code"] == wire.NONE, joined
        assert joined["member_id"] == member_id, "v1: the client's member id is kept (KIP-1082)"
        assert joined["member_epoch"] >= 1
        assert joined["heartbeat_interval_ms"] == HEARTBEAT_INTERVAL_MS
        epoch = joined["member_epoch"]

        # The assignment arrives with a heartbeat at the member's epoch (it may take one more).
        def assigned():
            answer = heartbeat(connection, group=group, member_id=member_id, member_epoch=epoch)
            assert answer["error_code"] == wire.NONE, answer
            return answer if answer["assignment"] is not None else None
        if joined["assignment"] is None:
            joined = harness.wait_until(assigned, 10, interval_s=0.2, message="an assignment")
        epoch = joined["member_epoch"]
        ((_topic_id, partitions),) = joined["assignment"]
        assert sorted(partitions) == [0, 1]

        # A member epoch ahead of the coordinator's is fenced.
        fenced = heartbeat(connection, group=group, member_id=member_id, member_epoch=epoch + 5)
        assert fenced["error_code"] == FENCED_MEMBER_EPOCH, fenced
        assert fenced["error_message"], "Kafka explains the fencing"
        # A member id the group does not know.
        unknown = heartbeat(connection, group=group, member_id=uuid.uuid4().hex,
                            member_epoch=epoch)
        assert unknown["error_code"] == UNKNOWN_MEMBER_ID, unknown
        # An assignor the broker does not have (group.consumer.assignors: uniform, range).
        _, bad_assignor = join(connection, group, topic, assignor="no-such-assignor")
        assert bad_assignor["error_code"] == UNSUPPORTED_ASSIGNOR, bad_assignor
        # Malformed joins: v1 needs a client-generated member id; a first heartbeat names its
        # rebalance timeout and subscription and owns nothing yet.
        _, no_member_id = join(connection, group, topic, member_id="")
        assert no_member_id["error_code"] == INVALID_REQUEST, no_member_id
        _, no_timeout = join(connection, group, topic, rebalance_timeout_ms=-1)
        assert no_timeout["error_code"] == INVALID_REQUEST, no_timeout
        _, no_subscription = join(connection, group, topic, topics=None)
        assert no_subscription["error_code"] == INVALID_REQUEST, no_subscription

        # ConsumerGroupDescribe shows the member as the coordinator knows it.
        (described,) = consumer_group_describe(connection, [group])
        assert (described["error_code"], described["group_id"]) == (wire.NONE, group), described
        assert described["assignor_name"] == "uniform"
        assert described["group_epoch"] >= 1 and described["assignment_epoch"] >= 1
        (member,) = described["members"]
        assert member["member_id"] == member_id and member["member_epoch"] == epoch, member
        assert member["subscribed_topic_names"] == [topic]
        assert member["target_assignment"] == {(topic, 0), (topic, 1)}, member
        assert member["member_type"] == 1, "a consumer-protocol member (KIP-1099)"

        # OffsetCommit v9 checks the member epoch of a consumer group (KIP-848).
        assert offset_commit_v9(connection, group, member_id, epoch, topic, 0, 7) == wire.NONE
        assert offset_commit_v9(connection, group, member_id, epoch + 1, topic, 0, 8) == \
            STALE_MEMBER_EPOCH
        assert offset_commit_v9(connection, group, uuid.uuid4().hex, epoch, topic, 0, 8) == \
            UNKNOWN_MEMBER_ID

        # Leaving (epoch -1) is answered with epoch -1; the member is then unknown.
        left = heartbeat(connection, group=group, member_id=member_id, member_epoch=-1)
        assert (left["error_code"], left["member_epoch"]) == (wire.NONE, -1), left
        gone = heartbeat(connection, group=group, member_id=member_id, member_epoch=epoch)
        assert gone["error_code"] == UNKNOWN_MEMBER_ID, gone
        (empty,) = consumer_group_describe(connection, [group])
        assert (empty["error_code"], empty["group_state"], empty["members"]) == \
            (wire.NONE, "Empty", []), empty
        (missing,) = consumer_group_describe(connection, [harness.unique_topic("no-such-group")])
        assert missing["error_code"] == GROUP_ID_NOT_FOUND, missing


# ----- the consumer protocol turned off -----

UNSUPPORTED_VERSION = 35


@pytest.mark.timeout(300)
def test_consumer_protocol_off_when_rebalance_protocols_leave_it_out(start_broker):
    """`group.coordinator.rebalance.protocols=classic`: ConsumerGroupHeartbeat and
    ConsumerGroupDescribe answer UNSUPPORTED_VERSION (Kafka's `KafkaApis`
    `isConsumerGroupProtocolEnabled`), a confluent-kafka consumer with group.protocol=consumer
    gets an error, and classic groups still work."""
    broker = start_broker(settings={"group.coordinator.rebalance.protocols": "classic"})
    topic = harness.create_topic(broker, harness.unique_topic("cp-off"), 1)
    group = harness.unique_topic("cpg-off")
    with wire.Connection(broker.bootstrap) as connection:
        _, answer = join(connection, group, topic)
        assert answer["error_code"] == UNSUPPORTED_VERSION, answer
        (described,) = consumer_group_describe(connection, [group])
        assert described["error_code"] == UNSUPPORTED_VERSION, described

    errors = []
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "group.protocol": "consumer", "error_cb": errors.append,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        failure = None
        while failure is None and time.monotonic() < deadline:
            try:
                message = consumer.poll(0.5)
                if message is not None and message.error() is not None:
                    failure = message.error()
            except KafkaException as raised:
                failure = raised.args[0]
            if errors:
                failure = errors[0]
        assert failure is not None, "the consumer protocol must be refused"
        # librdkafka raises it as a fatal error naming the heartbeat's UNSUPPORTED_VERSION.
        assert failure.code() in (KafkaError.UNSUPPORTED_VERSION, KafkaError._FATAL), failure
        assert "ConsumerGroupHeartbeat" in failure.str() \
            and "API version not supported" in failure.str(), failure
    finally:
        consumer.close()

    classic = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group + "-classic",
                        "auto.offset.reset": "earliest"})
    try:
        classic.subscribe([topic])
        harness.wait_until(lambda: classic.poll(0.2) is None and len(classic.assignment()) == 1,
                           60, message="a classic group member gets the partition")
    finally:
        classic.close()
