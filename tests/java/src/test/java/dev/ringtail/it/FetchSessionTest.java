package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The Java KafkaConsumer uses incremental fetch sessions (KIP-227) whenever the broker gives it
 * one. Reading 1,000 partitions: every record arrives; while nothing changes, its fetch requests
 * name no partition and the answers carry none (bytes per request and response from the
 * consumer's per-node metrics, against what a full 1,000-partition fetch takes); records
 * produced later to three partitions still arrive.
 */
class FetchSessionTest {
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension();

  private static final int PARTITIONS = 1000;
  /** A full fetch of 1,000 partitions takes ~30 kB each way; an incremental one a header. */
  private static final double MAX_QUIET_FETCH_BYTES = 2000;

  @Test
  void consumerOf1000PartitionsFetchesIncrementally() throws Exception {
    String topic = Clients.unique("fetch-sessions");
    Clients.createTopics(BROKER.bootstrap(), PARTITIONS, topic);
    try (KafkaProducer<String, String> producer =
        Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
      for (int p = 0; p < PARTITIONS; p++) {
        producer.send(new ProducerRecord<>(topic, p, null, "first-" + p));
      }
      producer.flush();
    }
    Map<String, Object> extra = new HashMap<>();
    extra.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
    extra.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 5000);
    try (KafkaConsumer<String, String> consumer =
        Clients.stringConsumer(BROKER.bootstrap(), extra)) {
      List<TopicPartition> partitions = new ArrayList<>();
      for (int p = 0; p < PARTITIONS; p++) {
        partitions.add(new TopicPartition(topic, p));
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      List<ConsumerRecord<String, String>> first =
          Clients.pollCount(consumer, PARTITIONS, Duration.ofSeconds(120));
      assertEquals(PARTITIONS, first.size(), "one record from each partition");
      for (ConsumerRecord<String, String> record : first) {
        assertEquals("first-" + record.partition(), record.value());
      }

      // Quiet: fetches that find nothing new.
      consumer.poll(Duration.ofMillis(300));
      double[] before = nodeTotals(consumer);
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
      while (System.nanoTime() < until) {
        assertTrue(consumer.poll(Duration.ofMillis(100)).isEmpty(), "nothing new");
      }
      double[] after = nodeTotals(consumer);
      double requests = after[0] - before[0];
      double requestBytes = (after[1] - before[1]) / requests;
      double responseBytes = (after[3] - before[3]) / (after[2] - before[2]);
      System.out.printf(
          "quiet fetches: %.0f requests, %.0f B per request, %.0f B per response%n",
          requests, requestBytes, responseBytes);
      assertTrue(requests >= 3, "fetches in 2 s of quiet: " + requests);
      assertTrue(requestBytes < MAX_QUIET_FETCH_BYTES, "request bytes " + requestBytes);
      assertTrue(responseBytes < MAX_QUIET_FETCH_BYTES, "response bytes " + responseBytes);

      try (KafkaProducer<String, String> producer =
          Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
        for (int p : new int[] {1, PARTITIONS / 2, PARTITIONS - 1}) {
          producer.send(new ProducerRecord<>(topic, p, null, "later-" + p));
        }
        producer.flush();
      }
      List<ConsumerRecord<String, String>> later =
          Clients.pollCount(consumer, 3, Duration.ofSeconds(30));
      assertEquals(3, later.size(), "the later records");
      for (ConsumerRecord<String, String> record : later) {
        assertEquals("later-" + record.partition(), record.value());
      }
    }
  }

  /**
   * (request-total, outgoing-byte-total, response-total, incoming-byte-total) of the node the
   * consumer fetches from: the broker node with the most requests (not the bootstrap entry).
   */
  private static double[] nodeTotals(KafkaConsumer<?, ?> consumer) {
    Map<String, double[]> byNode = new HashMap<>();
    for (Map.Entry<MetricName, ? extends Metric> entry : consumer.metrics().entrySet()) {
      MetricName name = entry.getKey();
      String node = name.tags().get("node-id");
      if (!"consumer-node-metrics".equals(name.group()) || node == null || node.equals("node--1")) {
        continue;
      }
      int index =
          switch (name.name()) {
            case "request-total" -> 0;
            case "outgoing-byte-total" -> 1;
            case "response-total" -> 2;
            case "incoming-byte-total" -> 3;
            default -> -1;
          };
      if (index >= 0) {
        byNode.computeIfAbsent(node, n -> new double[4])[index] =
            ((Number) entry.getValue().metricValue()).doubleValue();
      }
    }
    return byNode.values().stream()
        .max((a, b) -> Double.compare(a[0], b[0]))
        .orElseThrow(() -> new AssertionError("no consumer-node-metrics"));
  }
}
