"""TLS listeners (issue 11): real clients (confluent-kafka, kafka-python, aiokafka, kcat) over
SSL with PEM-file, inline-PEM and PKCS12 keystores; an untrusted CA refused by the client; a
plaintext client and garbage on the TLS port (the broker survives); mutual TLS with
ssl.client.auth=required and the certificate principal. Certificates are made with openssl in
a temporary directory by the `pki` fixture."""

import asyncio
import shutil
import socket
import ssl
import struct
import subprocess
import time
import uuid

import pytest

import harness

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

OPENSSL_TIMEOUT_S = 60
CLIENT_TIMEOUT_S = 60
MESSAGES = 200
STORE_PASSWORD = "store-secret"
KEY_PASSWORD = "key-secret"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True,
                   timeout=OPENSSL_TIMEOUT_S)


class Pki:
    """A CA, a broker certificate (SAN 127.0.0.1 / localhost, an EC P-256 key) in every keystore
    form, a client certificate signed by the CA, and a second CA that signed nothing the broker
    uses but a client certificate (`stranger`)."""

    def __init__(self, directory):
        self.dir = directory
        d = str(directory)
        for ca in ("ca", "other-ca"):
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                    "-subj", f"/CN=Ringtail Test {ca}", cwd=d)
        (directory / "server.ext").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
            "basicConstraints=CA:FALSE\n")
        (directory / "client.ext").write_text(
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
        # `stranger`: a client certificate like alice's but signed by the other CA, which the
        # broker's trust store does not hold.
        for name, subject, ca, ext in (
                ("server", "/CN=localhost", "ca", "server"),
                ("client", "/O=Ringtail/OU=Clients/CN=alice", "ca", "client"),
                ("stranger", "/O=Ringtail/OU=Clients/CN=mallory", "other-ca", "client")):
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", f"{name}.key", cwd=d)
            openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
                    cwd=d)
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey",
                    f"{ca}.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                    "-extfile", f"{ext}.ext", cwd=d)
        # PEM keystore file: key + chain (Kafka's PEM ssl.keystore.location).
        (directory / "server-keystore.pem").write_text(
            (directory / "server.key").read_text() + (directory / "server.crt").read_text()
            + (directory / "ca.crt").read_text())
        # The same with the key encrypted (PKCS#8 PBES2, ssl.key.password).
        openssl("pkcs8", "-topk8", "-in", "server.key", "-out", "server-encrypted.key",
                "-v2", "aes-256-cbc", "-passout", f"pass:{KEY_PASSWORD}", cwd=d)
        (directory / "server-keystore-encrypted.pem").write_text(
            (directory / "server-encrypted.key").read_text()
            + (directory / "server.crt").read_text())
        openssl("pkcs12", "-export", "-in", "server.crt", "-inkey", "server.key",
                "-certfile", "ca.crt", "-name", "broker", "-out", "server.p12",
                "-passout", f"pass:{STORE_PASSWORD}", cwd=d)
        # Client stores as a Kafka client names them: a PKCS12 keystore with alice's key and
        # chain, a PKCS12 trust store holding the CA certificate only.
        openssl("pkcs12", "-export", "-in", "client.crt", "-inkey", "client.key",
                "-certfile", "ca.crt", "-name", "alice", "-out", "client.p12",
                "-passout", f"pass:{STORE_PASSWORD}", cwd=d)
        # The trust store as Kafka users make it, with the JDK's keytool: a trusted-certificate
        # entry under an alias. (`openssl pkcs12 -export -nokeys` writes an unnamed bag without
        # Java's trust attribute, which Java's KeyStore does not read as trusted either.)
        keytool = shutil.which("keytool")
        assert keytool, "keytool (the JDK's) is needed to make the PKCS12 trust store"
        subprocess.run([keytool, "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.crt",
                        "-keystore", "truststore.p12", "-storetype", "PKCS12",
                        "-storepass", STORE_PASSWORD], cwd=d, check=True, capture_output=True)

    def path(self, name):
        return str(self.dir / name)

    def text(self, name):
        return (self.dir / name).read_text()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def one_line(pem):
    """A PEM text on one line: how inline PEM values fit in a .properties file (Kafka's
    PemParser ignores whitespace inside a block)."""
    return " ".join(pem.split())


