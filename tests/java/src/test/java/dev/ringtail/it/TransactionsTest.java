package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * KafkaProducer transactions (KIP-98, KIP-447): a committed transaction is visible to a
 * read_committed consumer, an aborted one is not (but is to read_uncommitted),
 * sendOffsetsToTransaction commits the input offsets atomically with the output (and neither on
 * abort), and a second producer with the same transactional.id fences the first.
 */
class TransactionsTest {
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension();

  private static KafkaProducer<String, String> transactionalProducer(String transactionalId) {
    return Clients.stringProducer(BROKER.bootstrap(), Map.of(
        ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId,
        ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 30_000));
  }

  private static KafkaConsumer<String, String> consumer(String isolation, String group) {
    Map<String, Object> extra = new HashMap<>();
    extra.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
    extra.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    extra.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    if (group != null) {
      extra.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    }
    return Clients.stringConsumer(BROKER.bootstrap(), extra);
  }

  /**
   * Every value in the topic as a consumer with {@code isolation} reads it. Call it only once
   * every transaction on the topic has ended: the markers are written after EndTxn is answered
   * (in Kafka too), so it first waits for the last stable offset to reach the high watermark.
   */
  private static List<String> readAll(String topic, String isolation, int partitions) {
    try (KafkaConsumer<String, String> consumer = consumer(isolation, null);
        KafkaConsumer<String, String> committed = consumer("read_committed", null);
        KafkaConsumer<String, String> uncommitted = consumer("read_uncommitted", null)) {
      List<TopicPartition> assigned = new ArrayList<>();
      for (int p = 0; p < partitions; p++) {
        assigned.add(new TopicPartition(topic, p));
      }
      Clients.waitUntil(Duration.ofSeconds(30), () -> "the markers of " + topic,
          () -> committed.endOffsets(assigned).equals(uncommitted.endOffsets(assigned)));
      consumer.assign(assigned);
      consumer.seekToBeginning(assigned);
      // read_committed ends at the last stable offset, read_uncommitted at the high watermark.
      Map<TopicPartition, Long> end = consumer.endOffsets(assigned);
      List<String> values = new ArrayList<>();
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (System.nanoTime() < deadline) {
        boolean done = true;
        for (TopicPartition tp : assigned) {
          if (consumer.position(tp) < end.get(tp)) {
            done = false;
          }
        }
        if (done) {
          break;
        }
        for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
          values.add(record.value());
        }
      }
      return values;
    }
  }

  @Test
  void committedIsVisibleToReadCommittedAbortedIsNot() throws Exception {
    String topic = Clients.unique("txn");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    try (KafkaProducer<String, String> producer = transactionalProducer(Clients.unique("tx"))) {
      producer.initTransactions();
      producer.beginTransaction();
      producer.send(new ProducerRecord<>(topic, "k", "committed-1"));
      producer.send(new ProducerRecord<>(topic, "k", "committed-2"));
      producer.commitTransaction();

      producer.beginTransaction();
      producer.send(new ProducerRecord<>(topic, "k", "aborted-1"));
      producer.flush();
      producer.abortTransaction();

      producer.beginTransaction();
      producer.send(new ProducerRecord<>(topic, "k", "committed-3"));
      producer.commitTransaction();
    }
    assertEquals(List.of("committed-1", "committed-2", "committed-3"),
        readAll(topic, "read_committed", 1));
    assertEquals(List.of("committed-1", "committed-2", "aborted-1", "committed-3"),
        readAll(topic, "read_uncommitted", 1));
  }

  @Test
  void openTransactionHoldsTheLastStableOffset() throws Exception {
    String topic = Clients.unique("txn-lso");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaProducer<String, String> producer = transactionalProducer(Clients.unique("tx"));
        KafkaConsumer<String, String> committed = consumer("read_committed", null);
        KafkaConsumer<String, String> uncommitted = consumer("read_uncommitted", null)) {
      producer.initTransactions();
      producer.beginTransaction();
      producer.send(new ProducerRecord<>(topic, "k", "open")).get(30, TimeUnit.SECONDS);
      assertEquals(0L, committed.endOffsets(List.of(tp)).get(tp), "LSO stays at the open txn");
      assertEquals(1L, uncommitted.endOffsets(List.of(tp)).get(tp), "high watermark");
      producer.commitTransaction();
      // The commit marker takes an offset: the LSO moves past it.
      Clients.waitUntil(Duration.ofSeconds(30), () -> "LSO after commit",
          () -> committed.endOffsets(List.of(tp)).get(tp) == 2L);
    }
    assertEquals(List.of("open"), readAll(topic, "read_committed", 1));
  }

  @Test
  void sendOffsetsToTransactionIsAtomicWithTheOutput() throws Exception {
    String input = Clients.unique("txn-in");
    String output = Clients.unique("txn-out");
    String group = Clients.unique("txn-group");
    Clients.createTopics(BROKER.bootstrap(), 1, input, output);
    TopicPartition in = new TopicPartition(input, 0);
    try (KafkaProducer<String, String> plain = Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
      for (int i = 0; i < 10; i++) {
        plain.send(new ProducerRecord<>(input, "k" + i, "v" + i));
      }
      plain.flush();
    }
    try (KafkaProducer<String, String> producer = transactionalProducer(Clients.unique("tx"));
        KafkaConsumer<String, String> source = consumer("read_committed", group)) {
      producer.initTransactions();
      source.subscribe(List.of(input));
      List<ConsumerRecord<String, String>> records = Clients.pollCount(source, 10,
          Duration.ofSeconds(30));
      assertEquals(10, records.size());
      ConsumerGroupMetadata metadata = source.groupMetadata();

      // First five: aborted -- neither output nor offsets.
      producer.beginTransaction();
      for (ConsumerRecord<String, String> record : records.subList(0, 5)) {
        producer.send(new ProducerRecord<>(output, record.key(), record.value().toUpperCase()));
      }
      producer.sendOffsetsToTransaction(Map.of(in, new OffsetAndMetadata(5)), metadata);
      producer.abortTransaction();
      try (Admin admin = Clients.admin(BROKER.bootstrap())) {
        Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
            .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
        assertNull(offsets.get(in), "aborted offsets are not committed: " + offsets);
      }
      assertEquals(List.of(), readAll(output, "read_committed", 1));

      // All ten: committed -- output and offsets together.
      producer.beginTransaction();
      for (ConsumerRecord<String, String> record : records) {
        producer.send(new ProducerRecord<>(output, record.key(), record.value().toUpperCase()));
      }
      producer.sendOffsetsToTransaction(Map.of(in, new OffsetAndMetadata(10)), metadata);
      producer.commitTransaction();
      try (Admin admin = Clients.admin(BROKER.bootstrap())) {
        // The offsets become the group's when the commit marker reaches __consumer_offsets,
        // which is after EndTxn is answered (in Kafka too); a plain OffsetFetch (no
        // require_stable) shows them from then on.
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        Clients.waitUntil(Duration.ofSeconds(30), () -> "committed offsets: " + offsets, () -> {
          try {
            offsets.clear();
            offsets.putAll(admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS));
          } catch (Exception e) {
            throw new AssertionError("listConsumerGroupOffsets", e);
          }
          return offsets.get(in) != null;
        });
        assertEquals(10L, offsets.get(in).offset());
      }
      // The group's member sees its committed position (require_stable fetch, KIP-447).
      OffsetAndMetadata position = source.committed(Set.of(in)).get(in);
      assertNotNull(position);
      assertEquals(10L, position.offset());
    }
    List<String> expected = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      expected.add("V" + i);
    }
    assertEquals(expected, readAll(output, "read_committed", 1));
  }

  @Test
  void secondProducerWithTheSameIdFencesTheFirst() throws Exception {
    String topic = Clients.unique("txn-fence");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    String transactionalId = Clients.unique("tx");
    try (KafkaProducer<String, String> first = transactionalProducer(transactionalId)) {
      first.initTransactions();
      first.beginTransaction();
      first.send(new ProducerRecord<>(topic, "k", "zombie")).get(30, TimeUnit.SECONDS);
      try (KafkaProducer<String, String> second = transactionalProducer(transactionalId)) {
        // Aborts the first producer's open transaction and bumps the epoch.
        second.initTransactions();
        // The zombie's next send fails (Kafka: INVALID_PRODUCER_EPOCH or PRODUCER_FENCED) ...
        Exception sendFailure = assertThrows(Exception.class,
            () -> first.send(new ProducerRecord<>(topic, "k", "zombie-2")).get(30, TimeUnit.SECONDS));
        assertTrue(causedBy(sendFailure, ProducerFencedException.class)
                || causedBy(sendFailure, InvalidProducerEpochException.class),
            "the first producer is fenced: " + sendFailure);
        // ... and so does its commit.
        assertThrows(KafkaException.class, first::commitTransaction);
        second.beginTransaction();
        second.send(new ProducerRecord<>(topic, "k", "second"));
        second.commitTransaction();
      }
    }
    assertEquals(List.of("second"), readAll(topic, "read_committed", 1));
    assertEquals(Set.of("zombie", "second"),
        readAll(topic, "read_uncommitted", 1).stream().collect(Collectors.toSet()),
        "the zombie's record is in the log, aborted");
  }

  private static boolean causedBy(Throwable error, Class<? extends Throwable> type) {
    for (Throwable t = error; t != null; t = t.getCause()) {
      if (type.isInstance(t)) {
        return true;
      }
    }
    return false;
  }
}
