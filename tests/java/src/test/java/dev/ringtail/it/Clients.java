package dev.ringtail.it;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka Java clients for the tests, each with the client's defaults except what is named here
 * (bootstrap servers, serializers, and time limits so that a test stops by itself).
 */
public final class Clients {
  /** How long a single admin call or blocking client call may take. */
  public static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);

  private Clients() {}

  /** A topic or group name no other test uses. */
  public static String unique(String prefix) {
    return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  /** An AdminClient with its defaults, API calls bounded by {@link #CALL_TIMEOUT}. */
  public static Admin admin(String bootstrap) {
    Properties properties = new Properties();
    properties.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    properties.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) CALL_TIMEOUT.toMillis());
    return Admin.create(properties);
  }

  /** A String/String KafkaProducer with its defaults (idempotent, acks=all) plus {@code extra}. */
  public static KafkaProducer<String, String> stringProducer(
      String bootstrap, Map<String, Object> extra) {
    Properties properties = new Properties();
    properties.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    properties.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    properties.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    properties.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) CALL_TIMEOUT.toMillis());
    properties.putAll(extra);
    return new KafkaProducer<>(properties);
  }

  /** A byte[]/byte[] KafkaProducer with its defaults plus {@code extra}. */
  public static KafkaProducer<byte[], byte[]> bytesProducer(
      String bootstrap, Map<String, Object> extra) {
    Properties properties = new Properties();
    properties.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    properties.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    properties.put(
        ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    properties.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) CALL_TIMEOUT.toMillis());
    properties.putAll(extra);
    return new KafkaProducer<>(properties);
  }

  /** A String/String KafkaConsumer with its defaults plus {@code extra}. */
  public static KafkaConsumer<String, String> stringConsumer(
      String bootstrap, Map<String, Object> extra) {
    Properties properties = new Properties();
    properties.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    properties.put(
        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    properties.put(
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    properties.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) CALL_TIMEOUT.toMillis());
    properties.putAll(extra);
    return new KafkaConsumer<>(properties);
  }

  /** A byte[]/byte[] KafkaConsumer with its defaults plus {@code extra}. */
  public static KafkaConsumer<byte[], byte[]> bytesConsumer(
      String bootstrap, Map<String, Object> extra) {
    Properties properties = new Properties();
    properties.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    properties.put(
        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    properties.put(
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    properties.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) CALL_TIMEOUT.toMillis());
    properties.putAll(extra);
    return new KafkaConsumer<>(properties);
  }

  /**
   * Creates topics ({@code partitions} each, replication factor 1) and waits until the broker's
   * metadata names a leader for every partition, as Kafka's own integration tests do
   * ({@code waitForPartitionMetadata}): Kafka answers CreateTopics when its controller committed
   * the topic, and its broker becomes leader a moment later.
   */
  public static void createTopics(String bootstrap, int partitions, String... topics)
      throws Exception {
    List<NewTopic> newTopics = new ArrayList<>();
    for (String topic : topics) {
      newTopics.add(new NewTopic(topic, partitions, (short) 1));
    }
    try (Admin admin = admin(bootstrap)) {
      admin.createTopics(newTopics).all().get(CALL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
      waitUntil(Duration.ofSeconds(30), () -> "leaders for " + List.of(topics),
          () -> leadersKnown(admin, List.of(topics), partitions));
    }
  }

  private static boolean leadersKnown(Admin admin, List<String> topics, int partitions) {
    try {
      Map<String, TopicDescription> descriptions =
          admin.describeTopics(topics).allTopicNames().get(CALL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
      for (TopicDescription description : descriptions.values()) {
        if (description.partitions().size() != partitions) {
          return false;
        }
        for (TopicPartitionInfo partition : description.partitions()) {
          if (partition.leader() == null || partition.leader().isEmpty()) {
            return false;
          }
        }
      }
      return true;
    } catch (ExecutionException e) {
      if (e.getCause() instanceof UnknownTopicOrPartitionException) {
        return false;
      }
      throw new AssertionError("describeTopics " + topics, e);
    } catch (Exception e) {
      throw new AssertionError("describeTopics " + topics, e);
    }
  }

  /**
   * Polls {@code consumer} until {@code count} records arrived or {@code timeout} passed; returns
   * what arrived (the caller asserts on the number).
   */
  public static <K, V> List<ConsumerRecord<K, V>> pollCount(
      KafkaConsumer<K, V> consumer, int count, Duration timeout) {
    List<ConsumerRecord<K, V>> records = new ArrayList<>();
    long deadline = System.nanoTime() + timeout.toNanos();
    while (records.size() < count && System.nanoTime() < deadline) {
      for (ConsumerRecord<K, V> record : consumer.poll(Duration.ofMillis(200))) {
        records.add(record);
      }
    }
    return records;
  }

  /** Waits until {@code condition} holds; fails with {@code what} after {@code timeout}. */
  public static void waitUntil(Duration timeout, Supplier<String> what, BooleanSupplier condition) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out after " + timeout + " waiting for " + what.get());
      }
      Broker.sleep(100);
    }
  }

  /** Sum of a collection of longs. */
  public static long sum(Collection<Long> values) {
    long total = 0;
    for (long value : values) {
      total += value;
    }
    return total;
  }
}
