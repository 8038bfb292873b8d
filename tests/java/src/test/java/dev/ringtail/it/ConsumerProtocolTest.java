package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The KIP-848 consumer group protocol from the Java client: KafkaConsumers with {@code
 * group.protocol=consumer} (the broker computes the assignment with its default assignor,
 * {@code uniform}; members learn it from ConsumerGroupHeartbeat). Two consumers split four
 * partitions, commit with commitSync; one leaves and the other takes over from the committed
 * offsets; a new member rejoins and takes partitions back without the survivor losing the ones
 * it keeps. Nothing is read twice, nothing is lost. The broker runs with its default heartbeat
 * interval (5 s, {@code group.consumer.heartbeat.interval.ms}), so each step can take that long.
 */
class ConsumerProtocolTest {
  // Two Ringtail shards: group coordinator and partitions need not share a shard.
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension(2);

  private static final int PARTITIONS = 4;
  private static final Duration PHASE_TIMEOUT = Duration.ofSeconds(60);

  /** What the consumers received, shared so that a record delivered twice is seen. */
  private static final class Ledger {
    final Map<TopicPartition, Set<Long>> consumed = new HashMap<>();
    final List<String> duplicates = new ArrayList<>();
    final Map<String, Set<TopicPartition>> revoked = new HashMap<>();

