"""SASL over TLS (issue 11, SASL_SSL listeners): PLAIN and SCRAM-SHA-256/512 with confluent-kafka
kafka-python, aiokafka and kcat over a TLS listener whose certificate the tests make with openssl
(the `pki` fixture of test_tls), through test_sasl's client helpers. Kafka's settings, so the
same tests run against the Kafka peer."""

import time

import pytest

import harness
from test_sasl import (KCAT, KCAT_MECHANISMS, MECHANISMS, aiokafka_round_trip,
                       kafka_python_round_trip, kcat_round_trip)
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


def client_user(broker, pki, mechanism):
    """(user, password) for `mechanism`: alice from the JAAS config for PLAIN, else a new SCRAM
    user, waited for until the SASL_SSL listener knows it (Kafka propagates credentials
    asynchronously)."""
    if mechanism == "PLAIN":
        return "alice", "alice-secret"
    from confluent_kafka import KafkaException, Producer
    user = harness.unique_topic("scram-" + mechanism[-3:])
    add_scram_user(broker, user, "py-secret", mechanism)
    deadline = time.monotonic() + 30
    while True:
        producer = Producer(config(broker, pki, mechanism, user, "py-secret"))
        try:
            producer.list_topics(timeout=5)
            return user, "py-secret"
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def python_client_settings(broker, pki, mechanism, user, password):
    return dict(bootstrap_servers=broker.bootstrap_for(LISTENER), security_protocol="SASL_SSL",
                sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_over_tls(sasl_ssl_broker, pki, mechanism):
    user, password = client_user(sasl_ssl_broker, pki, mechanism)
    kafka_python_round_trip(sasl_ssl_broker, {
        **python_client_settings(sasl_ssl_broker, pki, mechanism, user, password),
        "ssl_cafile": pki.path("ca.crt")})


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_aiokafka_over_tls(sasl_ssl_broker, pki, mechanism):
    from aiokafka.helpers import create_ssl_context
    user, password = client_user(sasl_ssl_broker, pki, mechanism)
    aiokafka_round_trip(sasl_ssl_broker, {
        **python_client_settings(sasl_ssl_broker, pki, mechanism, user, password),
        "ssl_context": create_ssl_context(cafile=str(pki.path("ca.crt")))})


@KCAT
# KCAT_MECHANISMS: PLAIN only, for the librdkafka 2.0.2 SCRAM nonce bug (see test_sasl).
@pytest.mark.parametrize("mechanism", KCAT_MECHANISMS)
def test_kcat_over_tls(sasl_ssl_broker, pki, mechanism):
    user, password = client_user(sasl_ssl_broker, pki, mechanism)
    kcat_round_trip(sasl_ssl_broker, mechanism, user, password, listener=LISTENER,
                    options=[f"ssl.ca.location={pki.path('ca.crt')}"])
