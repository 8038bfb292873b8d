"""ACLs (issue 11): Kafka's StandardAuthorizer, CreateAcls / DescribeAcls / DeleteAcls with
confluent-kafka's and kafka-python's admin clients, and the checks the APIs make.

The clients here connect over PLAINTEXT, so their principal is `User:ANONYMOUS`. A Kafka node
(RINGTAIL_TEST_TARGET=kafka) authorizes its own controller connections with ACLs too, which on
PLAINTEXT are ANONYMOUS as well; so the tests that run on Kafka use
`allow.everyone.if.no.acl.found=true` (the CLUSTER resource has no ACL, so the node and the
admin client may do everything there) and take rights away from ANONYMOUS on their own,
uniquely named resources: an ACL for someone else (`User:alice`) makes a resource "have ACLs",
and a DENY beats an ALLOW. The node is shared between tests with the same settings, so every
test names its resources uniquely and deletes its ACLs at the end. Kafka applies a new ACL
asynchronously (controller -> metadata log -> broker), so checks are retried until a bound.
"""

import struct
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

import harness
import kafka_wire

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# ACLs on, resources without ACLs open (see the module docstring).
OPEN = {"authorizer.class.name": STANDARD_AUTHORIZER, "allow.everyone.if.no.acl.found": "true"}
# ACLs on, ANONYMOUS a super user.
SUPER = {"authorizer.class.name": STANDARD_AUTHORIZER, "super.users": "User:ANONYMOUS"}
# ACLs on, Kafka's defaults: nothing allowed without an ACL.
CLOSED = {"authorizer.class.name": STANDARD_AUTHORIZER}

ANONYMOUS = "User:ANONYMOUS"
ALICE = "User:alice"
TIMEOUT_S = 20

TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


