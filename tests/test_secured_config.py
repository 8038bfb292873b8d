"""Issue 11's "done when": a secured Kafka server.properties (tests/fixtures/
kafka-4.1-secured.properties: PKCS12 keystore, PEM trust store, JAAS PLAIN users, SCRAM,
StandardAuthorizer, mutual TLS with a mapped certificate principal) starts Apache Kafka 4.1 and
Ringtail alike, and the same confluent-kafka clients with the same settings work against each.

The file is the same for both; only its @...@ placeholders (ports, certificate directory,
log.dirs) are filled in. SCRAM credentials are seeded before the first start the way each
broker does it: `kafka-storage format --add-scram` (kafka.tools.StorageTool) and
`ringtail storage add-scram --config` with the same argument. Ringtail gets one extra
command-line setting, `ringtail.http.listener=` (its operator HTTP listener's default port
would clash between parallel tests).

Each broker is a parameter: `ringtail` runs when the binary exists; `kafka` when Kafka's jars
are installed ($KAFKA_PEER_LIBS or .venv/peers/kafka/libs, `scripts/peers/kafka.sh install`),
otherwise it is skipped with that reason."""

import os
import re
import signal
import subprocess
import time
import uuid

import pytest

import harness
from test_tls import STORE_PASSWORD, Pki  # noqa: F401 (the PKI the TLS tests use)

pytestmark = pytest.mark.timeout(420)

FIXTURE = harness.REPO_ROOT / "tests" / "fixtures" / "kafka-4.1-secured.properties"
SCRAM_SEED = "SCRAM-SHA-512=[name=bob,password=bob-secret]"
TIMEOUT_S = 30
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30


def properties_for(tmp_path, pki):
    """The fixture with its placeholders filled in; returns (path, ports)."""
    controller = harness.free_port()
    ports = {"SASL_SSL_PORT": harness.free_port(), "SSL_PORT": harness.free_port(),
             "CONTROLLER_PORT": controller}
    text = FIXTURE.read_text()
    for name, port in ports.items():
        text = text.replace(f"@{name}@", str(port))
    text = text.replace("@PKI@", str(pki.dir)).replace("@LOG_DIRS@", str(tmp_path / "data"))
    assert "@" not in re.sub(r"#.*", "", text), "unfilled placeholder"
    path = tmp_path / "server.properties"
    path.write_text(text)
    return path, ports


class SecuredNode:
    """One broker started from `properties` (Ringtail's binary or Kafka's kafka.Kafka)."""

    def __init__(self, target, properties, tmp_path):
        self.target, self.properties, self.dir = target, properties, tmp_path
        self.log_path = tmp_path / "broker.log"
        self.process = None

    def start(self, ready_address):
        if self.target == "ringtail":
            seed = [str(harness.ringtail_bin()), "storage", "add-scram", "--config",
                    str(self.properties), SCRAM_SEED]
            command = [str(harness.ringtail_bin()), "serve", "--config", str(self.properties),
                       "--shards", "1", "--set", "ringtail.http.listener="]
            env = {**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"}
        else:
            libs = harness.kafka_libs()
            java = ["java", "-cp", f"{libs}/*",
                    f"-Dlog4j2.configurationFile=file:{libs.parent}/config/tools-log4j2.properties"]
            seed = [*java, "-Xmx256M", "kafka.tools.StorageTool", "format", "--standalone",
                    "-t", kafka_cluster_id(), "-c", str(self.properties), "--add-scram", SCRAM_SEED]
            command = ["java", "-Xmx1G", "-Xms1G", "-XX:+UseG1GC", "-cp", f"{libs}/*",
                       f"-Dlog4j2.configurationFile=file:{libs.parent}/config/log4j2.properties",
                       f"-Dkafka.logs.dir={self.dir / 'logs'}", "kafka.Kafka",
                       str(self.properties)]
            env = dict(os.environ)
        with open(self.log_path, "ab") as log:
            log.write(f"===== test: {' '.join(seed)}\n".encode())
            log.flush()
            seeded = subprocess.run(seed, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL, timeout=120)
            assert seeded.returncode == 0, self.log_path.read_text()[-3000:]
            log.write(f"===== test: {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env=env, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + (harness.KAFKA_START_TIMEOUT_S if self.target == "kafka"
                                       else harness.START_TIMEOUT_S)
        while True:
            assert self.process.poll() is None, f"exited during start-up:\n{self.log_tail()}"
            if self.admin_ready(ready_address):
                return self
            assert time.monotonic() < deadline, f"not ready:\n{self.log_tail()}"
            time.sleep(0.5)

    def admin_ready(self, address):
        from confluent_kafka.admin import AdminClient
        try:
            metadata = AdminClient({**admin_config(address), "socket.timeout.ms": 3000}) \
                .list_topics(timeout=3)
            return bool(metadata.brokers)
        except Exception:  # noqa: BLE001 (not up yet)
            return False

    def log_tail(self, lines=80):
        texts = [self.log_path]
        if self.target == "kafka":
            texts.append(self.dir / "logs" / "server.log")
        out = []
        for path in texts:
            if path.exists():
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=harness.KAFKA_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def kafka_cluster_id():
    """A random cluster id as `kafka-storage random-uuid` prints it (base64url, 22 chars)."""
    import base64
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def tls(pki):
    return {"ssl.ca.location": pki.path("ca.crt")}


def admin_config(address):
    return sasl_config(address, None, "PLAIN", "admin", "admin-secret")


_PKI = {}


def sasl_config(address, pki, mechanism, user, password):
    pki = pki or _PKI["pki"]
    return {"bootstrap.servers": address, "security.protocol": "SASL_SSL",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
            **tls(pki)}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    _PKI["pki"] = Pki(tmp_path_factory.mktemp("secured-pki"))
    return _PKI["pki"]


def available(target):
    if target == "ringtail":
        if not harness.ringtail_bin().is_file():
            return f"ringtail binary not found at {harness.ringtail_bin()}"
    elif not (harness.kafka_libs() / ".installed").is_file():
        return (f"Kafka is not installed in {harness.kafka_libs()} (scripts/peers/kafka.sh "
                f"install .venv/peers/kafka, or set KAFKA_PEER_LIBS)")
    return None


def produce(config, topic, values):
    """Produces `values` to `topic`; the first delivery error code, or None."""
    from confluent_kafka import Producer
    producer = Producer({**config, "message.timeout.ms": 10000})
    outcome = []
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, msg: outcome.append(err))
    producer.flush(20)
    assert len(outcome) == len(values), "delivery reports missing"
    errors = [e.code() for e in outcome if e is not None]
    return errors[0] if errors else None


