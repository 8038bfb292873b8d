"""Several named listeners: `listeners`, `listener.security.protocol.map` with a custom name,
and Metadata answering each client with the advertised address of the listener it connected on
(Kafka's per-listener endpoints).

The four-listener tests bind PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL on 127.0.0.1 and
advertise every one of them as `localhost` (which resolves to loopback, so clients can follow
it; the test certificate's SAN names both): a raw connection on each bound address gets that
listener's advertised `localhost:PORT` in Metadata, and confluent-kafka clients bootstrapped on
the bound address follow it to produce and consume. Certificates come from test_tls's `Pki`;
SASL is PLAIN with JAAS users, as in test_sasl_ssl."""

import re
import shutil
import ssl
import time

import pytest

import harness
import kafka_wire
from test_tls import Pki, pem_file_settings

ADVERTISED_HOST = "localhost"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" user_alice="alice-secret";')
MESSAGES = 20
CLIENT_TIMEOUT_S = 60
MAX_CONNECTIONS = 40  # per listener, to see both shards accept one (SO_REUSEPORT hashing)


def test_metadata_answers_the_listener_of_the_connection(start_broker):
    broker = start_broker(listeners=[("INTERNAL", "PLAINTEXT")])
    for name in ("PLAINTEXT", "INTERNAL"):
        bootstrap = broker.bootstrap_for(name)
        with kafka_wire.Connection(bootstrap) as connection:
            brokers = connection.metadata([])["brokers"]
        assert [f"{b['host']}:{b['port']}" for b in brokers] == [bootstrap], (name, brokers)


# ----- all four security protocols at once, advertised as localhost -----

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    return Pki(tmp_path_factory.mktemp("pki"))


def bound_port(broker, listener):
    return int(broker.bootstrap_for(listener).rsplit(":", 1)[1])


def advertised(broker, listener):
    return f"{ADVERTISED_HOST}:{bound_port(broker, listener)}"


def advertised_listeners(broker):
    """`advertised.listeners` for `broker` (a callable setting: the ports are the broker's):
    every client listener as localhost; a Kafka node's CONTROLLER as the harness binds it."""
    entries = [f"{name}://{advertised(broker, name)}" for name in PROTOCOLS]
    if broker.target == "kafka":
        entries.append(f"CONTROLLER://127.0.0.1:{broker.port + 1}")
    return ",".join(entries)


def four_listener_broker(start_broker, pki, shards=1):
    settings = {
        **pem_file_settings(pki),
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
        "advertised.listeners": advertised_listeners,
    }
    return start_broker(shards=shards, settings=settings,
                        listeners=[(name, name) for name in PROTOCOLS[1:]])


def client_config(broker, pki, listener, **extra):
    """confluent-kafka settings for `listener`, bootstrapped on its bound 127.0.0.1 address."""
    config = {"bootstrap.servers": broker.bootstrap_for(listener), "security.protocol": listener}
    if "SSL" in listener:
        config["ssl.ca.location"] = pki.path("ca.crt")
    if listener.startswith("SASL"):
        config.update({"sasl.mechanism": "PLAIN", "sasl.username": "alice",
                       "sasl.password": "alice-secret"})
    config.update(extra)
    return config


def raw_connection(broker, pki, listener):
    """A kafka_wire connection to `listener`'s bound address: TLS (trusting the test CA) for
    SSL / SASL_SSL, then SASL PLAIN as alice for SASL_*. Returns it ready for requests."""
    connection = kafka_wire.Connection(broker.bootstrap_for(listener))
    if "SSL" in listener:
        context = ssl.create_default_context(cafile=pki.path("ca.crt"))
        connection.sock = context.wrap_socket(connection.sock, server_hostname="127.0.0.1")
    if listener.startswith("SASL"):
        reader = connection.request(17, 1, kafka_wire.string("PLAIN"))  # SaslHandshake v1
        assert reader.int16() == 0, f"SaslHandshake on {listener}"
        reader = connection.request(36, 1, kafka_wire.bytes_(b"\0alice\0alice-secret"))
        assert reader.int16() == 0, f"SaslAuthenticate on {listener}: {reader.string()}"
    return connection


def metadata_endpoints(connection):
    return [f"{b['host']}:{b['port']}" for b in connection.metadata([])["brokers"]]


def round_trip(broker, pki, listener, topic):
    """Produces MESSAGES records to `topic` and reads them back with confluent-kafka over
    `listener`; the clients reach the partition leader at its advertised address."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
    errors = []
    admin = AdminClient(client_config(broker, pki, listener, error_cb=errors.append))
    brokers = admin.list_topics(timeout=CLIENT_TIMEOUT_S).brokers
    assert [f"{b.host}:{b.port}" for b in brokers.values()] == [advertised(broker, listener)], \
        (listener, brokers)
    producer = Producer(client_config(broker, pki, listener, error_cb=errors.append))
    sent = [f"{listener}-{i}".encode() for i in range(MESSAGES)]
    for value in sent:
        producer.produce(topic, value)
    assert producer.flush(CLIENT_TIMEOUT_S) == 0, f"not delivered over {listener}: {errors}"
    consumer = Consumer(client_config(broker, pki, listener, error_cb=errors.append, **{
        "group.id": harness.unique_topic("listeners"), "enable.auto.commit": False}))
    received = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(received) < MESSAGES and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                received.append(message.value())
    finally:
        consumer.close()
    assert received == sent, (listener, errors)


def test_four_listener_types_advertised_as_localhost(start_broker, pki):
    broker = four_listener_broker(start_broker, pki)
    for listener in PROTOCOLS:
        with raw_connection(broker, pki, listener) as connection:
            assert metadata_endpoints(connection) == [advertised(broker, listener)], listener
    for listener in PROTOCOLS:
        topic = harness.create_topic(broker, harness.unique_topic(f"listen-{listener.lower()}"), 1)
        round_trip(broker, pki, listener, topic)


def shard_of(broker, listener, local_port, timeout_s=5.0):
    """The shard Ringtail logged as accepting our connection from `local_port` on `listener`."""
    pattern = re.compile(rf"accepted connection from 127\.0\.0\.1:{local_port} on shard (\d+) "
                         rf"\(listener {listener}\)")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = pattern.search(broker.log_text())
        if match:
            return int(match.group(1))
        time.sleep(0.05)
    raise AssertionError(f"no 'accepted connection from 127.0.0.1:{local_port} on shard N "
                         f"(listener {listener})' line in the log")


@pytest.mark.skipif(harness.available_cpus() < 2, reason="needs 2 CPUs for 2 shards")
@pytest.mark.ringtail_only("shards (ringtail.shards / --shards) and the per-shard 'accepted "
                           "connection' log lines")
def test_four_listener_types_on_two_shards(start_broker, pki):
    broker = four_listener_broker(start_broker, pki, shards=2)
    for listener in PROTOCOLS:
        # Connections until each shard accepted (and authenticated) one on this listener.
        shards = set()
        for _ in range(MAX_CONNECTIONS):
            with raw_connection(broker, pki, listener) as connection:
                assert metadata_endpoints(connection) == [advertised(broker, listener)], \
                    listener
                shards.add(shard_of(broker, listener, connection.sock.getsockname()[1]))
            if shards == {0, 1}:
                break
        assert shards == {0, 1}, \
            f"{MAX_CONNECTIONS} connections on {listener} all accepted on shard(s) {shards}"
    for listener in PROTOCOLS:
        topic = harness.create_topic(broker, harness.unique_topic(f"listen2-{listener.lower()}"),
                                     1)
        round_trip(broker, pki, listener, topic)
