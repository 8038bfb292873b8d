package dev.ringtail.it;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Helpers of the security test classes ({@link SslTest}, {@link SaslTest}, {@link AclsTest}):
 * free ports, the server.properties lines of a one-node broker both targets take, and clients
 * built from a map of Kafka client settings.
 */
final class SecurityTestSupport {
  static final Duration TIMEOUT = Duration.ofSeconds(30);

  private SecurityTestSupport() {}

  static int port() {
    try {
      return Broker.freePort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * The lines every security test broker needs: a KRaft node (broker and controller, the
   * controller on {@code controllerPort}, PLAINTEXT, not bound by Ringtail) with the single-node
   * replication settings; {@code listeners} are the client listeners
   * ({@code NAME://127.0.0.1:PORT,...}) and {@code protocols} their protocol map entries.
   */
  static String baseProperties(String listeners, String protocols, int controllerPort) {
    return String.join("\n",
        "process.roles=broker,controller",
        "node.id=1",
        "controller.quorum.bootstrap.servers=127.0.0.1:" + controllerPort,
        "listeners=" + listeners + ",CONTROLLER://127.0.0.1:" + controllerPort,
        "advertised.listeners=" + listeners,
        "inter.broker.listener.name=PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT," + protocols,
        "log.dirs=@LOG_DIRS@",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "");
  }

  static Admin admin(Map<String, Object> client) {
    Properties properties = new Properties();
    properties.putAll(client);
    properties.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) TIMEOUT.toMillis());
    properties.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    return Admin.create(properties);
  }

  static KafkaProducer<String, String> producer(Map<String, Object> client) {
    Properties properties = new Properties();
    properties.putAll(client);
    properties.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    properties.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG,
        StringSerializer.class.getName());
    properties.putIfAbsent(ProducerConfig.MAX_BLOCK_MS_CONFIG, 15_000);
    properties.putIfAbsent(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 15_000);
    properties.putIfAbsent(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    properties.putIfAbsent(ProducerConfig.LINGER_MS_CONFIG, 0);
    return new KafkaProducer<>(properties);
  }

  static KafkaConsumer<String, String> consumer(Map<String, Object> client, String group) {
    Properties properties = new Properties();
    properties.putAll(client);
    properties.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG,
        StringDeserializer.class.getName());
    properties.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG,
        StringDeserializer.class.getName());
    properties.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    properties.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    if (group != null) {
      properties.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    }
    return new KafkaConsumer<>(properties);
  }

  static Map<String, Object> with(Map<String, Object> base, Object... keyValues) {
    Map<String, Object> out = new HashMap<>(base);
    for (int i = 0; i < keyValues.length; i += 2) {
      out.put((String) keyValues[i], keyValues[i + 1]);
    }
    return out;
  }

  static void createTopic(Map<String, Object> adminClient, String topic, int partitions)
      throws Exception {
    try (Admin admin = admin(adminClient)) {
      admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all()
          .get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      Clients.waitUntil(TIMEOUT, () -> "leaders of " + topic, () -> {
        try {
          return admin.describeTopics(List.of(topic)).allTopicNames().get(5, TimeUnit.SECONDS)
              .get(topic).partitions().stream().allMatch(p -> p.leader() != null);
        } catch (Exception e) {
          return false;
        }
      });
    }
  }

  /** Produces {@code count} records with {@code client}, then reads them back (assign). */
  static void roundTrip(Map<String, Object> client, String topic, int count) throws Exception {
    List<String> sent = new ArrayList<>();
    try (KafkaProducer<String, String> producer = producer(client)) {
      for (int i = 0; i < count; i++) {
        String value = topic + "-" + i;
        producer.send(new ProducerRecord<>(topic, 0, "k" + i, value))
            .get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        sent.add(value);
      }
    }
    try (KafkaConsumer<String, String> consumer = consumer(client, null)) {
      TopicPartition partition = new TopicPartition(topic, 0);
      consumer.assign(List.of(partition));
      consumer.seekToBeginning(List.of(partition));
      List<String> got = new ArrayList<>();
      for (ConsumerRecord<String, String> record : Clients.pollCount(consumer, count, TIMEOUT)) {
        got.add(record.value());
      }
      org.junit.jupiter.api.Assertions.assertEquals(sent, got);
    }
  }

  /** The cause chain of {@code error} holds an instance of {@code type}. */
  static boolean causedBy(Throwable error, Class<? extends Throwable> type) {
    for (Throwable t = error; t != null; t = t.getCause()) {
      if (type.isInstance(t)) {
        return true;
      }
    }
    return false;
  }
}