def pem_file_settings(pki):
    return {"ssl.keystore.type": "PEM", "ssl.keystore.location": pki.path("server-keystore.pem")}


def ssl_broker(start_broker, settings):
    return start_broker(listeners=[("SSL", "SSL")], settings=settings)


def confluent_ssl(pki, extra=None):
    config = {"security.protocol": "SSL", "ssl.ca.location": pki.path("ca.crt")}
    config.update(extra or {})
    return config


def confluent_round_trip(broker, client_config, messages=MESSAGES):
    """Creates a topic over PLAINTEXT, produces and consumes `messages` over the SSL listener
    with confluent-kafka; returns what was consumed."""
    from confluent_kafka import Consumer, Producer
    topic = harness.unique_topic("tls")
    harness.create_topic(broker, topic, 1)
    bootstrap = broker.bootstrap_for("SSL")
    producer = Producer({"bootstrap.servers": bootstrap, **client_config})
    sent = [f"tls-{i}".encode() for i in range(messages)]
    for value in sent:
        producer.produce(topic, value)
    assert producer.flush(CLIENT_TIMEOUT_S) == 0, "messages left unsent over SSL"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tls-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         **client_config})
    consumer.subscribe([topic])
    received = []
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    try:
        while len(received) < messages and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            received.append(message.value())
    finally:
        consumer.close()
    assert received == sent
    return received


def test_confluent_produce_consume_pem_file_keystore(start_broker, pki):
    broker = ssl_broker(start_broker, pem_file_settings(pki))
    confluent_round_trip(broker, confluent_ssl(pki))


def test_confluent_inline_pem_keystore(start_broker, pki):
    """KIP-651 inline PEM, per listener, on one line as in a .properties file."""
    broker = ssl_broker(start_broker, {
        "listener.name.ssl.ssl.keystore.type": "PEM",
        "listener.name.ssl.ssl.keystore.certificate.chain": one_line(pki.text("server.crt")),
        "listener.name.ssl.ssl.keystore.key": one_line(pki.text("server.key")),
    })
    confluent_round_trip(broker, confluent_ssl(pki))


@pytest.mark.ringtail_only("Kafka's JDK cannot decrypt a PBES2 (openssl's default) encrypted "
                           "PKCS#8 key: 'PBES2 SecretKeyFactory not available'")
def test_confluent_inline_pem_keystore_with_encrypted_key(start_broker, pki):
    """KIP-651 inline PEM (per listener) with an encrypted PKCS#8 key and ssl.key.password."""
    broker = ssl_broker(start_broker, {
        "listener.name.ssl.ssl.keystore.type": "PEM",
        "listener.name.ssl.ssl.keystore.certificate.chain": one_line(pki.text("server.crt")),
        "listener.name.ssl.ssl.keystore.key": one_line(pki.text("server-encrypted.key")),
        "listener.name.ssl.ssl.key.password": KEY_PASSWORD,
    })
    confluent_round_trip(broker, confluent_ssl(pki))


def test_confluent_pkcs12_keystore_per_listener(start_broker, pki):
    broker = ssl_broker(start_broker, {
        "listener.name.ssl.ssl.keystore.type": "PKCS12",
        "listener.name.ssl.ssl.keystore.location": pki.path("server.p12"),
        "listener.name.ssl.ssl.keystore.password": STORE_PASSWORD,
        "listener.name.ssl.ssl.key.password": STORE_PASSWORD,
    })
    confluent_round_trip(broker, confluent_ssl(pki))


