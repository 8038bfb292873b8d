"""SASL over TLS (issue 11, SASL_SSL listeners): PLAIN and SCRAM-SHA-256/512 with confluent-kafka
and kafka-python over a TLS listener whose certificate the tests make with openssl (the `pki`
fixture of test_tls). Kafka's settings, so the same tests run against the Kafka peer."""

import time

import pytest

import harness
from test_tls import Pki, pem_file_settings

pytestmark = pytest.mark.timeout(300)

LISTENER = "SASL_SSL"
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" user_alice="alice-secret";')
SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def sasl_ssl_broker(module_broker_factory, pki):
    settings = {
        **pem_file_settings(pki),
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": SCRAM_JAAS,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": SCRAM_JAAS,
    }
    return module_broker_factory(settings=settings, listeners=[(LISTENER, LISTENER)])


def config(broker, pki, mechanism, user, password, **extra):
    return {"bootstrap.servers": broker.bootstrap_for(LISTENER), "security.protocol": "SASL_SSL",
            "ssl.ca.location": pki.path("ca.crt"), "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password, **extra}


def round_trip(broker, pki, mechanism, user, password, count=50):
    from confluent_kafka import Consumer, Producer
    topic = harness.create_topic(broker, harness.unique_topic("sasl-ssl"), 1)
    errors = []
    producer = Producer(config(broker, pki, mechanism, user, password, error_cb=errors.append))
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i)
    assert producer.flush(60) == 0, f"not delivered over SASL_SSL; errors {errors}"
    consumer = Consumer(config(broker, pki, mechanism, user, password,
                               **{"group.id": harness.unique_topic("g"),
                                  "auto.offset.reset": "earliest"}))
    values = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    assert values == [b"v%d" % i for i in range(count)]


def add_scram_user(broker, user, password, mechanism):
    """One upsertion (Kafka refuses two for one user in a request: DUPLICATE_RESOURCE)."""
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    admin = harness.admin_client(broker)
    mechanism = getattr(ScramMechanism, mechanism.replace("-", "_"))
    upsertions = [UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 4096),
                                               password.encode())]
    for future in admin.alter_user_scram_credentials(upsertions).values():
        future.result(timeout=30)


def test_plain_over_tls_confluent(sasl_ssl_broker, pki):
    round_trip(sasl_ssl_broker, pki, "PLAIN", "alice", "alice-secret")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_over_tls_confluent(sasl_ssl_broker, pki, mechanism):
    user = harness.unique_topic("scram-user")
    add_scram_user(sasl_ssl_broker, user, "scram-secret", mechanism)
    # Kafka propagates new credentials asynchronously: retry the first connection briefly.
    deadline = time.monotonic() + 30
    while True:
        try:
            round_trip(sasl_ssl_broker, pki, mechanism, user, "scram-secret", count=20)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_wrong_password_over_tls_is_refused(sasl_ssl_broker, pki):
    from confluent_kafka import Producer
    errors = []
    producer = Producer(config(sasl_ssl_broker, pki, "PLAIN", "alice", "wrong",
                               error_cb=errors.append))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any("uthenticat" in str(e) for e in errors):
        producer.poll(0.2)
    assert any("uthenticat" in str(e) for e in errors), errors


def test_plain_over_tls_kafka_python(sasl_ssl_broker, pki):
    from kafka import KafkaConsumer, KafkaProducer
    topic = harness.create_topic(sasl_ssl_broker, harness.unique_topic("sasl-ssl-kp"), 1)
    common = dict(bootstrap_servers=sasl_ssl_broker.bootstrap_for(LISTENER),
                  security_protocol="SASL_SSL", ssl_cafile=pki.path("ca.crt"),
                  sasl_mechanism="PLAIN", sasl_plain_username="alice",
                  sasl_plain_password="alice-secret")
    producer = KafkaProducer(**common)
    for i in range(20):
        producer.send(topic, b"kp%d" % i)
    producer.flush(timeout=60)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", group_id=None, **common)
    values = []
    deadline = time.monotonic() + 60
    while len(values) < 20 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            values += [r.value for r in records]
    consumer.close()
    assert values == [b"kp%d" % i for i in range(20)]
