package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Live configuration (issue 9): Kafka's kafka-configs tool by its main class
 * (kafka.admin.ConfigCommand) and the AdminClient's incrementalAlterConfigs / describeConfigs.
 * Kafka applies an alteration through its metadata log, so expectations are polled.
 */
class ConfigsTest {
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension(2);

  private static final Duration TOOL_TIMEOUT = Duration.ofSeconds(60);
  private static final String CONFIGS = "kafka.admin.ConfigCommand";
  private static final long EVENTUALLY_MS = 20_000;

  @Test
  void kafkaConfigsAlterDescribeDelete() throws Exception {
    String topic = Clients.unique("cfg-cli");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    Tool.Result altered = Tool.run(TOOL_TIMEOUT, CONFIGS, "--bootstrap-server",
        BROKER.bootstrap(), "--alter", "--entity-type", "topics", "--entity-name", topic,
        "--add-config", "retention.ms=3600000,cleanup.policy=[compact,delete]");
    assertEquals(0, altered.exitCode(), altered.describe());
    assertTrue(altered.stdout().contains("Completed updating config for topic " + topic + "."),
        altered.describe());
    eventually(() -> {
      Tool.Result described = Tool.run(TOOL_TIMEOUT, CONFIGS, "--bootstrap-server",
          BROKER.bootstrap(), "--describe", "--entity-type", "topics", "--entity-name", topic);
      assertEquals(0, described.exitCode(), described.describe());
      assertTrue(described.stdout().contains("retention.ms=3600000 sensitive=false "
          + "synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000}"), described.describe());
      assertTrue(described.stdout().contains("cleanup.policy="), described.describe());
    });

    Tool.Result refused = Tool.run(TOOL_TIMEOUT, CONFIGS, "--bootstrap-server",
        BROKER.bootstrap(), "--alter", "--entity-type", "topics", "--entity-name", topic,
        "--add-config", "retention.ms=abc");
    assertTrue(refused.exitCode() != 0, refused.describe());
    assertTrue((refused.stdout() + refused.stderr()).contains(
        "Invalid value abc for configuration retention.ms"), refused.describe());

    Tool.Result deleted = Tool.run(TOOL_TIMEOUT, CONFIGS, "--bootstrap-server",
        BROKER.bootstrap(), "--alter", "--entity-type", "topics", "--entity-name", topic,
        "--delete-config", "retention.ms,cleanup.policy");
    assertEquals(0, deleted.exitCode(), deleted.describe());
    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      eventually(() -> {
        ConfigEntry retention = topicConfig(admin, topic).get("retention.ms");
        assertEquals("604800000", retention.value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, retention.source());
      });
    }
  }

  @Test
  void kafkaConfigsBrokerDefaults() throws Exception {
    String topic = Clients.unique("cfg-cli-broker");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    Tool.Result altered = Tool.run(TOOL_TIMEOUT, CONFIGS, "--bootstrap-server",
        BROKER.bootstrap(), "--alter", "--entity-type", "brokers", "--entity-default",
        "--add-config", "log.retention.bytes=555555555");
    assertEquals(0, altered.exitCode(), altered.describe());
    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      try {
        eventually(() -> {
          ConfigEntry bytes = topicConfig(admin, topic).get("retention.bytes");
          assertEquals("555555555", bytes.value());
          assertEquals(ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, bytes.source());
        });
        Tool.Result readOnly = Tool.run(TOOL_TIMEOUT, CONFIGS, "--bootstrap-server",
            BROKER.bootstrap(), "--alter", "--entity-type", "brokers", "--entity-default",
            "--add-config", "num.partitions=3");
        assertTrue(readOnly.exitCode() != 0, readOnly.describe());
        assertTrue((readOnly.stdout() + readOnly.stderr()).contains(
            "Cannot update these configs dynamically: Set(num.partitions)"), readOnly.describe());
      } finally {
        Tool.Result deleted = Tool.run(TOOL_TIMEOUT, CONFIGS, "--bootstrap-server",
            BROKER.bootstrap(), "--alter", "--entity-type", "brokers", "--entity-default",
            "--delete-config", "log.retention.bytes");
        assertEquals(0, deleted.exitCode(), deleted.describe());
      }
      eventually(() -> assertEquals("-1", topicConfig(admin, topic).get("retention.bytes").value()));
    }
  }

  @Test
  void adminIncrementalAlterConfigs() throws Exception {
    String topic = Clients.unique("cfg-admin");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      Map<ConfigResource, Collection<AlterConfigOp>> ops = Map.of(resource, List.of(
          new AlterConfigOp(new ConfigEntry("segment.ms", "3600000"), AlterConfigOp.OpType.SET),
          new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"),
              AlterConfigOp.OpType.APPEND)));
      admin.incrementalAlterConfigs(ops).all().get(30, TimeUnit.SECONDS);
      eventually(() -> {
        Map<String, ConfigEntry> configs = topicConfig(admin, topic);
        assertEquals("3600000", configs.get("segment.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
            configs.get("segment.ms").source());
        assertEquals(Set.of("compact", "delete"),
            Set.of(configs.get("cleanup.policy").value().split(",")));
        assertEquals(ConfigEntry.ConfigType.LONG, configs.get("segment.ms").type());
      });
      ExecutionException error = assertThrows(ExecutionException.class, () ->
          admin.incrementalAlterConfigs(Map.of(resource, List.of(new AlterConfigOp(
              new ConfigEntry("min.insync.replicas", "0"), AlterConfigOp.OpType.SET))))
              .all().get(30, TimeUnit.SECONDS));
      assertInstanceOf(InvalidConfigurationException.class, error.getCause());
      assertEquals("Invalid value 0 for configuration min.insync.replicas: Value must be at "
          + "least 1", error.getCause().getMessage());
    }
  }

  private static Map<String, ConfigEntry> topicConfig(Admin admin, String topic)
      throws Exception {
    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    Config config = admin.describeConfigs(List.of(resource),
            new DescribeConfigsOptions().includeSynonyms(true).includeDocumentation(true))
        .all().get(30, TimeUnit.SECONDS).get(resource);
    return config.entries().stream().collect(Collectors.toMap(ConfigEntry::name, e -> e));
  }

  interface Check {
    void run() throws Exception;
  }

  private static void eventually(Check check) throws Exception {
    long deadline = System.currentTimeMillis() + EVENTUALLY_MS;
    while (true) {
      try {
        check.run();
        return;
      } catch (AssertionError e) {
        if (System.currentTimeMillis() > deadline) {
          throw e;
        }
        Thread.sleep(300);
      }
    }
  }
}