def test_kafka_python_produce_consume(start_broker, pki):
    from kafka import KafkaConsumer, KafkaProducer
    broker = ssl_broker(start_broker, pem_file_settings(pki))
    topic = harness.unique_topic("tls-kp")
    harness.create_topic(broker, topic, 1)
    ssl = {"security_protocol": "SSL", "ssl_cafile": pki.path("ca.crt")}
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_for("SSL"), **ssl)
    sent = [f"kp-{i}".encode() for i in range(MESSAGES)]
    for value in sent:
        producer.send(topic, value)
    producer.flush(timeout=CLIENT_TIMEOUT_S)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap_for("SSL"),
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000,
                             group_id=None, **ssl)
    received = []
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while len(received) < MESSAGES and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            received += [r.value for r in records]
    consumer.close()
    assert received == sent


def test_aiokafka_produce_consume(start_broker, pki):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context
    broker = ssl_broker(start_broker, pem_file_settings(pki))
    topic = harness.unique_topic("tls-aio")
    harness.create_topic(broker, topic, 1)
    sent = [f"aio-{i}".encode() for i in range(MESSAGES)]

    async def run():
        context = create_ssl_context(cafile=pki.path("ca.crt"))
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_for("SSL"),
                                    security_protocol="SSL", ssl_context=context)
        await producer.start()
        try:
            for value in sent:
                await producer.send(topic, value)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap_for("SSL"),
                                    security_protocol="SSL", ssl_context=context,
                                    auto_offset_reset="earliest")
        await consumer.start()
        received = []
        try:
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    received += [r.value for r in records]
        finally:
            await consumer.stop()
        return received

    assert asyncio.run(asyncio.wait_for(run(), CLIENT_TIMEOUT_S)) == sent


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
def test_kcat_produce_consume(start_broker, pki):
    broker = ssl_broker(start_broker, pem_file_settings(pki))
    topic = harness.unique_topic("tls-kcat")
    harness.create_topic(broker, topic, 1)
    common = ["kcat", "-b", broker.bootstrap_for("SSL"), "-X", "security.protocol=SSL",
              "-X", f"ssl.ca.location={pki.path('ca.crt')}", "-t", topic]
    lines = [f"kcat-{i}" for i in range(MESSAGES)]
    produced = subprocess.run(common + ["-P"], input="\n".join(lines) + "\n", text=True,
                              capture_output=True, timeout=CLIENT_TIMEOUT_S)
    assert produced.returncode == 0 and "ERROR" not in produced.stderr, produced.stderr
    consumed = subprocess.run(common + ["-C", "-o", "beginning", "-e", "-q"], text=True,
                              capture_output=True, timeout=CLIENT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == lines


def test_untrusted_ca_is_refused_by_the_client(start_broker, pki):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    broker = ssl_broker(start_broker, pem_file_settings(pki))
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("SSL"),
                         "security.protocol": "SSL", "ssl.ca.location": pki.path("other-ca.crt")})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    # The broker goes on: a trusting client still works.
    trusting = AdminClient({"bootstrap.servers": broker.bootstrap_for("SSL"),
                            **confluent_ssl(pki)})
    assert trusting.list_topics(timeout=CLIENT_TIMEOUT_S).brokers


def api_versions_frame():
    """A plaintext ApiVersions v0 request (correlation id 7, null client id)."""
    body = struct.pack(">hhih", 18, 0, 7, -1)
    return struct.pack(">i", len(body)) + body


def read_until_closed(sock, timeout_s=20):
    sock.settimeout(timeout_s)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