    /** One poll of {@code consumer}; what it returned is committed with commitSync. */
    void pollAndCommit(String name, KafkaConsumer<String, String> consumer) {
      int count = 0;
      for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(100))) {
        TopicPartition partition = new TopicPartition(record.topic(), record.partition());
        if (!consumed.computeIfAbsent(partition, p -> new HashSet<>()).add(record.offset())) {
          duplicates.add(name + " got " + partition + "@" + record.offset() + " again");
        }
        assertEquals("p" + record.partition() + "-" + record.offset(), record.value(), "value");
        count++;
      }
      if (count > 0) {
        commitSync(consumer);
      }
    }

    /**
     * commitSync, retried while it fails for a stale member epoch. With {@code
     * group.protocol=consumer} a commit built just before the heartbeat that moves the member to
     * the next epoch (its acknowledgement of a revocation) reaches the coordinator after it, and
     * the coordinator answers STALE_MEMBER_EPOCH; the 4.1 client does not retry that itself
     * (CommitFailedException). Kafka 4.1.2 answers the same way: this test failed 4 runs out of
     * 4 on it without the retry. The heartbeat's response brings the new epoch, so a retry a
     * moment later succeeds.
     */
    static void commitSync(KafkaConsumer<String, String> consumer) {
      for (int attempt = 1; ; attempt++) {
        try {
          consumer.commitSync(Clients.CALL_TIMEOUT);
          return;
        } catch (org.apache.kafka.clients.consumer.CommitFailedException e) {
          boolean stale = e.getMessage() != null && e.getMessage().contains("stale member epoch");
          if (attempt == 10 || !stale) {
            throw e;
          }
          Broker.sleep(100);
        }
      }
    }

    int total() {
      return consumed.values().stream().mapToInt(Set::size).sum();
    }

    /** Kafka's documented pattern: commit what was consumed before giving partitions away. */
    ConsumerRebalanceListener listener(String name, KafkaConsumer<String, String> consumer) {
      return new ConsumerRebalanceListener() {
        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
          revoked.computeIfAbsent(name, n -> new HashSet<>()).addAll(partitions);
          if (!partitions.isEmpty()) {
            commitSync(consumer);
          }
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}
      };
    }
  }

  @Test
  @Timeout(value = 240, unit = TimeUnit.SECONDS)
  void twoConsumersSplitCommitLeaveAndRejoin() throws Exception {
    String topic = Clients.unique("cp");
    String group = Clients.unique("cpg");
    Clients.createTopics(BROKER.bootstrap(), PARTITIONS, topic);
    int perPartition = produce(topic, 0, 50);
    final int initial = PARTITIONS * perPartition;

    Ledger ledger = new Ledger();
    KafkaConsumer<String, String> first = consumer(group, "first");
    KafkaConsumer<String, String> second = consumer(group, "second");
    KafkaConsumer<String, String> third = null;
    boolean firstClosed = false;
    try {
      first.subscribe(List.of(topic), ledger.listener("first", first));
      second.subscribe(List.of(topic), ledger.listener("second", second));

      // Phase 1: two members, two partitions each, every record read once.
      pollUntil(ledger, Map.of("first", first, "second", second), () ->
          ledger.total() == initial
              && split(first.assignment(), second.assignment()),
          () -> "first=" + first.assignment() + " second=" + second.assignment()
              + " consumed=" + ledger.total());
      assertEquals(2, first.assignment().size(), "uniform: 2 + 2");
      try (Admin admin = Clients.admin(BROKER.bootstrap())) {
        ConsumerGroupDescription description = describeUntil(admin, group,
            d -> d.members().size() == 2 && assignedCount(d) == PARTITIONS);
        assertEquals(GroupType.CONSUMER, description.type(), "group type");
        assertEquals(GroupState.STABLE, description.groupState(), "group state");
        assertEquals("uniform", description.partitionAssignor(), "server-side assignor");
        for (MemberDescription member : description.members()) {
          assertTrue(member.memberEpoch().orElse(-1) > 0, "member epoch " + member);
          assertEquals(member.assignment(), member.targetAssignment().orElseThrow(),
              "a stable member's assignment is its target");
        }
      }

      // Phase 2: the first member leaves; the second takes over from the committed offsets.
      first.close(Duration.ofSeconds(30));
      firstClosed = true;
      perPartition = produce(topic, perPartition, 20);
      int afterLeave = PARTITIONS * perPartition;
      pollUntil(ledger, Map.of("second", second), () ->
          ledger.total() == afterLeave && second.assignment().size() == PARTITIONS,
          () -> "second=" + second.assignment() + " consumed=" + ledger.total());
      Set<TopicPartition> secondBefore = new HashSet<>(second.assignment());
      ledger.revoked.clear();

      // Phase 3: a new member joins; the second gives two partitions away and keeps two.
      KafkaConsumer<String, String> rejoined = consumer(group, "third");
      third = rejoined;
      rejoined.subscribe(List.of(topic), ledger.listener("third", rejoined));
      pollUntil(ledger, Map.of("second", second, "third", rejoined), () ->
          split(second.assignment(), rejoined.assignment())
              && rejoined.assignment().size() == 2,
          () -> "second=" + second.assignment() + " third=" + rejoined.assignment());
      Set<TopicPartition> kept = new HashSet<>(second.assignment());
      assertTrue(secondBefore.containsAll(kept), "the second member kept a subset");
      Set<TopicPartition> givenAway = new HashSet<>(secondBefore);
      givenAway.removeAll(kept);
      assertEquals(givenAway, ledger.revoked.getOrDefault("second", Set.of()),
          "only the partitions moving to the new member were revoked");
      perPartition = produce(topic, perPartition, 10);
      int afterRejoin = PARTITIONS * perPartition;
      pollUntil(ledger, Map.of("second", second, "third", rejoined),
          () -> ledger.total() == afterRejoin, () -> "consumed=" + ledger.total());
      assertTrue(ledger.duplicates.isEmpty(), "records delivered twice: " + ledger.duplicates);
    } finally {
      if (!firstClosed) {
        first.close(Duration.ofSeconds(30));
      }
      second.close(Duration.ofSeconds(30));
      if (third != null) {
        third.close(Duration.ofSeconds(30));
      }
    }

    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      Map<TopicPartition, OffsetAndMetadata> committed =
          admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
              .get(30, TimeUnit.SECONDS);
      for (int p = 0; p < PARTITIONS; p++) {
        OffsetAndMetadata offset = committed.get(new TopicPartition(topic, p));
        assertEquals(perPartition, offset == null ? -1 : offset.offset(),
            "committed offset of partition " + p);
      }
      ConsumerGroupDescription description = describeUntil(admin, group,
          d -> d.members().isEmpty());
      assertEquals(GroupState.EMPTY, description.groupState(), "group state after all left");
      assertEquals(GroupType.CONSUMER, description.type(), "group type after all left");
    }
  }

  /** Produces {@code count} records to every partition from index {@code start}; returns the
   * new number of records per partition. */
  private static int produce(String topic, int start, int count) throws Exception {
    try (KafkaProducer<String, String> producer =
        Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
      for (int p = 0; p < PARTITIONS; p++) {
        for (int i = start; i < start + count; i++) {
          producer.send(new ProducerRecord<>(topic, p, "k" + i, "p" + p + "-" + i));
        }
      }
      producer.flush();
    }
    return start + count;
  }

  private interface Condition {
    boolean holds();
  }

  private interface Description {
    String get();
  }

  /** Polls every consumer in turn until {@code done} holds; fails after PHASE_TIMEOUT. */
  private static void pollUntil(Ledger ledger, Map<String, KafkaConsumer<String, String>> consumers,
      Condition done, Description what) {
    long deadline = System.nanoTime() + PHASE_TIMEOUT.toNanos();
    while (!done.holds()) {
      assertTrue(System.nanoTime() < deadline, "timed out: " + what.get());
      for (Map.Entry<String, KafkaConsumer<String, String>> entry : consumers.entrySet()) {
        ledger.pollAndCommit(entry.getKey(), entry.getValue());
      }
    }
  }

  private interface DescriptionCheck {
    boolean test(ConsumerGroupDescription description);
  }

  private static ConsumerGroupDescription describeUntil(Admin admin, String group,
      DescriptionCheck check) throws Exception {
    long deadline = System.nanoTime() + PHASE_TIMEOUT.toNanos();
    while (true) {
      ConsumerGroupDescription description =
          admin.describeConsumerGroups(List.of(group)).describedGroups().get(group)
              .get(30, TimeUnit.SECONDS);
      if (check.test(description)) {
        return description;
      }
      assertTrue(System.nanoTime() < deadline, "describe never matched: " + description);
      Broker.sleep(500);
    }
  }

  private static int assignedCount(ConsumerGroupDescription description) {
    int count = 0;
    for (MemberDescription member : description.members()) {
      count += member.assignment().topicPartitions().size();
    }
    return count;
  }

  private static boolean split(Set<TopicPartition> a, Set<TopicPartition> b) {
    if (a.isEmpty() || b.isEmpty()) {
      return false;
    }
    Set<TopicPartition> union = new HashSet<>(a);
    union.addAll(b);
    return union.size() == PARTITIONS && union.size() == a.size() + b.size();
  }

  private static KafkaConsumer<String, String> consumer(String group, String clientId) {
    Map<String, Object> config = new HashMap<>();
    config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    config.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
    config.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    config.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 20);
    return Clients.stringConsumer(BROKER.bootstrap(), config);
  }
}
