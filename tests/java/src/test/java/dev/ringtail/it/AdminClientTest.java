package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Kafka's AdminClient: topics (create, describe by name and by id, delete), the cluster,
 * ListOffsets (earliest, latest, max-timestamp) and consumer groups (list, describe, offsets,
 * alter offsets, delete).
 */
class AdminClientTest {
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension();

  private static final long TIMEOUT_S = 30;
  private static final Duration PROPAGATION = Duration.ofSeconds(10);

  @Test
  void createDescribeByNameThenDelete() throws Exception {
    String topic = Clients.unique("admin-topic");
    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      CreateTopicsResult created = admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)));
      created.all().get(TIMEOUT_S, TimeUnit.SECONDS);
      Uuid topicId = created.topicId(topic).get(TIMEOUT_S, TimeUnit.SECONDS);
      assertNotNull(topicId, "CreateTopics returns the topic id");
      assertNotEquals(Uuid.ZERO_UUID, topicId, "CreateTopics returns a topic id");
      assertEquals(3, created.numPartitions(topic).get(TIMEOUT_S, TimeUnit.SECONDS), "partitions");
      assertEquals(1, created.replicationFactor(topic).get(TIMEOUT_S, TimeUnit.SECONDS), "RF");

      ExecutionException again =
          assertThrows(ExecutionException.class,
              () -> admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all()
                  .get(TIMEOUT_S, TimeUnit.SECONDS));
      assertInstanceOf(TopicExistsException.class, again.getCause(), "creating it again");

      Node node = onlyNode(admin);
      TopicDescription byName = afterPropagation(() ->
          admin.describeTopics(TopicCollection.ofTopicNames(List.of(topic)))
              .allTopicNames().get(TIMEOUT_S, TimeUnit.SECONDS).get(topic));
      checkDescription(byName, topic, topicId, node);

      Set<String> listed = admin.listTopics().names().get(TIMEOUT_S, TimeUnit.SECONDS);
      assertTrue(listed.contains(topic), "listTopics has " + topic + ": " + listed);

      admin.deleteTopics(TopicCollection.ofTopicNames(List.of(topic))).all()
          .get(TIMEOUT_S, TimeUnit.SECONDS);
      Clients.waitUntil(Duration.ofSeconds(30), () -> topic + " gone from listTopics",
          () -> !listNames(admin).contains(topic));
      ExecutionException gone =
          assertThrows(ExecutionException.class,
              () -> admin.describeTopics(List.of(topic)).allTopicNames()
                  .get(TIMEOUT_S, TimeUnit.SECONDS));
      assertInstanceOf(UnknownTopicOrPartitionException.class, gone.getCause(),
          "describing a deleted topic");
    }
  }

  /**
   * describeTopics by id: the Java client sends Metadata (v12+) topics with the id set and the
   * name left at its default, the empty string (MetadataRequest.json gives Name no null default).
   */
  @Test
  void describeTopicsByTopicId() throws Exception {
    String topic = Clients.unique("admin-by-id");
    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      CreateTopicsResult created = admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)));
      Uuid topicId = created.topicId(topic).get(TIMEOUT_S, TimeUnit.SECONDS);
      Node node = onlyNode(admin);
      TopicDescription byId = afterPropagation(() ->
          admin.describeTopics(TopicCollection.ofTopicIds(List.of(topicId)))
              .allTopicIds().get(TIMEOUT_S, TimeUnit.SECONDS).get(topicId));
      checkDescription(byId, topic, topicId, node);

      Uuid unknown = Uuid.randomUuid();
      ExecutionException missing =
          assertThrows(ExecutionException.class,
              () -> admin.describeTopics(TopicCollection.ofTopicIds(List.of(unknown)))
                  .allTopicIds().get(TIMEOUT_S, TimeUnit.SECONDS));
      assertInstanceOf(UnknownTopicIdException.class, missing.getCause(), "an unknown id");
    }
  }

  @Test
  void describeClusterNamesTheOneBroker() throws Exception {
    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      DescribeClusterResult cluster = admin.describeCluster();
      Collection<Node> nodes = cluster.nodes().get(TIMEOUT_S, TimeUnit.SECONDS);
      assertEquals(1, nodes.size(), "nodes: " + nodes);
      Node node = nodes.iterator().next();
      assertEquals("127.0.0.1", node.host(), "advertised host");
      assertEquals(BROKER.broker().port(), node.port(), "advertised port");
      String clusterId = cluster.clusterId().get(TIMEOUT_S, TimeUnit.SECONDS);
      assertNotNull(clusterId, "cluster id");
      assertFalse(clusterId.isEmpty(), "cluster id");
      Node controller = cluster.controller().get(TIMEOUT_S, TimeUnit.SECONDS);
      assertNotNull(controller, "controller");
      assertEquals(node.id(), controller.id(), "the one broker is the controller clients see");
    }
  }

  @Test
  void listOffsetsEarliestLatestAndMaxTimestamp() throws Exception {
    String topic = Clients.unique("admin-offsets");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    TopicPartition partition = new TopicPartition(topic, 0);
    long base = System.currentTimeMillis() - 100_000;
    // Max timestamp at offset 2 of 5, in the middle of a batch and between batches.
    long[] timestamps = {base + 10, base + 30, base + 90, base + 20, base + 40};
    try (KafkaProducer<String, String> producer =
        Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
      for (int i = 0; i < timestamps.length; i++) {
        producer.send(new ProducerRecord<>(topic, 0, timestamps[i], "k" + i, "v" + i));
        if (i == 1) {
          producer.flush(); // two batches: [0, 1] and [2, 3, 4]
        }
      }
      producer.flush();
    }
    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      ListOffsetsResultInfo earliest = listOffset(admin, partition, OffsetSpec.earliest());
      assertEquals(0, earliest.offset(), "earliest");
      ListOffsetsResultInfo latest = listOffset(admin, partition, OffsetSpec.latest());
      assertEquals(timestamps.length, latest.offset(), "latest");
      ListOffsetsResultInfo max = listOffset(admin, partition, OffsetSpec.maxTimestamp());
      assertEquals(2, max.offset(), "max-timestamp offset");
      assertEquals(base + 90, max.timestamp(), "max timestamp");
      ListOffsetsResultInfo byTime = listOffset(admin, partition, OffsetSpec.forTimestamp(base + 35));
      assertEquals(2, byTime.offset(), "first offset with timestamp >= base+35");
      assertEquals(base + 90, byTime.timestamp(), "its timestamp");
    }
  }

  @Test
  @SuppressWarnings("deprecation") // listConsumerGroups: the call the issue names
  void consumerGroupLifecycle() throws Exception {
    String topic = Clients.unique("admin-group");
    String group = Clients.unique("admin-g");
    Clients.createTopics(BROKER.bootstrap(), 2, topic);
    try (KafkaProducer<String, String> producer =
        Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
      for (int i = 0; i < 10; i++) {
        producer.send(new ProducerRecord<>(topic, i % 2, "k" + i, "v" + i));
      }
      producer.flush();
    }
    TopicPartition p0 = new TopicPartition(topic, 0);
    TopicPartition p1 = new TopicPartition(topic, 1);

    Map<String, Object> config = new HashMap<>();
    config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    config.put(ConsumerConfig.CLIENT_ID_CONFIG, "admin-test-member");
    config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    try (Admin admin = Clients.admin(BROKER.bootstrap());
        KafkaConsumer<String, String> consumer = Clients.stringConsumer(BROKER.bootstrap(), config)) {
      consumer.subscribe(List.of(topic));
      assertEquals(10, Clients.pollCount(consumer, 10, Duration.ofSeconds(30)).size(), "consumed");
      consumer.commitSync(Duration.ofSeconds(30));

      Collection<ConsumerGroupListing> listings =
          admin.listConsumerGroups().all().get(TIMEOUT_S, TimeUnit.SECONDS);
      ConsumerGroupListing listing =
          listings.stream().filter(l -> l.groupId().equals(group)).findFirst().orElse(null);
      assertNotNull(listing, group + " in listConsumerGroups: " + listings);
      assertFalse(listing.isSimpleConsumerGroup(), "a subscribing group is not simple");

      ConsumerGroupDescription description = describe(admin, group);
      assertEquals(GroupState.STABLE, description.groupState(), "state with a member");
      assertEquals("range", description.partitionAssignor(), "the consumer's default assignor");
      assertEquals(1, description.members().size(), "members");
      MemberDescription member = description.members().iterator().next();
      assertEquals("admin-test-member", member.clientId(), "client id");
      assertEquals(Set.of(p0, p1), member.assignment().topicPartitions(), "assignment");
      assertNotNull(description.coordinator(), "coordinator");

      Map<TopicPartition, OffsetAndMetadata> committed = groupOffsets(admin, group);
      assertEquals(5, committed.get(p0).offset(), "committed p0");
      assertEquals(5, committed.get(p1).offset(), "committed p1");
    }

    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      ConsumerGroupDescription empty = describe(admin, group);
      assertEquals(GroupState.EMPTY, empty.groupState(), "state after the member left");
      assertTrue(empty.members().isEmpty(), "no members");

      admin.alterConsumerGroupOffsets(group,
              Map.of(p0, new OffsetAndMetadata(1, "rewound"), p1, new OffsetAndMetadata(3)))
          .all().get(TIMEOUT_S, TimeUnit.SECONDS);
      Map<TopicPartition, OffsetAndMetadata> altered = groupOffsets(admin, group);
      assertEquals(1, altered.get(p0).offset(), "altered p0");
      assertEquals("rewound", altered.get(p0).metadata(), "metadata kept");
      assertEquals(3, altered.get(p1).offset(), "altered p1");

      admin.deleteConsumerGroups(List.of(group)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
      Collection<ConsumerGroupListing> after =
          admin.listConsumerGroups().all().get(TIMEOUT_S, TimeUnit.SECONDS);
      assertFalse(after.stream().anyMatch(l -> l.groupId().equals(group)),
          group + " gone after deleteConsumerGroups: " + after);
      assertTrue(groupOffsets(admin, group).isEmpty(), "no offsets after deleteConsumerGroups");
    }
  }

  /** A call that can fail like this. */
  private interface AdminCall<T> {
    T call() throws Exception;
  }

  /**
   * {@code call}, retried for up to {@link #PROPAGATION} while it fails with an unknown topic or
   * topic id: Kafka answers CreateTopics once its controller committed the topic, and the
   * broker's metadata cache learns it a moment later. Past that, the last failure is thrown.
   */
  private static <T> T afterPropagation(AdminCall<T> call) throws Exception {
    long deadline = System.nanoTime() + PROPAGATION.toNanos();
    while (true) {
      try {
        return call.call();
      } catch (ExecutionException e) {
        boolean unknown = e.getCause() instanceof UnknownTopicIdException
            || e.getCause() instanceof UnknownTopicOrPartitionException;
        if (!unknown || System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(200);
      }
    }
  }

  private static Node onlyNode(Admin admin) throws Exception {
    Collection<Node> nodes = admin.describeCluster().nodes().get(TIMEOUT_S, TimeUnit.SECONDS);
    assertEquals(1, nodes.size(), "one broker");
    return nodes.iterator().next();
  }

  private static void checkDescription(TopicDescription description, String topic, Uuid id, Node node) {
    assertEquals(topic, description.name(), "name");
    assertEquals(id, description.topicId(), "topic id");
    assertFalse(description.isInternal(), "internal");
    List<TopicPartitionInfo> partitions = description.partitions();
    assertEquals(3, partitions.size(), "partitions");
    for (int p = 0; p < partitions.size(); p++) {
      TopicPartitionInfo info = partitions.get(p);
      assertEquals(p, info.partition(), "partition index");
      assertNotNull(info.leader(), "leader of " + p);
      assertEquals(node.id(), info.leader().id(), "leader of " + p);
      assertEquals(List.of(node.id()), ids(info.replicas()), "replicas of " + p);
      assertEquals(List.of(node.id()), ids(info.isr()), "isr of " + p);
    }
  }

  private static List<Integer> ids(List<Node> nodes) {
    return nodes.stream().map(Node::id).collect(Collectors.toList());
  }

  private static Set<String> listNames(Admin admin) {
    try {
      return admin.listTopics().names().get(TIMEOUT_S, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new AssertionError("listTopics failed", e);
    }
  }

  private static ListOffsetsResultInfo listOffset(Admin admin, TopicPartition partition, OffsetSpec spec)
      throws Exception {
    return admin.listOffsets(Map.of(partition, spec)).partitionResult(partition)
        .get(TIMEOUT_S, TimeUnit.SECONDS);
  }

  private static ConsumerGroupDescription describe(Admin admin, String group) throws Exception {
    return admin.describeConsumerGroups(List.of(group)).describedGroups().get(group)
        .get(TIMEOUT_S, TimeUnit.SECONDS);
  }

  private static Map<TopicPartition, OffsetAndMetadata> groupOffsets(Admin admin, String group)
      throws Exception {
    Map<TopicPartition, OffsetAndMetadata> offsets =
        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
            .get(TIMEOUT_S, TimeUnit.SECONDS);
    Map<TopicPartition, OffsetAndMetadata> present = new HashMap<>();
    offsets.forEach((partition, offset) -> {
      if (offset != null) {
        present.put(partition, offset);
      }
    });
    return present;
  }
}
