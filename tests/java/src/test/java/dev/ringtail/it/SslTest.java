package dev.ringtail.it;

import static dev.ringtail.it.SecurityTestSupport.causedBy;
import static dev.ringtail.it.SecurityTestSupport.roundTrip;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.errors.SslAuthenticationException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.Test;

/**
 * TLS with Kafka's Java client (issue 11): a PEM keystore file on listener {@code SSL}, a
 * PKCS12 keystore with {@code ssl.client.auth=required} (mutual TLS) on listener {@code MTLS}
 * (per-listener {@code listener.name.mtls.ssl.*}); clients with PEM and PKCS12 trust and key
 * stores; a client without a certificate refused by the mutual-TLS listener, and one trusting
 * nothing the broker shows refused by itself.
 */
class SslTest {
  private static TestPki pki;
  private static SecuredBroker broker;
  private static int plaintext;
  private static int ssl;
  private static int mtls;

  @BeforeAll
  @Timeout(value = 420, unit = TimeUnit.SECONDS) // a Kafka JVM on a loaded machine
  static void start() {
    pki = TestPki.create();
    plaintext = SecurityTestSupport.port();
    ssl = SecurityTestSupport.port();
    mtls = SecurityTestSupport.port();
    String properties = SecurityTestSupport.baseProperties(
        "PLAINTEXT://127.0.0.1:" + plaintext + ",SSL://127.0.0.1:" + ssl
            + ",MTLS://127.0.0.1:" + mtls,
        "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL", SecurityTestSupport.port())
        + String.join("\n",
            "listener.name.ssl.ssl.keystore.type=PEM",
            "listener.name.ssl.ssl.keystore.location=" + pki.path("server-keystore.pem"),
            "listener.name.mtls.ssl.keystore.type=PKCS12",
            "listener.name.mtls.ssl.keystore.location=" + pki.path("server.p12"),
            "listener.name.mtls.ssl.keystore.password=" + TestPki.PASSWORD,
            "listener.name.mtls.ssl.key.password=" + TestPki.PASSWORD,
            "listener.name.mtls.ssl.truststore.type=PKCS12",
            "listener.name.mtls.ssl.truststore.location=" + pki.path("truststore.p12"),
            "listener.name.mtls.ssl.truststore.password=" + TestPki.PASSWORD,
            "listener.name.mtls.ssl.client.auth=required",
            "");
    broker = SecuredBroker.start(properties, List.of(), plain());
  }

  @AfterAll
  static void stop() {
    if (broker != null) {
      boolean panicked = broker.panicked();
      broker.close();
      assertFalse(panicked, "broker log shows a panic");
    }
  }

  private static Map<String, Object> plain() {
    return Map.of("bootstrap.servers", "127.0.0.1:" + plaintext);
  }

  private static Map<String, Object> pemTrust(int port) {
    return Map.of("bootstrap.servers", "127.0.0.1:" + port, "security.protocol", "SSL",
        "ssl.truststore.type", "PEM", "ssl.truststore.location", pki.path("ca.crt"));
  }

  private static Map<String, Object> pkcs12Trust(int port) {
    return Map.of("bootstrap.servers", "127.0.0.1:" + port, "security.protocol", "SSL",
        "ssl.truststore.type", "PKCS12", "ssl.truststore.location", pki.path("truststore.p12"),
        "ssl.truststore.password", TestPki.PASSWORD);
  }

  private String topic(String prefix) throws Exception {
    String topic = Clients.unique(prefix);
    SecurityTestSupport.createTopic(plain(), topic, 1);
    return topic;
  }

  @Test
  void pemKeystoreListenerWithPemTrustStore() throws Exception {
    roundTrip(pemTrust(ssl), topic("ssl-pem"), 20);
  }

  @Test
  void pemKeystoreListenerWithPkcs12TrustStore() throws Exception {
    roundTrip(pkcs12Trust(ssl), topic("ssl-pem-p12trust"), 20);
  }

  @Test
  void mutualTlsWithPkcs12ClientKeystore() throws Exception {
    roundTrip(SecurityTestSupport.with(pkcs12Trust(mtls),
        "ssl.keystore.type", "PKCS12", "ssl.keystore.location", pki.path("client.p12"),
        "ssl.keystore.password", TestPki.PASSWORD, "ssl.key.password", TestPki.PASSWORD),
        topic("mtls-p12"), 20);
  }

  @Test
  void mutualTlsWithPemClientKeystore() throws Exception {
    roundTrip(SecurityTestSupport.with(pemTrust(mtls),
        "ssl.keystore.type", "PEM", "ssl.keystore.location", pki.path("client-keystore.pem")),
        topic("mtls-pem"), 20);
  }

  @Test
  void mutualTlsRefusesAClientWithoutCertificate() {
    try (Admin admin = SecurityTestSupport.admin(pkcs12Trust(mtls))) {
      Exception error = assertThrows(Exception.class,
          () -> admin.describeCluster().nodes().get(30, TimeUnit.SECONDS));
      assertTrue(causedBy(error, SslAuthenticationException.class), error.toString());
    }
  }

  @Test
  void aClientNotTrustingTheBrokerFailsItsHandshake() {
    // The client trusts its own certificate only, not the CA that signed the broker's.
    try (Admin admin = SecurityTestSupport.admin(Map.of(
        "bootstrap.servers", "127.0.0.1:" + ssl, "security.protocol", "SSL",
        "ssl.truststore.type", "PEM", "ssl.truststore.location", pki.path("client.crt")))) {
      Exception error = assertThrows(Exception.class,
          () -> admin.describeCluster().nodes().get(30, TimeUnit.SECONDS));
      assertTrue(causedBy(error, SslAuthenticationException.class), error.toString());
    }
  }
}