def test_plaintext_client_and_garbage_on_the_tls_port(start_broker, pki):
    broker = ssl_broker(start_broker, pem_file_settings(pki))
    host, port = broker.bootstrap_for("SSL").split(":")
    for payload in (api_versions_frame(), b"\x00garbage\xff" * 50,
                    # A truncated TLS record: a handshake header promising more than is sent.
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            answer = read_until_closed(sock)
        # Never a Kafka response (size + correlation id 7); at most a TLS alert (type 21).
        assert answer == b"" or answer[0] == 0x15, answer[:16]
    # Every other connection goes on.
    confluent_round_trip(broker, confluent_ssl(pki), messages=10)
    if broker.target == "ringtail":
        assert "TLS handshake failed" in broker.log_text(), broker.log_tail()


@pytest.mark.ringtail_only("ringtail.ssl.handshake.timeout.ms is Ringtail's setting (Kafka waits "
                           "connections.max.idle.ms)")
def test_a_client_that_never_finishes_the_handshake_is_disconnected(start_broker, pki):
    broker = ssl_broker(start_broker, {**pem_file_settings(pki),
                                       "ringtail.ssl.handshake.timeout.ms": "1000"})
    host, port = broker.bootstrap_for("SSL").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        started = time.monotonic()
        assert read_until_closed(sock, timeout_s=10) == b""
        assert time.monotonic() - started < 8
    assert "TLS handshake not finished" in broker.log_text(), broker.log_tail()
    confluent_round_trip(broker, confluent_ssl(pki), messages=10)


def mtls_settings(pki, rules=None):
    settings = {**pem_file_settings(pki), "ssl.client.auth": "required",
                "ssl.truststore.type": "PEM", "ssl.truststore.location": pki.path("ca.crt")}
    if rules:
        settings["ssl.principal.mapping.rules"] = rules
    return settings


def test_mutual_tls_required_refuses_a_client_without_certificate(start_broker, pki):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    broker = ssl_broker(start_broker, mtls_settings(pki))
    anonymous = AdminClient({"bootstrap.servers": broker.bootstrap_for("SSL"),
                             **confluent_ssl(pki)})
    with pytest.raises(KafkaException):
        anonymous.list_topics(timeout=5)
    with_certificate = confluent_ssl(pki, {"ssl.certificate.location": pki.path("client.crt"),
                                           "ssl.key.location": pki.path("client.key")})
    confluent_round_trip(broker, with_certificate, messages=10)
    if broker.target == "ringtail":
        assert "certificate principal User:CN=alice,OU=Clients,O=Ringtail" in broker.log_text(), \
            broker.log_tail()


@pytest.mark.ringtail_only("reads the principal from Ringtail's log line")
def test_certificate_principal_mapped_by_rules(start_broker, pki):
    broker = ssl_broker(start_broker, mtls_settings(
        pki, rules="RULE:^CN=([^,]*),OU=Clients.*$/$1@clients/U,DEFAULT"))
    with_certificate = confluent_ssl(pki, {"ssl.certificate.location": pki.path("client.crt"),
                                           "ssl.key.location": pki.path("client.key")})
    confluent_round_trip(broker, with_certificate, messages=10)
    assert "certificate principal User:ALICE@CLIENTS" in broker.log_text(), broker.log_tail()


@pytest.mark.ringtail_only("start-up error text; Kafka's differs")
@pytest.mark.parametrize("settings, setting", [
    ({"ssl.keystore.type": "PKCS12", "ssl.keystore.location": "server.p12",
      "ssl.keystore.password": "wrong"}, "ssl.keystore.password"),
    ({"ssl.keystore.type": "PEM", "ssl.keystore.location": "missing.pem"},
     "ssl.keystore.location"),
    ({"ssl.keystore.type": "PEM", "ssl.keystore.location": "server-keystore-encrypted.pem",
      "ssl.key.password": "wrong"}, "ssl.key.password"),
    ({"ssl.keystore.type": "PEM", "ssl.keystore.location": "server-keystore.pem",
      "ssl.cipher.suites": "TLS_NO_SUCH_SUITE"}, "ssl.cipher.suites"),
])
def test_bad_stores_stop_start_up_naming_the_setting(tmp_path, pki, settings, setting):
    settings = {k: (pki.path(v) if k.endswith("location") else v) for k, v in settings.items()}
    broker = harness.Broker(tmp_path / "data", tmp_path / "broker.log", settings=settings,
                            listeners=[("SSL", "SSL")])
    try:
        with pytest.raises(harness.BrokerStartError) as failure:
            broker.start()
        assert f"invalid {setting}" in str(failure.value), str(failure.value)
    finally:
        broker.close()


# ----- a certificate principal checked through ACLs (issue 11) -----

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
TOPIC_AUTHORIZATION_FAILED = 29


def test_certificate_principal_authorized_by_acls(start_broker, pki):
    """Mutual TLS; ssl.principal.mapping.rules maps the subject
    `CN=alice,OU=Clients,O=Ringtail` to `User:alice`; ACLs allow alice one topic and not
    another. PLAINTEXT's ANONYMOUS is a super user (the Kafka node's own controller connections
    and the admin client here)."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    broker = ssl_broker(start_broker, {
        **mtls_settings(pki, rules="RULE:^CN=([^,]*),OU=Clients.*$/$1/L,DEFAULT"),
        "authorizer.class.name": STANDARD_AUTHORIZER, "super.users": "User:ANONYMOUS"})
    allowed = harness.create_topic(broker, harness.unique_topic("tls-acl-ok"), 1)
    denied = harness.create_topic(broker, harness.unique_topic("tls-acl-no"), 1)
    admin = harness.admin_client(broker)
    acls = [AclBinding(ResourceType.TOPIC, allowed, ResourcePatternType.LITERAL, "User:alice",
                       "*", operation, AclPermissionType.ALLOW)
            for operation in (AclOperation.WRITE, AclOperation.READ)]
    # librdkafka looks up a consumer's group coordinator even with assign(): READ on the group.
    group = harness.unique_topic("tls-acl-group")
    acls.append(AclBinding(ResourceType.GROUP, group, ResourcePatternType.LITERAL, "User:alice",
                           "*", AclOperation.READ, AclPermissionType.ALLOW))
    for future in admin.create_acls(acls).values():
        future.result(timeout=30)
    alice = confluent_ssl(pki, {"bootstrap.servers": broker.bootstrap_for("SSL"),
                                "ssl.certificate.location": pki.path("client.crt"),
                                "ssl.key.location": pki.path("client.key")})

    def produce(topic):
        producer = Producer({**alice, "message.timeout.ms": 5000,
                             "topic.metadata.refresh.interval.ms": 500})
        outcome = []
        producer.produce(topic, b"from-alice", on_delivery=lambda err, msg: outcome.append(err))
        producer.flush(15)
        assert outcome, "no delivery report"
        return None if outcome[0] is None else outcome[0].code()

    deadline = time.monotonic() + 30  # Kafka applies a new ACL asynchronously
    while produce(allowed) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert produce(allowed) is None
    assert produce(denied) == TOPIC_AUTHORIZATION_FAILED
    # READ on the allowed topic: alice reads her record back (assign, no group).
    consumer = Consumer({**alice, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(allowed, 0, 0)])
        message, deadline = None, time.monotonic() + CLIENT_TIMEOUT_S
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
        assert message is not None and message.error() is None, message and message.error()
        assert message.value() == b"from-alice"
    finally:
        consumer.close()
    if broker.target == "ringtail":
        assert "certificate principal User:alice" in broker.log_text(), broker.log_tail()


# ----- `ringtail bench` with PKCS12 client stores (Kafka's client properties) -----

BENCH_TIMEOUT_S = 120


def test_bench_with_pkcs12_client_stores(start_broker, pki, tmp_path):
    """`ringtail bench produce` / `consume` over mutual TLS with ssl.truststore.type=PKCS12 and
    ssl.keystore.type=PKCS12 given in a --command-config file, as a Kafka client takes them;
    a wrong keystore password fails naming the setting."""
    broker = ssl_broker(start_broker, mtls_settings(pki))
    topic = harness.create_topic(broker, harness.unique_topic("tls-bench"), 1)
    config = tmp_path / "client-ssl.properties"
    config.write_text(
        "security.protocol=SSL\n"
        "ssl.truststore.type=PKCS12\n"
        f"ssl.truststore.location={pki.path('truststore.p12')}\n"
        f"ssl.truststore.password={STORE_PASSWORD}\n"
        "ssl.keystore.type=PKCS12\n"
        f"ssl.keystore.location={pki.path('client.p12')}\n"
        f"ssl.keystore.password={STORE_PASSWORD}\n"
        f"ssl.key.password={STORE_PASSWORD}\n")

    def bench(*args):
        return subprocess.run(
            [str(harness.ringtail_bin()), "bench", *args, "--bootstrap-server",
             broker.bootstrap_for("SSL"), "--results-dir", str(tmp_path), "--no-progress"],
            capture_output=True, text=True, timeout=BENCH_TIMEOUT_S, stdin=subprocess.DEVNULL)

    produced = bench("produce", "--topic", topic, "--num-records", "2000", "--record-size",
                     "100", "--command-config", str(config), "--producer-props", "acks=1",
                     "enable.idempotence=false")
    assert produced.returncode == 0, produced.stderr[-3000:]
    assert "2000 records sent," in produced.stdout, produced.stdout
    consumed = bench("consume", "--topic", topic, "--command-config", str(config))
    assert consumed.returncode == 0, consumed.stderr[-3000:]
    assert consumed.stdout.strip().splitlines()[-1].split(", ")[4] == "2000", consumed.stdout
    wrong = bench("produce", "--topic", topic, "--num-records", "10", "--security-props",
                  "security.protocol=SSL", "ssl.truststore.type=PKCS12",
                  f"ssl.truststore.location={pki.path('truststore.p12')}",
                  f"ssl.truststore.password={STORE_PASSWORD}", "ssl.keystore.type=PKCS12",
                  f"ssl.keystore.location={pki.path('client.p12')}",
                  "ssl.keystore.password=wrong")
    assert wrong.returncode != 0
    assert "ssl.keystore.location" in wrong.stderr and "wrong password" in wrong.stderr, \
        wrong.stderr[-2000:]


# ----- ssl.client.auth=requested, an untrusted client certificate (issue 11) -----

ALICE_PRINCIPAL = "certificate principal User:CN=alice,OU=Clients,O=Ringtail"


def client_certificate(pki, name="client"):
    return confluent_ssl(pki, {"ssl.certificate.location": pki.path(f"{name}.crt"),
                               "ssl.key.location": pki.path(f"{name}.key")})


def api_versions_over_tls(broker, pki, certificate=None, version=None):
    """An ApiVersions v0 request over TLS with Python's ssl module (OpenSSL), presenting client
    certificate `certificate` (a Pki name) if given, whatever CAs the broker names (librdkafka
    sends none that the broker's CertificateRequest does not name, so it cannot present an
    untrusted certificate); `version` pins the TLS version. The broker's answer (size +
    correlation id 7 + ...), or None when the handshake fails or the broker closes the
    connection without answering (TLS 1.3: the client's handshake ends before the broker has
    checked its certificate, the refusal is an alert on the first read)."""
    context = ssl.create_default_context(cafile=pki.path("ca.crt"))
    if certificate:
        context.load_cert_chain(pki.path(f"{certificate}.crt"), pki.path(f"{certificate}.key"))
    if version:
        context.minimum_version = context.maximum_version = version
    host, port = broker.bootstrap_for("SSL").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(api_versions_frame())
                answer = b""
                while len(answer) < 4 or len(answer) < 4 + struct.unpack(">i", answer[:4])[0]:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return None
                    answer += chunk
                return answer
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return None


def answered(answer):
    return answer is not None and answer[4:8] == struct.pack(">i", 7)


TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def test_mutual_tls_requested_accepts_clients_with_and_without_certificate(start_broker, pki):
    """ssl.client.auth=requested: alice's certificate gives her subject as the principal; a
    client without a certificate connects too (User:ANONYMOUS); a certificate from a CA the
    trust store does not hold is still refused (JSSE's want-client-auth and rustls's
    allow_unauthenticated accept only a missing certificate)."""
    broker = ssl_broker(start_broker, {**pem_file_settings(pki), "ssl.client.auth": "requested",
                                       "ssl.truststore.type": "PEM",
                                       "ssl.truststore.location": pki.path("ca.crt")})
    since = len(broker.log_text())
    confluent_round_trip(broker, client_certificate(pki), messages=10)
    if broker.target == "ringtail":
        assert ALICE_PRINCIPAL in broker.log_text()[since:], broker.log_tail()
    since = len(broker.log_text())
    confluent_round_trip(broker, confluent_ssl(pki), messages=10)
    if broker.target == "ringtail":
        log = broker.log_text()[since:]
        assert "certificate principal User:ANONYMOUS" in log, broker.log_tail()
        assert ALICE_PRINCIPAL not in log, broker.log_tail()
    for version in TLS_VERSIONS:
        assert answered(api_versions_over_tls(broker, pki, "client", version)), version
        assert answered(api_versions_over_tls(broker, pki, None, version)), version
        assert not answered(api_versions_over_tls(broker, pki, "stranger", version)), version
    # The broker goes on.
    confluent_round_trip(broker, confluent_ssl(pki), messages=10)


def test_mutual_tls_required_refuses_a_certificate_from_an_untrusted_ca(start_broker, pki):
    broker = ssl_broker(start_broker, mtls_settings(pki))
    since = len(broker.log_text())
    for version in TLS_VERSIONS:
        assert not answered(api_versions_over_tls(broker, pki, "stranger", version)), version
        assert answered(api_versions_over_tls(broker, pki, "client", version)), version
    if broker.target == "ringtail":
        log = broker.log_text()[since:]
        assert "TLS handshake failed" in log, broker.log_tail()
        assert "mallory" not in log, broker.log_tail()
    # A client with a trusted certificate on the same broker still works.
    confluent_round_trip(broker, client_certificate(pki), messages=10)


# ----- ssl.enabled.protocols and ssl.cipher.suites, seen by `openssl s_client` -----

def s_client(broker, pki, *args):
    """`openssl s_client` to the SSL listener (verifying the broker against the CA, stdin at
    EOF so that it closes once the handshake is over): (protocol, cipher) negotiated, or None
    when the handshake failed; and the output."""
    host, port = broker.bootstrap_for("SSL").split(":")
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-servername", "localhost",
         "-CAfile", pki.path("ca.crt"), "-verify_return_error", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S)
    output = result.stdout + result.stderr
    negotiated = None
    for line in result.stdout.splitlines():
        # "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"; "New, (NONE), Cipher is (NONE)"
        if line.startswith("New, ") and ", Cipher is " in line:
            protocol, cipher = line[len("New, "):].split(", Cipher is ")
            if cipher != "(NONE)":
                negotiated = (protocol, cipher)
    if result.returncode != 0:
        negotiated = None
    return negotiated, output


@pytest.mark.parametrize("enabled, accepted, refused_flag", [
    ("TLSv1.3", "TLSv1.3", "-tls1_2"),
    ("TLSv1.2", "TLSv1.2", "-tls1_3"),
])
def test_enabled_protocols(start_broker, pki, enabled, accepted, refused_flag):
    broker = ssl_broker(start_broker, {**pem_file_settings(pki),
                                       "ssl.enabled.protocols": enabled})
    negotiated, output = s_client(broker, pki, refused_flag)
    assert negotiated is None, output
    accepted_flag = "-tls1_3" if accepted == "TLSv1.3" else "-tls1_2"
    negotiated, output = s_client(broker, pki, accepted_flag)
    assert negotiated is not None and negotiated[0] == accepted, output
    # Without a version flag the client gets the one enabled version.
    negotiated, output = s_client(broker, pki)
    assert negotiated is not None and negotiated[0] == accepted, output
    confluent_round_trip(broker, confluent_ssl(pki), messages=10)


@pytest.mark.parametrize("enabled, suite, openssl_name, accepted_args, refused_args", [
    # The test PKI's keys are EC P-256: ECDHE_ECDSA suites for TLS 1.2.
    ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256",
     ["-tls1_2"], ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]),
    ("TLSv1.3", "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384",
     ["-tls1_3"], ["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"]),
])
def test_single_cipher_suite(start_broker, pki, enabled, suite, openssl_name, accepted_args,
                             refused_args):
    broker = ssl_broker(start_broker, {**pem_file_settings(pki),
                                       "ssl.enabled.protocols": enabled,
                                       "ssl.cipher.suites": suite})
    negotiated, output = s_client(broker, pki, *accepted_args)
    assert negotiated == (enabled, openssl_name), output
    negotiated, output = s_client(broker, pki, *refused_args)
    assert negotiated is None, output
    confluent_round_trip(broker, confluent_ssl(pki), messages=10)