def admin_for(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def binding(resource_type, name, pattern, principal, operation, permission, host="*"):
    return AclBinding(resource_type, name, pattern, principal, host, operation, permission)


def create_acls(admin, bindings):
    for future in admin.create_acls(bindings).values():
        future.result(timeout=TIMEOUT_S)


def delete_acls_named(admin, names):
    """Removes every ACL on resources with these names (any type, pattern, principal)."""
    filters = [AclBindingFilter(ResourceType.ANY, name, ResourcePatternType.ANY, None, None,
                                AclOperation.ANY, AclPermissionType.ANY) for name in names]
    for future in admin.delete_acls(filters).values():
        future.result(timeout=TIMEOUT_S)


def eventually(check, what, timeout_s=TIMEOUT_S):
    """Retries `check()` (returns a truthy value when satisfied) until `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    pytest.fail(f"{what}: not seen within {timeout_s}s (last: {last!r})")


def produce_error(broker, topic, timeout_s=15):
    """Produces one record; the delivery error code, or None when it was written."""
    producer = Producer({"bootstrap.servers": broker.bootstrap,
                         "message.timeout.ms": int(timeout_s * 1000),
                         "topic.metadata.refresh.interval.ms": 500})
    outcome = []
    producer.produce(topic, b"v", on_delivery=lambda err, msg: outcome.append(err))
    producer.flush(timeout_s + 5)
    assert outcome, "no delivery report"
    return None if outcome[0] is None else outcome[0].code()


def create_topics(admin, names):
    for future in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result(timeout=TIMEOUT_S)


def find_coordinator(broker, key, key_type):
    """FindCoordinator v1 over the wire: (error_code, node_id)."""
    with kafka_wire.Connection(broker.bootstrap) as connection:
        response = connection.request(10, 1, kafka_wire.string(key) + struct.pack(">b", key_type))
        response.int32()  # throttle_time_ms
        error_code = response.int16()
        response.string()  # error_message
        node_id = response.int32()
        response.string()
        response.int32()
        return error_code, node_id


def test_acl_apis_round_trip_with_confluent(start_broker):
    broker = start_broker(settings=OPEN)
    admin = admin_for(broker)
    base = harness.unique_topic("acl-rt")
    literal = binding(ResourceType.TOPIC, base, ResourcePatternType.LITERAL, ALICE,
                      AclOperation.READ, AclPermissionType.ALLOW)
    prefixed = binding(ResourceType.TOPIC, base + "-", ResourcePatternType.PREFIXED, ALICE,
                       AclOperation.WRITE, AclPermissionType.DENY, host="127.0.0.1")
    group = binding(ResourceType.GROUP, base, ResourcePatternType.LITERAL, "User:*",
                    AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    try:
        create_acls(admin, [literal, prefixed, group])
        create_acls(admin, [literal])  # again: accepted, not duplicated

        def described(filter_):
            return sorted(map(str, admin.describe_acls(filter_).result(timeout=TIMEOUT_S)))

        every_topic = AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, None,
                                       None, AclOperation.ANY, AclPermissionType.ANY)
        eventually(lambda: described(every_topic) == sorted(map(str, [literal, prefixed]))
                   or described(every_topic), "both topic ACLs described")
        # MATCH: every pattern that applies to one resource name.
        match = AclBindingFilter(ResourceType.TOPIC, base + "-x", ResourcePatternType.MATCH,
                                 None, None, AclOperation.ANY, AclPermissionType.ANY)
        assert described(match) == [str(prefixed)]
        by_name = AclBindingFilter(ResourceType.ANY, base, ResourcePatternType.LITERAL, None,
                                   None, AclOperation.ANY, AclPermissionType.ANY)
        assert described(by_name) == sorted(map(str, [literal, group]))
        deny_only = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, ALICE,
                                     None, AclOperation.ANY, AclPermissionType.DENY)
        assert [str(b) for b in admin.describe_acls(deny_only).result(timeout=TIMEOUT_S)
                if base in b.name] == [str(prefixed)]
        # DeleteAcls answers what each filter removed.
        deleted = admin.delete_acls([by_name])
        (removed,) = deleted.values()
        assert sorted(map(str, removed.result(timeout=TIMEOUT_S))) == sorted(
            map(str, [literal, group]))
        eventually(lambda: described(every_topic) == [str(prefixed)] or described(every_topic),
                   "only the prefixed ACL left")
    finally:
        delete_acls_named(admin, [base, base + "-"])


def test_invalid_acls_are_refused_as_kafka(start_broker):
    broker = start_broker(settings=OPEN)
    admin = admin_for(broker)
    base = harness.unique_topic("acl-bad")
    bad_cluster = binding(ResourceType.BROKER, "not-kafka-cluster", ResourcePatternType.LITERAL,
                          ALICE, AclOperation.ALTER, AclPermissionType.ALLOW)
    good = binding(ResourceType.TOPIC, base, ResourcePatternType.LITERAL, ALICE,
                   AclOperation.READ, AclPermissionType.ALLOW)
    try:
        futures = admin.create_acls([bad_cluster, good])
        with pytest.raises(KafkaException) as error:
            futures[bad_cluster].result(timeout=TIMEOUT_S)
        assert error.value.args[0].code() == KafkaError.INVALID_REQUEST
        assert "kafka-cluster" in error.value.args[0].str()
        futures[good].result(timeout=TIMEOUT_S)
    finally:
        delete_acls_named(admin, [base])


def test_acl_apis_with_kafka_python(start_broker):
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, KafkaAdminClient, ResourcePattern,
                             ResourcePatternFilter)
    from kafka.admin import ResourceType as KpResourceType

    broker = start_broker(settings=OPEN)
    name = harness.unique_topic("acl-kp")
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        acl = ACL(principal=ALICE, host="*", operation=ACLOperation.READ,
                  permission_type=ACLPermissionType.ALLOW,
                  resource_pattern=ResourcePattern(KpResourceType.TOPIC, name,
                                                   ACLResourcePatternType.PREFIXED))
        result = client.create_acls([acl])
        assert result["failed"] == [] and len(result["succeeded"]) == 1, result
        filter_ = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                            permission_type=ACLPermissionType.ANY,
                            resource_pattern=ResourcePatternFilter(
                                KpResourceType.TOPIC, name, ACLResourcePatternType.PREFIXED))

        def described():
            acls, error = client.describe_acls(filter_)
            assert error.errno == 0, error
            return acls

        found = eventually(described, "the kafka-python ACL described")
        assert [(a.principal, a.operation, a.resource_pattern.resource_name) for a in found] == [
            (ALICE, ACLOperation.READ, name)]
        ((_, matched, error),) = client.delete_acls([filter_])
        assert error.errno == 0 and len(matched) == 1, (matched, error)
        eventually(lambda: described() == [], "the ACL gone")
    finally:
        client.close()


def test_prefix_allow_and_deny_wins(start_broker):
    broker = start_broker(settings=OPEN)
    admin = admin_for(broker)
    base = harness.unique_topic("acl-pre")
    allowed, denied, alices = base + "-ok", base + "-denied", harness.unique_topic("acl-alice")
    create_topics(admin, [allowed, denied, alices])
    try:
        create_acls(admin, [
            # ANONYMOUS may write every topic starting with the prefix ...
            binding(ResourceType.TOPIC, base + "-", ResourcePatternType.PREFIXED, ANONYMOUS,
                    AclOperation.WRITE, AclPermissionType.ALLOW),
            # ... but a DENY on one of them wins.
            binding(ResourceType.TOPIC, denied, ResourcePatternType.LITERAL, ANONYMOUS,
                    AclOperation.WRITE, AclPermissionType.DENY),
            # A topic with an ACL for alice only: ANONYMOUS has none, so it is refused.
            binding(ResourceType.TOPIC, alices, ResourcePatternType.LITERAL, ALICE,
                    AclOperation.ALL, AclPermissionType.ALLOW),
        ])
        eventually(lambda: produce_error(broker, denied, 5) == TOPIC_AUTHORIZATION_FAILED,
                   "produce to the denied topic refused")
        assert produce_error(broker, allowed) is None
        assert produce_error(broker, alices, 5) == TOPIC_AUTHORIZATION_FAILED
        # Metadata: alice's topic is left out of a full listing (ANONYMOUS may not DESCRIBE
        # it) and answered TOPIC_AUTHORIZATION_FAILED when named; WRITE implies DESCRIBE.
        with kafka_wire.Connection(broker.bootstrap) as connection:
            listed = {t["name"]: t["error_code"] for t in connection.metadata(None)["topics"]}
            assert allowed in listed and denied in listed and alices not in listed, listed
            named = {t["name"]: t["error_code"]
                     for t in connection.metadata([alices, allowed])["topics"]}
        assert named == {alices: TOPIC_AUTHORIZATION_FAILED, allowed: 0}
    finally:
        delete_acls_named(admin, [base + "-", denied, alices])


def test_group_acls(start_broker):
    broker = start_broker(settings=OPEN)
    admin = admin_for(broker)
    group, open_group = harness.unique_topic("acl-g"), harness.unique_topic("acl-open")
    try:
        create_acls(admin, [binding(ResourceType.GROUP, group, ResourcePatternType.LITERAL,
                                    ALICE, AclOperation.READ, AclPermissionType.ALLOW)])
        eventually(lambda: find_coordinator(broker, group, 0)[0] == GROUP_AUTHORIZATION_FAILED,
                   "FindCoordinator for alice's group refused")
        # A group without ACLs is open (Kafka answers COORDINATOR_NOT_AVAILABLE until its
        # __consumer_offsets exists).
        eventually(lambda: find_coordinator(broker, open_group, 0)[0] == 0,
                   "FindCoordinator for a group without ACLs answered")
        # A real consumer of that group sees GROUP_AUTHORIZATION_FAILED.
        from confluent_kafka import Consumer
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                             "session.timeout.ms": 6000})
        try:
            topic = harness.unique_topic("acl-gt")
            create_topics(admin, [topic])
            consumer.subscribe([topic])
            deadline = time.monotonic() + TIMEOUT_S
            codes = []
            while time.monotonic() < deadline and GROUP_AUTHORIZATION_FAILED not in codes:
                message = consumer.poll(0.5)
                if message is not None and message.error():
                    codes.append(message.error().code())
            assert GROUP_AUTHORIZATION_FAILED in codes, codes
        finally:
            consumer.close()
        # ListGroups / DescribeGroups via the admin client: the group is not described.
        described = admin.describe_consumer_groups([group])[group]
        with pytest.raises(KafkaException) as error:
            described.result(timeout=TIMEOUT_S)
        assert error.value.args[0].code() == GROUP_AUTHORIZATION_FAILED
    finally:
        delete_acls_named(admin, [group])


def test_transactional_id_acls(start_broker):
    broker = start_broker(settings=OPEN)
    admin = admin_for(broker)
    transactional_id = harness.unique_topic("acl-tx")
    try:
        create_acls(admin, [binding(ResourceType.TRANSACTIONAL_ID, transactional_id,
                                    ResourcePatternType.LITERAL, ALICE, AclOperation.ALL,
                                    AclPermissionType.ALLOW)])
        # FindCoordinator key type 1 (TRANSACTION) needs DESCRIBE on the transactional id.
        eventually(lambda: find_coordinator(broker, transactional_id, 1)[0]
                   == TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                   "FindCoordinator for alice's transactional id refused")
        open_id = harness.unique_topic("acl-tx-open")
        eventually(lambda: find_coordinator(broker, open_id, 1)[0] == 0,
                   "FindCoordinator for a transactional id without ACLs answered")
        # The transactional producer fails its init with the same error.
        producer = Producer({"bootstrap.servers": broker.bootstrap,
                             "transactional.id": transactional_id})
        with pytest.raises(KafkaException) as error:
            producer.init_transactions(15)
        assert error.value.args[0].code() == TRANSACTIONAL_ID_AUTHORIZATION_FAILED, error.value
    finally:
        delete_acls_named(admin, [transactional_id])


def test_acls_survive_a_restart(start_broker):
    broker = start_broker(settings=OPEN)
    admin = admin_for(broker)
    topic = harness.unique_topic("acl-restart")
    create_topics(admin, [topic])
    acl = binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, ALICE,
                  AclOperation.WRITE, AclPermissionType.ALLOW)
    try:
        create_acls(admin, [acl])
        eventually(lambda: produce_error(broker, topic, 5) == TOPIC_AUTHORIZATION_FAILED,
                   "produce refused before the restart")
        broker.restart()
        admin = admin_for(broker)
        filter_ = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None,
                                   None, AclOperation.ANY, AclPermissionType.ANY)
        assert [str(b) for b in admin.describe_acls(filter_).result(timeout=TIMEOUT_S)] == [
            str(acl)]
        assert produce_error(broker, topic, 5) == TOPIC_AUTHORIZATION_FAILED
    finally:
        delete_acls_named(admin, [topic])


def test_super_users_pass_every_check(start_broker):
    broker = start_broker(settings=SUPER)
    admin = admin_for(broker)
    topic = harness.unique_topic("acl-super")
    create_topics(admin, [topic])
    try:
        create_acls(admin, [binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                                    ANONYMOUS, AclOperation.ALL, AclPermissionType.DENY)])
        assert produce_error(broker, topic) is None
    finally:
        delete_acls_named(admin, [topic])


def test_acl_apis_answer_security_disabled_without_an_authorizer(broker):
    admin = admin_for(broker)
    acl = binding(ResourceType.TOPIC, harness.unique_topic("acl-off"),
                  ResourcePatternType.LITERAL, ALICE, AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException) as error:
        admin.create_acls([acl])[acl].result(timeout=TIMEOUT_S)
    assert error.value.args[0].code() == KafkaError.SECURITY_DISABLED
    # DescribeAcls: the top-level error, read with kafka-python (librdkafka's describe_acls
    # result does not raise it).
    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, ResourcePatternFilter)
    from kafka.admin import ResourceType as KpResourceType
    from kafka.errors import SecurityDisabledError
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        filter_ = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                            permission_type=ACLPermissionType.ANY,
                            resource_pattern=ResourcePatternFilter(
                                KpResourceType.ANY, None, ACLResourcePatternType.ANY))
        with pytest.raises(SecurityDisabledError):
            client.describe_acls(filter_)
    finally:
        client.close()


@pytest.mark.ringtail_only("a PLAINTEXT-only Kafka node with allow.everyone.if.no.acl.found=false "
                           "refuses its own ANONYMOUS controller connections and never starts")
def test_anonymous_clients_are_refused_without_a_rule(start_broker):
    broker = start_broker(settings=CLOSED)
    topic = harness.unique_topic("acl-closed")
    with kafka_wire.Connection(broker.bootstrap) as connection:
        # Nothing listed, a named topic refused (and not auto-created: DESCRIBE comes first).
        assert connection.metadata(None)["topics"] == []
        (named,) = connection.metadata([topic])["topics"]
        assert named["error_code"] == TOPIC_AUTHORIZATION_FAILED
    assert produce_error(broker, topic, 5) == TOPIC_AUTHORIZATION_FAILED
    assert find_coordinator(broker, "g", 0)[0] == GROUP_AUTHORIZATION_FAILED
    admin = admin_for(broker)
    acl = binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, ANONYMOUS,
                  AclOperation.ALL, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException) as error:
        admin.create_acls([acl])[acl].result(timeout=TIMEOUT_S)
    assert error.value.args[0].code() == CLUSTER_AUTHORIZATION_FAILED


@pytest.mark.ringtail_only("start-up refusal of an authorizer class Ringtail does not implement")
def test_other_authorizer_classes_are_refused(tmp_path):
    result = subprocess.run(
        [str(harness.ringtail_bin()), "serve", "--shards", "1",
         "--log-dirs", str(tmp_path / "data"),
         "--listeners", f"PLAINTEXT://127.0.0.1:{harness.free_port_pair()}",
         "--set", "authorizer.class.name=kafka.security.authorizer.AclAuthorizer"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "authorizer.class.name" in result.stderr, result.stderr


SASL_LISTENER = "SASL_PLAINTEXT"
SASL_PLAIN = {
    "sasl.enabled.mechanisms": "PLAIN",
    "listener.name.sasl_plaintext.plain.sasl.jaas.config":
        ('org.apache.kafka.common.security.plain.PlainLoginModule required '
         'username="admin" password="admin-secret" user_admin="admin-secret" '
         'user_alice="alice-secret" user_bob="bob-secret";'),
}


def sasl_client(broker, user):
    return {"bootstrap.servers": broker.bootstrap_for(SASL_LISTENER),
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": f"{user}-secret"}


def test_sasl_principals_alice_allowed_bob_denied(start_broker):
    broker = start_broker(settings={**OPEN, **SASL_PLAIN},
                          listeners=[(SASL_LISTENER, SASL_LISTENER)])
    admin = AdminClient(sasl_client(broker, "admin"))
    topic = harness.unique_topic("acl-sasl")
    create_topics(admin, [topic])
    try:
        create_acls(admin, [binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                                    ALICE, AclOperation.WRITE, AclPermissionType.ALLOW)])

        def produce_as(user):
            producer = Producer({**sasl_client(broker, user), "message.timeout.ms": 5000})
            outcome = []
            producer.produce(topic, b"v", on_delivery=lambda err, msg: outcome.append(err))
            producer.flush(10)
            assert outcome, "no delivery report"
            return None if outcome[0] is None else outcome[0].code()

        eventually(lambda: produce_as("bob") == TOPIC_AUTHORIZATION_FAILED, "bob refused")
        assert produce_as("alice") is None
    finally:
        delete_acls_named(admin, [topic])


# ----- follower fetch (replica_id >= 0): CLUSTER_ACTION on CLUSTER -----
#
# Kafka's KafkaApis.handleFetchRequest: a fetch whose replica id is >= 0 (v15+: in the
# ReplicaState tagged field) is a follower's; it needs CLUSTER_ACTION on CLUSTER, else every
# partition answers TOPIC_AUTHORIZATION_FAILED (the topic's own ACLs do not matter). An
# authorized one reaches Partition.fetchRecords, which on this single-node broker knows no
# replica with that id: NOT_LEADER_OR_FOLLOWER without a current leader epoch,
# UNKNOWN_LEADER_EPOCH with the matching one (followerReplicaOrThrow), UNKNOWN_TOPIC_OR_PARTITION
# for a partition that does not exist. Ringtail answers the same (it has no replication).
# ANONYMOUS (PLAINTEXT: the Kafka node's controller connections and the admin client) is a
# super user; alice and bob come over SASL PLAIN, bob with an ACL allowing CLUSTER_ACTION.

FETCH = 1
NOT_LEADER_OR_FOLLOWER, UNKNOWN_LEADER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION = 6, 75, 3
FOLLOWER_SETTINGS = {**SUPER, **SASL_PLAIN}
FOLLOWER_REPLICA_ID = 2


def sasl_connection(broker, user):
    """A raw connection to the SASL_PLAINTEXT listener, authenticated with PLAIN as `user`."""
    connection = kafka_wire.Connection(broker.bootstrap_for(SASL_LISTENER))
    reader = connection.request(17, 1, kafka_wire.string("PLAIN"))  # SaslHandshake v1
    assert reader.int16() == 0
    token = b"\0" + user.encode() + b"\0" + f"{user}-secret".encode()
    reader = connection.request(36, 1, kafka_wire.bytes_(token))  # SaslAuthenticate v1
    assert reader.int16() == 0, reader.string()
    return connection


def follower_fetch_v4(connection, partitions, replica_id=FOLLOWER_REPLICA_ID):
    """Fetch v4 with `replica_id`; `partitions` is {(topic, partition): fetch_offset}.
    Returns {(topic, partition): error_code}."""
    by_topic = {}
    for (topic, partition), offset in partitions.items():
        by_topic.setdefault(topic, []).append((partition, offset))
    body = (kafka_wire.int32(replica_id) + kafka_wire.int32(0) + kafka_wire.int32(1)
            + kafka_wire.int32(1 << 20) + kafka_wire.int8(0))
    body += kafka_wire.array(list(by_topic.items()), lambda item: kafka_wire.string(item[0])
                             + kafka_wire.array(item[1], lambda p: kafka_wire.int32(p[0])
                                                + kafka_wire.int64(p[1])
                                                + kafka_wire.int32(1 << 20)))
    response = connection.request(FETCH, 4, body)
    response.int32()  # throttle_time_ms
    out = {}
    for topic, parts in response.array(lambda r: (r.string(), r.array(lambda p: (
            p.int32(), p.int16(), p.int64(), p.int64(),
            p.array(lambda a: (a.int64(), a.int64())), p.bytes_())))):
        for partition, error_code, high_watermark, _lso, _aborted, records in parts:
            out[(topic, partition)] = error_code
            if error_code:
                assert high_watermark == -1 and not records, (topic, partition, high_watermark)
    response.expect_end("Fetch v4 response")
    return out


def _compact_array(items, encode):
    return kafka_wire.unsigned_varint(len(items) + 1) + b"".join(encode(i) for i in items)


def _skip_tags(reader):
    for _ in range(reader.unsigned_varint()):
        reader.unsigned_varint()
        reader.take(reader.unsigned_varint())


def follower_fetch_v15(connection, topic_id, partitions, replica_id=FOLLOWER_REPLICA_ID):
    """Fetch v15 (flexible, topic ids) with ReplicaState{replica_id, replica_epoch=-1} as
    tagged field 1; `partitions` is [(partition, current_leader_epoch)] of `topic_id` (16
    bytes). Returns {partition: error_code}."""
    empty_tags = kafka_wire.unsigned_varint(0)
    body = kafka_wire.int32(0) + kafka_wire.int32(1) + kafka_wire.int32(1 << 20)
    body += kafka_wire.int8(0) + kafka_wire.int32(0) + kafka_wire.int32(-1)  # session 0, epoch -1
    body += _compact_array([topic_id], lambda tid: tid + _compact_array(
        partitions, lambda p: kafka_wire.int32(p[0]) + kafka_wire.int32(p[1])
        + kafka_wire.int64(0) + kafka_wire.int32(-1) + kafka_wire.int64(-1)
        + kafka_wire.int32(1 << 20) + empty_tags) + empty_tags)
    body += _compact_array([], None)  # forgotten_topics_data
    body += kafka_wire.unsigned_varint(1)  # rack_id: ""
    replica_state = kafka_wire.int32(replica_id) + kafka_wire.int64(-1) + empty_tags
    body += (kafka_wire.unsigned_varint(1) + kafka_wire.unsigned_varint(1)
             + kafka_wire.unsigned_varint(len(replica_state)) + replica_state)
    response = connection.request(FETCH, 15, body, flexible_header=True,
                                  flexible_response_header=True)
    response.int32()  # throttle_time_ms
    assert response.int16() == 0, "top-level error_code"
    response.int32()  # session_id
    out = {}
    for _ in range(response.unsigned_varint() - 1):
        assert response.take(16) == topic_id
        for _ in range(response.unsigned_varint() - 1):
            partition, error_code = response.int32(), response.int16()
            response.int64(), response.int64(), response.int64()
            aborted = response.unsigned_varint() - 1
            for _ in range(max(aborted, 0)):
                response.int64(), response.int64()
                _skip_tags(response)
            response.int32()  # preferred_read_replica
            size = response.unsigned_varint() - 1
            if size > 0:
                response.take(size)
            _skip_tags(response)
            out[partition] = error_code
        _skip_tags(response)
    _skip_tags(response)
    return out


def topic_id_bytes(admin, topic):
    from confluent_kafka import TopicCollection
    # The caller's admin client: a temporary one could be destroyed before its result arrives.
    description = admin.describe_topics(
        TopicCollection([topic]))[topic].result(timeout=TIMEOUT_S)
    uuid = description.topic_id
    return struct.pack(">qq", uuid.get_most_significant_bits(), uuid.get_least_significant_bits())


def test_follower_fetch_needs_cluster_action(start_broker):
    broker = start_broker(settings=FOLLOWER_SETTINGS, listeners=[(SASL_LISTENER, SASL_LISTENER)])
    admin = admin_for(broker)
    topic, missing = harness.unique_topic("acl-follower"), harness.unique_topic("acl-nope")
    create_topics(admin, [topic])
    # Even READ on the topic does not make a follower fetch of alice's authorized.
    acls = [binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, ALICE,
                    AclOperation.ALL, AclPermissionType.ALLOW),
            binding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL,
                    "User:bob", AclOperation.CLUSTER_ACTION, AclPermissionType.ALLOW)]
    try:
        create_acls(admin, acls)
        wanted = {(topic, 0): 0, (topic, 7): 0, (missing, 0): 0}
        denied = dict.fromkeys(wanted, TOPIC_AUTHORIZATION_FAILED)
        authorized = {(topic, 0): NOT_LEADER_OR_FOLLOWER, (topic, 7): UNKNOWN_TOPIC_OR_PARTITION,
                      (missing, 0): UNKNOWN_TOPIC_OR_PARTITION}

        def as_bob():
            with sasl_connection(broker, "bob") as connection:
                return follower_fetch_v4(connection, wanted)

        eventually(lambda: as_bob() == authorized or as_bob(), "bob's follower fetch authorized")
        with sasl_connection(broker, "alice") as connection:
            assert follower_fetch_v4(connection, wanted) == denied
            # The same request as a consumer (replica_id -1) is alice's to make.
            assert follower_fetch_v4(connection, {(topic, 0): 0}, replica_id=-1) == {
                (topic, 0): 0}
        with kafka_wire.Connection(broker.bootstrap) as connection:  # ANONYMOUS: super user
            assert follower_fetch_v4(connection, wanted) == authorized

        # v15: the replica id travels in ReplicaState (tagged field 1).
        topic_id = topic_id_bytes(admin, topic)
        with sasl_connection(broker, "alice") as connection:
            assert follower_fetch_v15(connection, topic_id, [(0, -1)]) == {
                0: TOPIC_AUTHORIZATION_FAILED}
        with sasl_connection(broker, "bob") as connection:
            # Leader epoch 0 is the partition's: known, but bob's replica id is not one of
            # its replicas.
            assert follower_fetch_v15(connection, topic_id, [(0, -1)]) == {
                0: NOT_LEADER_OR_FOLLOWER}
            assert follower_fetch_v15(connection, topic_id, [(0, 0)]) == {
                0: UNKNOWN_LEADER_EPOCH}
    finally:
        delete_acls_named(admin, [topic, "kafka-cluster"])


# ----- topic auto-creation: CREATE on CLUSTER or on the topic -----
#
# Kafka's KafkaApis.handleTopicMetadataRequest: a named topic needs DESCRIBE first (else
# TOPIC_AUTHORIZATION_FAILED, whatever else is allowed); a missing one that the request and
# `auto.create.topics.enable` allow to be created is created only with CREATE on the CLUSTER
# or, failing that, CREATE on the topic; without either it is answered
# TOPIC_AUTHORIZATION_FAILED (topic id zero) and not created. Without auto-creation the same
# missing topic is UNKNOWN_TOPIC_OR_PARTITION. Kafka creates the topic through its controller,
# so the first answers may be LEADER_NOT_AVAILABLE: the created cases are polled until the topic
# answers without error. alice and bob come over SASL PLAIN; ANONYMOUS (PLAINTEXT) is a super
# user, as in the follower-fetch tests.

AUTO_CREATE_SETTINGS = {**FOLLOWER_SETTINGS, "auto.create.topics.enable": "true"}
METADATA = 3


def metadata_v4(connection, topics, allow_auto_topic_creation):
    """Metadata v4 (the first with allow_auto_topic_creation) for the named `topics`:
    {name: (error_code, partition count)}."""
    body = kafka_wire.array(topics, kafka_wire.string)
    body += kafka_wire.int8(1 if allow_auto_topic_creation else 0)
    response = connection.request(METADATA, 4, body)
    response.int32()  # throttle_time_ms
    response.array(lambda r: (r.int32(), r.string(), r.int32(), r.string()))  # brokers
    response.string()  # cluster_id
    response.int32()  # controller_id
    topics_out = response.array(lambda r: (r.int16(), r.string(), r.boolean(), r.array(
        lambda p: (p.int16(), p.int32(), p.int32(), p.array(kafka_wire.Reader.int32),
                   p.array(kafka_wire.Reader.int32)))))
    response.expect_end("Metadata v4 response")
    return {name: (error_code, len(partitions))
            for error_code, name, _internal, partitions in topics_out}


def metadata_as(broker, user, topics, allow_auto_topic_creation):
    """metadata_v4 as `user` over SASL PLAIN, or as ANONYMOUS (PLAINTEXT) for user None."""
    connection = (kafka_wire.Connection(broker.bootstrap) if user is None
                  else sasl_connection(broker, user))
    with connection:
        return metadata_v4(connection, topics, allow_auto_topic_creation)


def test_auto_creation_needs_create_on_the_cluster_or_the_topic(start_broker):
    broker = start_broker(settings=AUTO_CREATE_SETTINGS,
                          listeners=[(SASL_LISTENER, SASL_LISTENER)])
    admin = admin_for(broker)
    base = harness.unique_topic("acl-auto")
    prefix = base + "-"
    known, denied = prefix + "known", prefix + "denied"
    by_topic, by_cluster = prefix + "by-topic", prefix + "by-cluster"
    create_topics(admin, [known])
    acls = [
        # alice may describe and write every topic of the prefix, and create by_topic only.
        binding(ResourceType.TOPIC, prefix, ResourcePatternType.PREFIXED, ALICE,
                AclOperation.DESCRIBE, AclPermissionType.ALLOW),
        binding(ResourceType.TOPIC, prefix, ResourcePatternType.PREFIXED, ALICE,
                AclOperation.WRITE, AclPermissionType.ALLOW),
        binding(ResourceType.TOPIC, by_topic, ResourcePatternType.LITERAL, ALICE,
                AclOperation.CREATE, AclPermissionType.ALLOW),
        # bob may describe the prefix's topics and create on the cluster.
        binding(ResourceType.TOPIC, prefix, ResourcePatternType.PREFIXED, "User:bob",
                AclOperation.DESCRIBE, AclPermissionType.ALLOW),
        binding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, "User:bob",
                AclOperation.CREATE, AclPermissionType.ALLOW),
    ]
    unknown = (UNKNOWN_TOPIC_OR_PARTITION, 0)
    try:
        create_acls(admin, acls)
        for user in ("alice", "bob"):
            eventually(lambda: metadata_as(broker, user, [known], False) == {known: (0, 1)},
                       f"{user} may describe {known}")
        # DESCRIBE (and WRITE) but no CREATE: not created, TOPIC_AUTHORIZATION_FAILED; without
        # auto-creation asked for, the same topic is just unknown.
        assert metadata_as(broker, "alice", [denied], False) == {denied: unknown}
        assert metadata_as(broker, "alice", [denied], True) == {
            denied: (TOPIC_AUTHORIZATION_FAILED, 0)}
        # CREATE on the topic: created (Kafka may answer LEADER_NOT_AVAILABLE at first).
        eventually(lambda: metadata_as(broker, "alice", [by_topic], True) == {by_topic: (0, 1)},
                   "by_topic auto-created for alice")
        # CREATE on the CLUSTER: created.
        eventually(lambda: metadata_as(broker, "bob", [by_cluster], True)
                   == {by_cluster: (0, 1)}, "by_cluster auto-created for bob")
        # bob's right on the CLUSTER is his: alice still may not create another topic.
        assert metadata_as(broker, "alice", [prefix + "other"], True) == {
            prefix + "other": (TOPIC_AUTHORIZATION_FAILED, 0)}
        # The refused ones were never created (by now Kafka's controller would have done it).
        assert metadata_as(broker, None, [denied, prefix + "other", by_topic, by_cluster],
                           False) == {denied: unknown, prefix + "other": unknown,
                                      by_topic: (0, 1), by_cluster: (0, 1)}
    finally:
        delete_acls_named(admin, [prefix, by_topic, "kafka-cluster"])