def eventually(check, what, timeout_s=TIMEOUT_S):
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout_s}s (last {last!r})")


@pytest.mark.parametrize("target", ["ringtail", "kafka"])
def test_the_same_secured_properties_and_clients_work(target, tmp_path, pki):
    from confluent_kafka import Consumer, KafkaException
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       AdminClient, NewTopic, ResourcePatternType, ResourceType)
    reason = available(target)
    if reason:
        pytest.skip(reason)
    properties, ports = properties_for(tmp_path, pki)
    sasl_ssl = f"127.0.0.1:{ports['SASL_SSL_PORT']}"
    ssl = f"127.0.0.1:{ports['SSL_PORT']}"
    node = SecuredNode(target, properties, tmp_path)
    try:
        node.start(sasl_ssl)
        # The super user (PLAIN over SASL_SSL) creates topics and ACLs.
        admin = AdminClient(admin_config(sasl_ssl))
        orders, secret = f"orders-{uuid.uuid4().hex[:8]}", f"secret-{uuid.uuid4().hex[:8]}"
        group = f"billing-{uuid.uuid4().hex[:8]}"
        for future in admin.create_topics([NewTopic(orders, 2, 1),
                                           NewTopic(secret, 1, 1)]).values():
            future.result(timeout=TIMEOUT_S)
        acls = [
            AclBinding(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED,
                       "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW),
            AclBinding(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED,
                       "User:bob", "*", AclOperation.READ, AclPermissionType.ALLOW),
            AclBinding(ResourceType.GROUP, group, ResourcePatternType.LITERAL,
                       "User:bob", "*", AclOperation.READ, AclPermissionType.ALLOW),
        ]
        for future in admin.create_acls(acls).values():
            future.result(timeout=TIMEOUT_S)

        # alice: PLAIN (JAAS user) over SASL_SSL may write orders-*, not the secret topic.
        alice = sasl_config(sasl_ssl, pki, "PLAIN", "alice", "alice-secret")
        values = [f"order-{i}".encode() for i in range(20)]
        eventually(lambda: produce(alice, orders, values[:1]) is None, "alice writes orders")
        assert produce(alice, orders, values[1:]) is None
        assert produce(alice, secret, [b"x"]) == TOPIC_AUTHORIZATION_FAILED
        # The same alice by certificate: SSL with mutual TLS, CN=alice mapped to User:alice.
        alice_cert = {"bootstrap.servers": ssl, "security.protocol": "SSL", **tls(pki),
                      "ssl.certificate.location": pki.path("client.crt"),
                      "ssl.key.location": pki.path("client.key")}
        assert produce(alice_cert, orders, [b"order-by-cert"]) is None
        assert produce(alice_cert, secret, [b"x"]) == TOPIC_AUTHORIZATION_FAILED

        # bob: SCRAM-SHA-512, seeded before the first start, reads orders in his group.
        bob = sasl_config(sasl_ssl, pki, "SCRAM-SHA-512", "bob", "bob-secret")
        consumer = Consumer({**bob, "group.id": group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        try:
            consumer.subscribe([orders])
            got, deadline = set(), time.monotonic() + 60
            while len(got) < len(values) + 1 and time.monotonic() < deadline:
                message = consumer.poll(1.0)
                if message is not None:
                    assert message.error() is None, message.error()
                    got.add(message.value())
            assert got == set(values) | {b"order-by-cert"}
            consumer.commit(asynchronous=False)
        finally:
            consumer.close()
        # bob in a group without an ACL is refused.
        other = Consumer({**bob, "group.id": group + "-other", "auto.offset.reset": "earliest"})
        try:
            other.subscribe([orders])
            codes, deadline = [], time.monotonic() + TIMEOUT_S
            while GROUP_AUTHORIZATION_FAILED not in codes and time.monotonic() < deadline:
                message = other.poll(0.5)
                if message is not None and message.error():
                    codes.append(message.error().code())
            assert GROUP_AUTHORIZATION_FAILED in codes, codes
        finally:
            other.close()

        # A wrong password fails authentication (SASL_SSL), and so does a client without a
        # certificate on the mutual-TLS listener.
        wrong = AdminClient(sasl_config(sasl_ssl, pki, "SCRAM-SHA-512", "bob", "wrong"))
        with pytest.raises(KafkaException):
            wrong.list_topics(timeout=5)
        no_cert = AdminClient({"bootstrap.servers": ssl, "security.protocol": "SSL", **tls(pki)})
        with pytest.raises(KafkaException):
            no_cert.list_topics(timeout=5)
    except BaseException:
        print(node.log_tail())
        raise
    finally:
        node.stop()
    if target == "ringtail":
        found = harness.panic_in(node.log_path.read_text(errors="replace"))
        assert not found, found
