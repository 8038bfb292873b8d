package dev.ringtail.it;

import static dev.ringtail.it.SecurityTestSupport.causedBy;
import static dev.ringtail.it.SecurityTestSupport.roundTrip;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * SASL with Kafka's Java client (issue 11): PLAIN (JAAS {@code user_NAME} entries),
 * SCRAM-SHA-256 and SCRAM-SHA-512 over SASL_PLAINTEXT and SASL_SSL. SCRAM users are seeded
 * before the first start ({@code --add-scram}: {@code kafka-storage format} on Kafka,
 * {@code ringtail storage add-scram}) and one more is added by the AdminClient
 * ({@code alterUserScramCredentials}). A wrong password fails with
 * {@link SaslAuthenticationException}.
 */
class SaslTest {
  private static final String PLAIN_JAAS =
      "org.apache.kafka.common.security.plain.PlainLoginModule required "
          + "username=\"admin\" password=\"admin-secret\" "
          + "user_admin=\"admin-secret\" user_alice=\"alice-secret\";";
  private static final String SCRAM_JAAS =
      "org.apache.kafka.common.security.scram.ScramLoginModule required;";

  private static TestPki pki;
  private static SecuredBroker broker;
  private static int plaintext;
  private static final Map<String, Integer> PORTS = new HashMap<>();

  @BeforeAll
  @Timeout(value = 420, unit = TimeUnit.SECONDS) // a Kafka JVM on a loaded machine
  static void start() throws Exception {
    pki = TestPki.create();
    plaintext = SecurityTestSupport.port();
    PORTS.put("SASL_PLAINTEXT", SecurityTestSupport.port());
    PORTS.put("SASL_SSL", SecurityTestSupport.port());
    StringBuilder properties = new StringBuilder(SecurityTestSupport.baseProperties(
        "PLAINTEXT://127.0.0.1:" + plaintext
            + ",SASL_PLAINTEXT://127.0.0.1:" + PORTS.get("SASL_PLAINTEXT")
            + ",SASL_SSL://127.0.0.1:" + PORTS.get("SASL_SSL"),
        "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        SecurityTestSupport.port()));
    properties.append("sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512\n");
    for (String listener : List.of("sasl_plaintext", "sasl_ssl")) {
      properties.append("listener.name.").append(listener).append(".plain.sasl.jaas.config=")
          .append(PLAIN_JAAS).append('\n');
      for (String scram : List.of("scram-sha-256", "scram-sha-512")) {
        properties.append("listener.name.").append(listener).append('.').append(scram)
            .append(".sasl.jaas.config=").append(SCRAM_JAAS).append('\n');
      }
    }
    properties.append("ssl.keystore.type=PKCS12\n")
        .append("ssl.keystore.location=").append(pki.path("server.p12")).append('\n')
        .append("ssl.keystore.password=").append(TestPki.PASSWORD).append('\n')
        .append("ssl.key.password=").append(TestPki.PASSWORD).append('\n');
    broker = SecuredBroker.start(properties.toString(),
        List.of("SCRAM-SHA-256=[name=carol,password=carol-secret]",
            "SCRAM-SHA-512=[name=carol,password=carol-secret]"),
        Map.of("bootstrap.servers", "127.0.0.1:" + plaintext));
    // dave's credentials come from the AdminClient (AlterUserScramCredentials), one request
    // per mechanism.
    try (Admin admin = SecurityTestSupport.admin(
        Map.of("bootstrap.servers", "127.0.0.1:" + plaintext))) {
      for (ScramMechanism mechanism :
          List.of(ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)) {
        admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(
            "dave", new ScramCredentialInfo(mechanism, 4096), "dave-secret")))
            .all().get(30, TimeUnit.SECONDS);
      }
    }
  }

  @AfterAll
  static void stop() {
    if (broker != null) {
      boolean panicked = broker.panicked();
      broker.close();
      assertFalse(panicked, "broker log shows a panic");
    }
  }

  private static Map<String, Object> client(
      String protocol, String mechanism, String user, String password) {
    Map<String, Object> client = new HashMap<>();
    client.put("bootstrap.servers", "127.0.0.1:" + PORTS.get(protocol));
    client.put("security.protocol", protocol);
    client.put("sasl.mechanism", mechanism);
    String module = mechanism.equals("PLAIN")
        ? "org.apache.kafka.common.security.plain.PlainLoginModule"
        : "org.apache.kafka.common.security.scram.ScramLoginModule";
    client.put("sasl.jaas.config",
        module + " required username=\"" + user + "\" password=\"" + password + "\";");
    if (protocol.equals("SASL_SSL")) {
      client.put("ssl.truststore.type", "PEM");
      client.put("ssl.truststore.location", pki.path("ca.crt"));
    }
    return client;
  }

  @ParameterizedTest(name = "{0} {1} as {2}")
  @CsvSource({
      "SASL_PLAINTEXT, PLAIN, alice",
      "SASL_PLAINTEXT, SCRAM-SHA-256, carol",
      "SASL_PLAINTEXT, SCRAM-SHA-512, carol",
      "SASL_PLAINTEXT, SCRAM-SHA-256, dave",
      "SASL_SSL, PLAIN, alice",
      "SASL_SSL, SCRAM-SHA-256, carol",
      "SASL_SSL, SCRAM-SHA-512, carol",
      "SASL_SSL, SCRAM-SHA-512, dave",
  })
  void produceAndConsume(String protocol, String mechanism, String user) throws Exception {
    Map<String, Object> client = client(protocol, mechanism, user, user + "-secret");
    String topic = Clients.unique("sasl-" + protocol.toLowerCase() + "-"
        + mechanism.toLowerCase());
    SecurityTestSupport.createTopic(client, topic, 1);
    // A user added by the AdminClient reaches the SASL listeners asynchronously on Kafka.
    Clients.waitUntil(SecurityTestSupport.TIMEOUT, () -> user + " authenticates", () -> {
      try (Admin admin = SecurityTestSupport.admin(client)) {
        admin.describeCluster().nodes().get(10, TimeUnit.SECONDS);
        return true;
      } catch (Exception e) {
        return false;
      }
    });
    roundTrip(client, topic, 20);
  }

  @ParameterizedTest(name = "{0} {1} as {2} with a wrong password")
  @CsvSource({
      "SASL_PLAINTEXT, PLAIN, alice",
      "SASL_PLAINTEXT, SCRAM-SHA-256, carol",
      "SASL_SSL, PLAIN, alice",
      "SASL_SSL, SCRAM-SHA-512, carol",
      "SASL_SSL, SCRAM-SHA-512, nobody",
  })
  void wrongPasswordFailsWithSaslAuthenticationException(
      String protocol, String mechanism, String user) {
    Map<String, Object> client = client(protocol, mechanism, user, "wrong-password");
    try (KafkaProducer<String, String> producer = SecurityTestSupport.producer(client)) {
      Exception error = assertThrows(Exception.class, () -> producer
          .send(new ProducerRecord<>("sasl-never", "v")).get(30, TimeUnit.SECONDS));
      assertTrue(causedBy(error, SaslAuthenticationException.class), error.toString());
    }
    try (Admin admin = SecurityTestSupport.admin(client)) {
      Exception error = assertThrows(Exception.class,
          () -> admin.describeCluster().nodes().get(30, TimeUnit.SECONDS));
      assertTrue(causedBy(error, SaslAuthenticationException.class), error.toString());
    }
  }
}
