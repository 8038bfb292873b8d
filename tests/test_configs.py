"""Live configuration (issue 9): IncrementalAlterConfigs, AlterConfigs and DescribeConfigs from
confluent-kafka, kafka-python and the wire (tests/configs_wire.py), with Kafka's answers.

Topic overrides and dynamic broker configs (the `log.*` defaults, `message.max.bytes`, ...) are
validated with Kafka's error codes and messages, applied at once to open partitions (retention
at the next check, max.message.bytes on the next produce), survive a restart, and DELETE
restores the default. The stock Kafka 4.1 `server.properties` starts Ringtail with one warning
per setting that means nothing here.

Kafka applies an alteration through its metadata log, so a describe right after an alter may
still show the old value there: expectations are polled (`eventually`), bounded in time.
"""

import re
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewTopic,
    ResourceType)
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as PyConfigResource

import configs_wire as cw
import harness
import kafka_wire

INVALID_CONFIG = 40
INVALID_REQUEST = 42
UNKNOWN_TOPIC_OR_PARTITION = 3
EVENTUALLY_S = 20.0
SEGMENT_BYTES = 1_048_576  # Kafka 4's minimum segment.bytes


def eventually(check, timeout_s=EVENTUALLY_S, interval_s=0.2):
    """Calls `check` until it returns without AssertionError, at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval_s)


def admin(broker):
    """One AdminClient per broker, kept alive with it (a dropped client fails its futures)."""
    client = getattr(broker, "_cfg_admin", None)
    if client is None or broker._cfg_admin_bootstrap != broker.bootstrap:
        client = AdminClient({"bootstrap.servers": broker.bootstrap})
        broker._cfg_admin, broker._cfg_admin_bootstrap = client, broker.bootstrap
    return client


def create_topic(broker, prefix, partitions=1, config=None):
    topic = harness.unique_topic(prefix)
    futures = admin(broker).create_topics(
        [NewTopic(topic, partitions, 1, config=config or {})], operation_timeout=20)
    futures[topic].result(timeout=30)
    wait_topic(broker, topic)
    return topic


def wait_topic(broker, topic):
    def visible():
        with kafka_wire.Connection(broker.bootstrap) as connection:
            topics = connection.metadata([topic])["topics"]
        assert topics and topics[0]["error_code"] == 0, topics
    eventually(visible)


def node_id(broker):
    with kafka_wire.Connection(broker.bootstrap) as connection:
        return connection.metadata([])["brokers"][0]["node_id"]


def incremental(broker, resource_type, name, entries, validate_only=False):
    """confluent-kafka IncrementalAlterConfigs of one resource; raises KafkaException."""
    ops = [ConfigEntry(n, v, incremental_operation=op) for n, op, v in entries]
    resource = ConfigResource(resource_type, name, incremental_configs=ops)
    futures = admin(broker).incremental_alter_configs([resource], validate_only=validate_only,
                                                      request_timeout=20)
    return list(futures.values())[0].result(timeout=30)


def describe_topic(broker, topic):
    """confluent-kafka DescribeConfigs: {name: ConfigEntry}."""
    futures = admin(broker).describe_configs([ConfigResource(ResourceType.TOPIC, topic)],
                                             request_timeout=20)
    return list(futures.values())[0].result(timeout=30)


def refused(broker, resource_type, name, entries):
    with pytest.raises(KafkaException) as caught:
        incremental(broker, resource_type, name, entries)
    return caught.value.args[0]


def wire_describe(broker, resource_type, name, keys=None, **options):
    with kafka_wire.Connection(broker.bootstrap) as connection:
        (result,) = cw.describe_configs(connection, [(resource_type, name, keys)], **options)
    return result


def wire_incremental(broker, resources, validate_only=False):
    with kafka_wire.Connection(broker.bootstrap) as connection:
        return cw.incremental_alter_configs(connection, resources, validate_only)


def clear_broker_configs(broker, names):
    """DELETE `names` on the cluster default and this node (Kafka nodes are shared by tests)."""
    node = str(node_id(broker))
    deletes = [(n, cw.DELETE, None) for n in names]
    results = wire_incremental(broker, [(cw.BROKER, "", deletes), (cw.BROKER, node, deletes)])
    assert [r["error_code"] for r in results] == [0, 0], results


# ----- topic configs -----

def test_incremental_set_delete_append_subtract(broker):
    topic = create_topic(broker, "cfg-ops")
    S, D, A, U = (AlterConfigOpType.SET, AlterConfigOpType.DELETE, AlterConfigOpType.APPEND,
                  AlterConfigOpType.SUBTRACT)
    incremental(broker, ResourceType.TOPIC, topic,
                [("retention.ms", S, "60000"), ("max.message.bytes", S, "500000")])

    def overridden():
        configs = describe_topic(broker, topic)
        assert configs["retention.ms"].value == "60000"
        assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        assert configs["max.message.bytes"].value == "500000"
        assert not configs["retention.ms"].is_default
        assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    eventually(overridden)

    incremental(broker, ResourceType.TOPIC, topic, [("cleanup.policy", A, "compact")])
    eventually(lambda: _policy_is(broker, topic, {"delete", "compact"}))
    incremental(broker, ResourceType.TOPIC, topic, [("cleanup.policy", U, "delete")])
    eventually(lambda: _policy_is(broker, topic, {"compact"}))

    incremental(broker, ResourceType.TOPIC, topic,
                [("retention.ms", D, None), ("cleanup.policy", D, None),
                 ("segment.ms", D, None)])  # DELETE of a config never set is accepted

    def restored():
        configs = describe_topic(broker, topic)
        assert configs["retention.ms"].value == "604800000"
        assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
        assert configs["cleanup.policy"].value == "delete"
        assert configs["max.message.bytes"].value == "500000"
    eventually(restored)


def _policy_is(broker, topic, expected):
    entry = describe_topic(broker, topic)["cleanup.policy"]
    assert set(entry.value.split(",")) == expected, entry.value
    assert entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_validate_only_changes_nothing(broker):
    topic = create_topic(broker, "cfg-validate")
    incremental(broker, ResourceType.TOPIC, topic,
                [("retention.bytes", AlterConfigOpType.SET, "123456")], validate_only=True)
    with pytest.raises(KafkaException):
        incremental(broker, ResourceType.TOPIC, topic,
                    [("retention.bytes", AlterConfigOpType.SET, "x")], validate_only=True)
    time.sleep(1)
    entry = describe_topic(broker, topic)["retention.bytes"]
    assert (entry.value, entry.source) == ("-1", ConfigSource.DEFAULT_CONFIG.value)


@pytest.mark.parametrize("name, value, message", [
    ("retention.ms", "abc", "Invalid value abc for configuration retention.ms: Not a number of "
                            "type LONG"),
    ("retention.ms", "-5", "Invalid value -5 for configuration retention.ms: Value must be at "
                           "least -1"),
    ("min.insync.replicas", "0", "Invalid value 0 for configuration min.insync.replicas: Value "
                                 "must be at least 1"),
    ("max.message.bytes", "-1", "Invalid value -1 for configuration max.message.bytes: Value "
                                "must be at least 0"),
    ("segment.ms", "0", "Invalid value 0 for configuration segment.ms: Value must be at least 1"),
    ("segment.index.bytes", "3", "Invalid value 3 for configuration segment.index.bytes: Value "
                                 "must be at least 4"),
    ("preallocate", "yes", "Invalid value yes for configuration preallocate: Expected value to "
                           "be either true or false"),
    ("message.timestamp.type", "Now", "Invalid value Now for configuration "
                                      "message.timestamp.type: String must be one of: "
                                      "CreateTime, LogAppendTime"),
    ("cleanup.policy", "shred", "Invalid value shred for configuration cleanup.policy: String "
                                "must be one of: compact, delete"),
    ("compression.type", "brotli", "Invalid value brotli for configuration compression.type: "
                                   "String must be one of: uncompressed, zstd, lz4, snappy, "
                                   "gzip, producer"),
    ("no.such.config", "1", "Unknown topic config name: no.such.config"),
])
def test_invalid_topic_config_refused_as_kafka(broker, name, value, message):
    if not hasattr(broker, "_cfg_invalid_topic"):
        broker._cfg_invalid_topic = create_topic(broker, "cfg-invalid")
    topic = broker._cfg_invalid_topic
    error = refused(broker, ResourceType.TOPIC, topic, [(name, AlterConfigOpType.SET, value)])
    assert error.code() == KafkaError.INVALID_CONFIG, error
    assert error.str() == message


def test_segment_bytes_below_minimum_names_the_value(broker):
    """Kafka 4 refuses segment.bytes below 1 MiB, Ringtail below 14 bytes: both name it."""
    topic = create_topic(broker, "cfg-segment")
    error = refused(broker, ResourceType.TOPIC, topic,
                    [("segment.bytes", AlterConfigOpType.SET, "-1")])
    assert error.code() == KafkaError.INVALID_CONFIG
    assert re.fullmatch(r"Invalid value -1 for configuration segment.bytes: Value must be at "
                        r"least \d+", error.str()), error.str()


def test_append_to_non_list_and_unknown_topic(broker):
    topic = create_topic(broker, "cfg-append")
    error = refused(broker, ResourceType.TOPIC, topic,
                    [("retention.ms", AlterConfigOpType.APPEND, "5")])
    assert error.code() == KafkaError.INVALID_CONFIG
    assert error.str() == "Can't APPEND to key retention.ms because its type is not LIST."
    missing = harness.unique_topic("cfg-missing")
    error = refused(broker, ResourceType.TOPIC, missing,
                    [("retention.ms", AlterConfigOpType.SET, "5")])
    assert error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert error.str() == f"The topic '{missing}' does not exist."


def test_request_level_refusals_on_the_wire(broker):
    topic = create_topic(broker, "cfg-wire")
    cases = [
        ([(cw.TOPIC, topic, [("retention.ms", cw.SET, "1"), ("retention.ms", cw.SET, "2")])],
         [(INVALID_REQUEST, "Error due to duplicate config keys")]),
        ([(cw.TOPIC, topic, [("retention.ms", cw.SET, "1")])] * 2,
         [(INVALID_REQUEST, "Each resource must appear at most once.")] * 2),
        # (On a TOPIC resource Kafka 4.1's controller fails with a NullPointerException.)
        ([(cw.BROKER, "", [("log.retention.ms", 7, "1")])],
         [(INVALID_REQUEST, "Unknown operations type 7")]),
        ([(cw.TOPIC, topic, [("retention.ms", cw.SET, None)])],
         [(INVALID_REQUEST, "Null value not supported for : retention.ms")]),
        ([(9, topic, [("retention.ms", cw.SET, "1")])],
         [(INVALID_REQUEST, "Unknown resource type 9")]),
    ]
    for resources, expected in cases:
        results = wire_incremental(broker, resources)
        assert [(r["error_code"], r["error_message"]) for r in results] == expected, resources
    entry = wire_describe(broker, cw.TOPIC, topic, ["retention.ms"])["configs"]["retention.ms"]
    assert entry["source"] == cw.DEFAULT_CONFIG


def test_legacy_alter_configs_replaces_every_override(broker):
    topic = create_topic(broker, "cfg-legacy", config={"retention.ms": "100000"})
    with kafka_wire.Connection(broker.bootstrap) as connection:
        results = cw.alter_configs(connection, [(cw.TOPIC, topic, {"segment.ms": "200000"})])
        assert results[0]["error_code"] == 0, results
        results = cw.alter_configs(connection, [(cw.TOPIC, topic, {"foo": "1"})])
        assert (results[0]["error_code"], results[0]["error_message"]) == (
            INVALID_CONFIG, "Unknown topic config name: foo")

    def replaced():
        configs = wire_describe(broker, cw.TOPIC, topic, ["retention.ms", "segment.ms"])["configs"]
        assert configs["segment.ms"]["value"] == "200000"
        assert configs["segment.ms"]["synonyms"] == [("segment.ms", "200000",
                                                      cw.DYNAMIC_TOPIC_CONFIG)]
        assert configs["retention.ms"]["source"] != cw.DYNAMIC_TOPIC_CONFIG
    eventually(replaced)


def test_kafka_python_alter_and_describe(broker):
    topic = create_topic(broker, "cfg-kpy")
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        client.alter_configs([PyConfigResource("TOPIC", topic, {
            "retention.ms": "3600000", "cleanup.policy": ("APPEND", "compact")})])

        def described():
            result = client.describe_configs([PyConfigResource("TOPIC", topic)],
                                             include_synonyms=True)
            configs = result["topic"][topic]
            assert configs["retention.ms"]["value"] == "3600000", configs
            assert set(configs["cleanup.policy"]["value"].split(",")) == {"delete", "compact"}
        eventually(described)
    finally:
        client.close()


# ----- DescribeConfigs: sources, synonyms, types, documentation -----

def test_describe_topic_synonyms_types_and_documentation(broker):
    topic = create_topic(broker, "cfg-syn", config={"retention.ms": "100000"})
    keys = ["retention.ms", "segment.bytes", "segment.ms", "cleanup.policy", "compression.type",
            "message.timestamp.type"]
    configs = wire_describe(broker, cw.TOPIC, topic, keys, include_documentation=True)["configs"]
    retention = configs["retention.ms"]
    assert (retention["value"], retention["source"]) == ("100000", cw.DYNAMIC_TOPIC_CONFIG)
    assert retention["synonyms"] == [("retention.ms", "100000", cw.DYNAMIC_TOPIC_CONFIG)]
    assert retention["read_only"] is False and retention["sensitive"] is False
    assert configs["segment.bytes"]["synonyms"] == [("log.segment.bytes", "1073741824",
                                                     cw.DEFAULT_CONFIG)]
    # Kafka lists no synonym for segment.ms when log.roll.ms is unset (log.roll.hours is
    # dropped before the first log.roll.ms entry).
    assert configs["segment.ms"]["synonyms"] == []
    assert configs["segment.ms"]["source"] == cw.DEFAULT_CONFIG
    types = {name: entry["type"] for name, entry in configs.items()}
    assert types == {"retention.ms": 5, "segment.bytes": 3, "segment.ms": 5,
                     "cleanup.policy": 7, "compression.type": 2, "message.timestamp.type": 2}
    assert all(entry["documentation"] for entry in configs.values())
    without = wire_describe(broker, cw.TOPIC, topic, keys, include_synonyms=False)["configs"]
    assert all(entry["synonyms"] == [] for entry in without.values())
    missing = wire_describe(broker, cw.TOPIC, harness.unique_topic("cfg-none"), None)
    assert missing["error_code"] == UNKNOWN_TOPIC_OR_PARTITION


# ----- dynamic broker configs -----

BROKER_KEYS = ["log.retention.ms", "log.segment.bytes", "message.max.bytes", "num.partitions",
               "log.retention.hours"]


def test_dynamic_broker_configs_sources_and_errors(broker):
    node = str(node_id(broker))
    topic = create_topic(broker, "cfg-broker")
    override = create_topic(broker, "cfg-broker-own", config={"retention.ms": "100000"})
    try:
        results = wire_incremental(broker, [
            (cw.BROKER, "", [("log.retention.ms", cw.SET, "3600000"),
                             ("log.segment.bytes", cw.SET, "3145728")]),
            (cw.BROKER, node, [("log.segment.bytes", cw.SET, "2097152")])])
        assert [r["error_code"] for r in results] == [0, 0], results

        def applied():
            configs = wire_describe(broker, cw.BROKER, node, BROKER_KEYS)["configs"]
            segment = configs["log.segment.bytes"]
            assert (segment["value"], segment["source"]) == ("2097152", cw.DYNAMIC_BROKER_CONFIG)
            assert segment["synonyms"] == [
                ("log.segment.bytes", "2097152", cw.DYNAMIC_BROKER_CONFIG),
                ("log.segment.bytes", "3145728", cw.DYNAMIC_DEFAULT_BROKER_CONFIG),
                ("log.segment.bytes", "1073741824", cw.DEFAULT_CONFIG)]
            assert segment["read_only"] is False
            retention = configs["log.retention.ms"]
            assert retention["synonyms"] == [
                ("log.retention.ms", "3600000", cw.DYNAMIC_DEFAULT_BROKER_CONFIG),
                ("log.retention.hours", "168", cw.DEFAULT_CONFIG)]
            assert configs["num.partitions"]["read_only"] is True
            assert configs["log.retention.hours"]["read_only"] is True
            cluster = wire_describe(broker, cw.BROKER, "", None)["configs"]
            assert cluster["log.retention.ms"]["source"] == cw.DYNAMIC_DEFAULT_BROKER_CONFIG
            assert cluster["log.segment.bytes"]["value"] == "3145728"
            assert "num.partitions" not in cluster
            # A topic without an override follows the dynamic default; one with keeps its own.
            inherited = wire_describe(broker, cw.TOPIC, topic, ["retention.ms", "segment.bytes"])
            inherited = inherited["configs"]
            assert inherited["retention.ms"]["value"] == "3600000"
            assert inherited["retention.ms"]["source"] == cw.DYNAMIC_DEFAULT_BROKER_CONFIG
            assert inherited["segment.bytes"]["value"] == "2097152"
            assert inherited["segment.bytes"]["source"] == cw.DYNAMIC_BROKER_CONFIG
            own = wire_describe(broker, cw.TOPIC, override, ["retention.ms"])["configs"]
            assert own["retention.ms"]["synonyms"] == [
                ("retention.ms", "100000", cw.DYNAMIC_TOPIC_CONFIG),
                ("log.retention.ms", "3600000", cw.DYNAMIC_DEFAULT_BROKER_CONFIG),
                ("log.retention.hours", "168", cw.DEFAULT_CONFIG)]
        eventually(applied)

        refusals = [
            ((cw.BROKER, "", [("num.partitions", cw.SET, "3")]),
             "Cannot update these configs dynamically: Set(num.partitions)"),
            ((cw.BROKER, "", [("log.roll.hours", cw.SET, "2")]),
             "Cannot update these configs dynamically: Set(log.roll.hours)"),
            ((cw.BROKER, "", [("log.retention.ms", cw.SET, "abc")]),
             "Invalid value abc for configuration log.retention.ms: Not a number of type LONG"),
            ((cw.BROKER, "7", [("log.retention.ms", cw.SET, "1")]),
             f"Unexpected broker id, expected {node}, but received 7"),
            ((cw.BROKER, "abc", [("log.retention.ms", cw.SET, "1")]),
             "Node id must be an integer, but it is: abc"),
        ]
        for resource, message in refusals:
            (result,) = wire_incremental(broker, [resource])
            assert (result["error_code"], result["error_message"]) == (INVALID_REQUEST, message)
        other = wire_describe(broker, cw.BROKER, "7", None)
        assert (other["error_code"], other["error_message"]) == (
            INVALID_REQUEST, f"Unexpected broker id, expected {node} or empty string, but "
                             f"received 7")
    finally:
        clear_broker_configs(broker, ["log.retention.ms", "log.segment.bytes"])

    def restored():
        configs = wire_describe(broker, cw.TOPIC, topic, ["retention.ms", "segment.bytes"])
        configs = configs["configs"]
        assert configs["retention.ms"]["value"] == "604800000"
        assert configs["segment.bytes"]["value"] == "1073741824"
        assert configs["segment.bytes"]["source"] == cw.DEFAULT_CONFIG
    eventually(restored)


@pytest.mark.ringtail_only("Kafka accepts and stores broker config names it does not know")
def test_unknown_broker_config_refused(broker):
    (result,) = wire_incremental(broker, [(cw.BROKER, "", [("no.such.thing", cw.SET, "1")])])
    assert (result["error_code"], result["error_message"]) == (
        INVALID_REQUEST, "Cannot update these configs dynamically: Set(no.such.thing)")


def _produce(broker, topic, value):
    """One record, acks=all; the delivery error (None when delivered)."""
    outcome = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "message.timeout.ms": 15000, "retries": 0})
    producer.produce(topic, value, on_delivery=lambda error, _: outcome.append(error))
    assert producer.flush(30) == 0
    return outcome[0]


def test_dynamic_message_max_bytes_applies_live(broker):
    topic = create_topic(broker, "cfg-mmb")
    assert _produce(broker, topic, b"x" * 5000) is None
    try:
        (result,) = wire_incremental(broker, [(cw.BROKER, "",
                                               [("message.max.bytes", cw.SET, "2000")])])
        assert result["error_code"] == 0, result

        def too_large():
            error = _produce(broker, topic, b"y" * 5000)
            assert error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE, error
        eventually(too_large, interval_s=0.5)
        # A topic override wins over the dynamic default.
        incremental(broker, ResourceType.TOPIC, topic,
                    [("max.message.bytes", AlterConfigOpType.SET, "100000")])
        eventually(lambda: _delivered(broker, topic), interval_s=0.5)
        incremental(broker, ResourceType.TOPIC, topic,
                    [("max.message.bytes", AlterConfigOpType.DELETE, None)])
        eventually(too_large, interval_s=0.5)
    finally:
        clear_broker_configs(broker, ["message.max.bytes"])
    eventually(lambda: _delivered(broker, topic), interval_s=0.5)


def _delivered(broker, topic):
    error = _produce(broker, topic, b"z" * 5000)
    assert error is None, error


# ----- retention applied live -----

def _low_watermark(broker, topic):
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "cfg-watermarks"})
    try:
        from confluent_kafka import TopicPartition
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return low, high
    finally:
        consumer.close()


def test_retention_ms_altered_live_moves_log_start(start_broker):
    broker = start_broker(settings={"log.retention.check.interval.ms": "1000"})
    topic = create_topic(broker, "cfg-retention", config={"segment.bytes": str(SEGMENT_BYTES)})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "linger.ms": 5, "compression.type": "none"})
    for i in range(4000):  # ~4 MB: three or more closed 1 MiB segments
        producer.produce(topic, b"%06d" % i + b"r" * 994, partition=0)
    assert producer.flush(60) == 0
    low, high = _low_watermark(broker, topic)
    assert (low, high) == (0, 4000)
    time.sleep(2)  # the records' timestamps must be older than the new retention.ms
    incremental(broker, ResourceType.TOPIC, topic,
                [("retention.ms", AlterConfigOpType.SET, "1000")])

    def trimmed():
        low, high = _low_watermark(broker, topic)
        assert high == 4000
        # Every segment expired, the active one included: Kafka rolls it and deletes them all
        # (UnifiedLog.deleteSegments), so the log starts at its end.
        assert low == 4000, low
    # Kafka runs its first retention check 30 s after start-up (LogManager.InitialTaskDelayMs).
    eventually(trimmed, timeout_s=60, interval_s=0.5)


# ----- persistence -----

def test_dynamic_configs_survive_restart_and_delete_restores(start_broker):
    broker = start_broker(settings={"log.retention.check.interval.ms": "300000"})
    topic = create_topic(broker, "cfg-restart")
    node = str(node_id(broker))
    try:
        incremental(broker, ResourceType.TOPIC, topic,
                    [("retention.ms", AlterConfigOpType.SET, "123000"),
                     ("cleanup.policy", AlterConfigOpType.SET, "compact,delete")])
        results = wire_incremental(broker, [
            (cw.BROKER, "", [("log.retention.bytes", cw.SET, "987654321")]),
            (cw.BROKER, node, [("log.index.interval.bytes", cw.SET, "8192")])])
        assert [r["error_code"] for r in results] == [0, 0], results
        if broker.target == "ringtail":
            stored = broker.metadata()
            (entry,) = [t for t in stored["topics"] if t["name"] == topic]
            assert entry["configs"]["retention.ms"] == "123000"
            assert stored["broker_configs"] == {"": {"log.retention.bytes": "987654321"},
                                                node: {"log.index.interval.bytes": "8192"}}

        def all_there():
            configs = wire_describe(broker, cw.TOPIC, topic, None)["configs"]
            assert configs["retention.ms"]["value"] == "123000"
            assert set(configs["cleanup.policy"]["value"].split(",")) == {"compact", "delete"}
            assert configs["retention.bytes"]["value"] == "987654321"
            assert configs["retention.bytes"]["source"] == cw.DYNAMIC_DEFAULT_BROKER_CONFIG
            assert configs["index.interval.bytes"]["value"] == "8192"
            assert configs["index.interval.bytes"]["source"] == cw.DYNAMIC_BROKER_CONFIG
        eventually(all_there)
        broker.restart()
        wait_topic(broker, topic)
        eventually(all_there)
        incremental(broker, ResourceType.TOPIC, topic,
                    [("retention.ms", AlterConfigOpType.DELETE, None)])
    finally:
        clear_broker_configs(broker, ["log.retention.bytes", "log.index.interval.bytes"])

    def defaults_back():
        configs = wire_describe(broker, cw.TOPIC, topic, None)["configs"]
        assert configs["retention.ms"]["value"] == "604800000"
        assert configs["retention.ms"]["source"] == cw.DEFAULT_CONFIG
        assert configs["retention.bytes"]["value"] == "-1"
        assert configs["index.interval.bytes"]["value"] == "4096"
    eventually(defaults_back)
    broker.restart()
    wait_topic(broker, topic)
    eventually(defaults_back)


# ----- Kafka's stock server.properties -----

FIXTURE = harness.REPO_ROOT / "tests" / "fixtures" / "kafka-4.1-server.properties"
WITHOUT_MEANING = ["process.roles", "controller.quorum.bootstrap.servers",
                   "inter.broker.listener.name", "controller.listener.names",
                   "num.network.threads", "num.io.threads",
                   "socket.send.buffer.bytes", "socket.receive.buffer.bytes",
                   "num.recovery.threads.per.data.dir",
                   "share.coordinator.state.topic.replication.factor",
                   "share.coordinator.state.topic.min.isr"]


def _stock_properties(tmp_path, port, extra=""):
    text = FIXTURE.read_text()
    text = text.replace("PLAINTEXT://:9092", f"PLAINTEXT://127.0.0.1:{port}")
    text = text.replace("PLAINTEXT://localhost:9092", f"PLAINTEXT://127.0.0.1:{port}")
    text = text.replace("CONTROLLER://:9093", f"CONTROLLER://127.0.0.1:{port + 1}")
    text = text.replace("/tmp/kraft-combined-logs", str(tmp_path / "data"))
    path = tmp_path / "server.properties"
    path.write_text(text + extra)
    return path


@pytest.mark.ringtail_only("starts the ringtail binary with Kafka's stock server.properties")
def test_stock_server_properties_start_with_one_warning_each(tmp_path):
    port = harness.free_port_pair()
    path = _stock_properties(tmp_path, port)
    log_path = tmp_path / "broker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(harness.ringtail_bin()), "serve", "--config", str(path),
                                    "--shards", "1"], stdout=log, stderr=subprocess.STDOUT,
                                   env={"RUST_LOG": "info", "NO_COLOR": "1", "PATH": "/usr/bin"})
    try:
        deadline = time.monotonic() + harness.START_TIMEOUT_S
        bootstrap = f"127.0.0.1:{port}"
        while harness.api_versions_error(bootstrap) is not None:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        text = harness.ANSI_ESCAPE.sub("", log_path.read_text())
        warnings = [line for line in text.splitlines() if "ignoring Kafka setting" in line]
        for name in WITHOUT_MEANING:
            named = [line for line in warnings if f"setting {name}=" in line]
            assert len(named) == 1, (name, warnings)
        controller = [line for line in warnings if f"CONTROLLER://127.0.0.1:{port + 1}" in line
                      and "setting listeners:" in line]
        assert len(controller) == 1, warnings
        assert len(warnings) == len(WITHOUT_MEANING) + 2, warnings  # + advertised CONTROLLER
        with kafka_wire.Connection(bootstrap) as connection:
            brokers = connection.metadata([])["brokers"]
        assert [(b["node_id"], b["port"]) for b in brokers] == [(1, port)]
    finally:
        process.terminate()
        process.wait(timeout=harness.STOP_TIMEOUT_S)
    assert process.returncode == 0


@pytest.mark.ringtail_only("start-up refusals of settings whose meaning Ringtail would change")
@pytest.mark.parametrize("extra, fragment", [
    ("process.roles=controller\n", "process.roles"),
    # The PLAINTEXT listener mapped to SSL needs a keystore; Kafka's default type (JKS) is refused.
    ("listener.security.protocol.map=PLAINTEXT:SSL,CONTROLLER:PLAINTEXT\n",
     "listener PLAINTEXT: invalid ssl.keystore.type"),
    # Several log.dirs are served (JBOD); the same directory twice is refused.
    ("log.dirs=/tmp/a,/tmp/a\n", "duplicate log directory /tmp/a"),
    ("no.such.setting=1\n", "unknown property `no.such.setting`"),
])
def test_settings_that_would_change_meaning_are_refused(tmp_path, extra, fragment):
    path = _stock_properties(tmp_path, harness.free_port_pair(), extra)
    result = subprocess.run([str(harness.ringtail_bin()), "serve", "--config", str(path),
                             "--shards", "1"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert fragment in result.stderr, result.stderr
