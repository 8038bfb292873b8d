package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Two KafkaConsumers in one group (subscribe, the classic protocol, range or cooperative-sticky),
 * committing with commitSync after every poll. One leaves; the other takes over its partitions
 * from the committed offsets: every record is consumed once, none lost, none twice.
 */
class ConsumerGroupTest {
  // Two Ringtail shards: group coordinator and partitions need not share a shard.
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension(2);

  private static final int PARTITIONS = 4;
  private static final int RECORDS_PER_PARTITION = 100;
  private static final Duration PHASE_TIMEOUT = Duration.ofSeconds(60);

  /** What the two consumers received, shared so that a record delivered twice is seen. */
  private static final class Ledger {
    final Map<TopicPartition, Set<Long>> consumed = new HashMap<>();
    final List<String> duplicates = new ArrayList<>();
    final Map<String, Integer> countBy = new HashMap<>();
    final Map<TopicPartition, Long> firstOffsetAfterTakeover = new HashMap<>();
    boolean takeover;

    /** One poll of {@code consumer}; everything it returned is committed with commitSync. */
    int pollAndCommit(String name, KafkaConsumer<String, String> consumer) {
      int count = 0;
      for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(100))) {
        TopicPartition partition = new TopicPartition(record.topic(), record.partition());
        if (!consumed.computeIfAbsent(partition, p -> new HashSet<>()).add(record.offset())) {
          duplicates.add(name + " got " + partition + "@" + record.offset() + " again");
        }
        if (takeover) {
          firstOffsetAfterTakeover.putIfAbsent(partition, record.offset());
        }
        assertEquals("p" + record.partition() + "-" + record.offset(), record.value(), "value");
        count++;
      }
      if (count > 0) {
        try {
          consumer.commitSync(Duration.ofSeconds(30));
        } catch (RebalanceInProgressException e) {
          // The client's rule during a (cooperative) rebalance: the next poll completes it, and
          // the next commit, or the revocation callback, covers these positions.
        }
      }
      countBy.merge(name, count, Integer::sum);
      return count;
    }

    int total() {
      return consumed.values().stream().mapToInt(Set::size).sum();
    }
  }

  @ParameterizedTest(name = "partition.assignment.strategy={0}")
  @ValueSource(classes = {RangeAssignor.class, CooperativeStickyAssignor.class})
  void survivorTakesOverFromCommittedOffsets(Class<?> assignor) throws Exception {
    String topic = Clients.unique("group");
    String group = Clients.unique("g");
    Clients.createTopics(BROKER.bootstrap(), PARTITIONS, topic);
    try (KafkaProducer<String, String> producer =
        Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
      for (int p = 0; p < PARTITIONS; p++) {
        for (int i = 0; i < RECORDS_PER_PARTITION; i++) {
          producer.send(new ProducerRecord<>(topic, p, "k" + i, "p" + p + "-" + i));
        }
      }
      producer.flush();
    }

    Ledger ledger = new Ledger();
    KafkaConsumer<String, String> first = consumer(group, assignor, "first");
    KafkaConsumer<String, String> second = consumer(group, assignor, "second");
    Map<TopicPartition, OffsetAndMetadata> firstCommitted;
    Set<TopicPartition> firstPartitions;
    try {
      first.subscribe(List.of(topic), commitOnRevoke(first));
      second.subscribe(List.of(topic), commitOnRevoke(second));

      // Phase 1: both members own partitions and both consumed some since then.
      long deadline = System.nanoTime() + PHASE_TIMEOUT.toNanos();
      int sharedPolls = 0;
      int firstSinceShared = 0;
      int secondSinceShared = 0;
      while (sharedPolls < 200 && (firstSinceShared < 10 || secondSinceShared < 10)) {
        assertTrue(System.nanoTime() < deadline,
            "no shared assignment in time: first=" + first.assignment() + " second="
                + second.assignment() + " consumed=" + ledger.countBy);
        int a = ledger.pollAndCommit("first", first);
        int b = ledger.pollAndCommit("second", second);
        if (splitBetweenBoth(first.assignment(), second.assignment())) {
          sharedPolls++;
          firstSinceShared += a;
          secondSinceShared += b;
        }
      }
      assertTrue(firstSinceShared >= 10 && secondSinceShared >= 10,
          "both members consumed while sharing the topic: " + ledger.countBy);

      try (Admin admin = Clients.admin(BROKER.bootstrap())) {
        ConsumerGroupDescription description =
            admin.describeConsumerGroups(List.of(group)).describedGroups().get(group)
                .get(30, TimeUnit.SECONDS);
        assertEquals(GroupState.STABLE, description.groupState(), "group state");
        assertEquals(2, description.members().size(), "members");
        String expectedAssignor = assignor == RangeAssignor.class ? "range" : "cooperative-sticky";
        assertEquals(expectedAssignor, description.partitionAssignor(), "assignor");
        Set<TopicPartition> described = new HashSet<>();
        for (MemberDescription member : description.members()) {
          described.addAll(member.assignment().topicPartitions());
        }
        assertEquals(PARTITIONS, described.size(), "described assignment covers the topic");
      }

      firstPartitions = new HashSet<>(first.assignment());
      firstCommitted = first.committed(firstPartitions, Duration.ofSeconds(30));
      assertFalse(firstPartitions.isEmpty(), "first member owned partitions");
    } finally {
      first.close(Duration.ofSeconds(30)); // LeaveGroup
    }

    // Phase 2: the survivor gets every partition and reads the rest.
    ledger.takeover = true;
    int total = PARTITIONS * RECORDS_PER_PARTITION;
    try {
      long deadline = System.nanoTime() + PHASE_TIMEOUT.toNanos();
      while (ledger.total() < total || second.assignment().size() < PARTITIONS) {
        assertTrue(System.nanoTime() < deadline,
            "survivor did not take over in time: assignment=" + second.assignment()
                + " consumed " + ledger.total() + " of " + total);
        ledger.pollAndCommit("second", second);
      }
      assertTrue(ledger.duplicates.isEmpty(), "records delivered twice: " + ledger.duplicates);
      for (int p = 0; p < PARTITIONS; p++) {
        TopicPartition partition = new TopicPartition(topic, p);
        Set<Long> offsets = new TreeSet<>(ledger.consumed.getOrDefault(partition, Set.of()));
        assertEquals(RECORDS_PER_PARTITION, offsets.size(), partition + " consumed offsets");
      }
      // Where the first member had committed, the survivor started exactly there.
      Map<TopicPartition, Long> expectedStart = new TreeMap<>(ConsumerGroupTest::compare);
      Map<TopicPartition, Long> actualStart = new TreeMap<>(ConsumerGroupTest::compare);
      for (TopicPartition partition : firstPartitions) {
        OffsetAndMetadata committed = firstCommitted.get(partition);
        long committedOffset = committed == null ? 0 : committed.offset();
        if (committedOffset < RECORDS_PER_PARTITION) {
          expectedStart.put(partition, committedOffset);
          actualStart.put(partition, ledger.firstOffsetAfterTakeover.get(partition));
        }
      }
      assertEquals(expectedStart, actualStart, "survivor's first offsets on taken-over partitions");
    } finally {
      second.close(Duration.ofSeconds(30));
    }

    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      Map<TopicPartition, OffsetAndMetadata> committed =
          admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
              .get(30, TimeUnit.SECONDS);
      for (int p = 0; p < PARTITIONS; p++) {
        OffsetAndMetadata offset = committed.get(new TopicPartition(topic, p));
        assertEquals(RECORDS_PER_PARTITION, offset == null ? -1 : offset.offset(),
            "committed offset of partition " + p);
      }
      ConsumerGroupDescription description =
          admin.describeConsumerGroups(List.of(group)).describedGroups().get(group)
              .get(30, TimeUnit.SECONDS);
      assertEquals(GroupState.EMPTY, description.groupState(), "group state after both left");
    }
  }

  /** Kafka's documented pattern: commit what was consumed before giving partitions away. */
  private static ConsumerRebalanceListener commitOnRevoke(KafkaConsumer<String, String> consumer) {
    return new ConsumerRebalanceListener() {
      @Override
      public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
        if (!partitions.isEmpty()) {
          consumer.commitSync(Duration.ofSeconds(30));
        }
      }

      @Override
      public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}
    };
  }

  private static boolean splitBetweenBoth(Set<TopicPartition> a, Set<TopicPartition> b) {
    if (a.isEmpty() || b.isEmpty()) {
      return false;
    }
    Set<TopicPartition> union = new HashSet<>(a);
    union.addAll(b);
    return union.size() == PARTITIONS && union.size() == a.size() + b.size();
  }

  private static int compare(TopicPartition x, TopicPartition y) {
    return Integer.compare(x.partition(), y.partition());
  }

  private static KafkaConsumer<String, String> consumer(
      String group, Class<?> assignor, String clientId) {
    Map<String, Object> config = new HashMap<>();
    config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    config.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    config.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor.getName());
    config.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 5);
    // Members notice a rebalance within a second instead of three (Kafka's default); the
    // protocol is the same.
    config.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
    return Clients.stringConsumer(BROKER.bootstrap(), config);
  }
}
