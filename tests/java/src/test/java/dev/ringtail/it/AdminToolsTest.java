package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.LogTruncationException;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 9's operator tools by their main classes -- kafka-topics --alter --partitions,
 * kafka-delete-records, kafka-log-dirs -- and KIP-320 position validation by the Java consumer
 * (a seek with a leader epoch is checked with OffsetForLeaderEpoch before fetching).
 */
class AdminToolsTest {
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension(2);

  private static final Duration TOOL_TIMEOUT = Duration.ofSeconds(60);
  /** kafka-delete-records.sh */
  private static final String DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand";
  /** kafka-log-dirs.sh */
  private static final String LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand";

  @Test
  void alterPartitionsThenProduceToTheNewOnes() throws Exception {
    String topic = Clients.unique("cli-grow");
    Clients.createTopics(BROKER.bootstrap(), 2, topic);
    Tool.Result altered = Tool.run(TOOL_TIMEOUT, Tool.TOPICS, "--bootstrap-server",
        BROKER.bootstrap(), "--alter", "--topic", topic, "--partitions", "4");
    assertEquals(0, altered.exitCode(), altered.describe());
    Tool.Result described = Tool.run(TOOL_TIMEOUT, Tool.TOPICS, "--bootstrap-server",
        BROKER.bootstrap(), "--describe", "--topic", topic);
    assertTrue(described.lines().get(0).contains("PartitionCount: 4"), described.describe());
    Tool.Result shrink = Tool.run(TOOL_TIMEOUT, Tool.TOPICS, "--bootstrap-server",
        BROKER.bootstrap(), "--alter", "--topic", topic, "--partitions", "3");
    assertEquals(1, shrink.exitCode(), shrink.describe());
    assertTrue(shrink.stdout().contains("The topic " + topic
        + " currently has 4 partition(s); 3 would not be an increase."), shrink.describe());
    produce(topic, 3, 5);
    try (KafkaConsumer<String, String> consumer = Clients.stringConsumer(BROKER.bootstrap(), Map.of())) {
      TopicPartition added = new TopicPartition(topic, 3);
      consumer.assign(List.of(added));
      consumer.seekToBeginning(List.of(added));
      assertEquals(5, Clients.pollCount(consumer, 5, Duration.ofSeconds(30)).size());
    }
  }

  @Test
  void deleteRecordsAndLogDirs() throws Exception {
    String topic = Clients.unique("cli-purge");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    produce(topic, 0, 10);
    Path offsets = Files.createTempFile("delete-records-", ".json");
    Files.writeString(offsets, "{\"partitions\":[{\"topic\":\"" + topic
        + "\",\"partition\":0,\"offset\":4}],\"version\":1}");
    Tool.Result deleted = Tool.run(TOOL_TIMEOUT, DELETE_RECORDS, "--bootstrap-server",
        BROKER.bootstrap(), "--offset-json-file", offsets.toString());
    Files.delete(offsets);
    assertEquals(0, deleted.exitCode(), deleted.describe());
    assertTrue(deleted.stdout().contains("partition: " + topic + "-0\tlow_watermark: 4"),
        deleted.describe());
    try (KafkaConsumer<String, String> consumer = Clients.stringConsumer(BROKER.bootstrap(), Map.of())) {
      TopicPartition partition = new TopicPartition(topic, 0);
      assertEquals(Map.of(partition, 4L), consumer.beginningOffsets(List.of(partition)));
    }

    Tool.Result dirs = Tool.run(TOOL_TIMEOUT, LOG_DIRS, "--bootstrap-server", BROKER.bootstrap(),
        "--describe", "--topic-list", topic);
    assertEquals(0, dirs.exitCode(), dirs.describe());
    Matcher size = Pattern.compile("\"partition\":\"" + Pattern.quote(topic)
        + "-0\",\"size\":(\\d+),\"offsetLag\":0,\"isFuture\":false").matcher(dirs.stdout());
    assertTrue(size.find(), dirs.describe());
    long bytes = Long.parseLong(size.group(1));
    assertTrue(bytes >= 10 * 100 && bytes < 10 * 100 + 10 * 200, "size " + bytes);
  }

  @Test
  void seekWithLeaderEpochIsValidated() throws Exception {
    String topic = Clients.unique("kip320");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    produce(topic, 0, 6);
    TopicPartition partition = new TopicPartition(topic, 0);
    Map<String, Object> noReset = Map.of("auto.offset.reset", "none");
    try (KafkaConsumer<String, String> consumer = Clients.stringConsumer(BROKER.bootstrap(), noReset)) {
      consumer.assign(List.of(partition));
      consumer.seek(partition, 0);
      List<ConsumerRecord<String, String>> all = Clients.pollCount(consumer, 6, Duration.ofSeconds(30));
      assertEquals(6, all.size());
      Optional<Integer> epoch = all.get(0).leaderEpoch();
      assertTrue(epoch.isPresent(), "records carry the partition leader epoch");

      // A position in the current epoch at or below its end is valid: reading goes on from it.
      consumer.seek(partition, new OffsetAndMetadata(2, epoch, ""));
      List<ConsumerRecord<String, String>> rest = Clients.pollCount(consumer, 4, Duration.ofSeconds(30));
      assertEquals(List.of(2L, 3L, 4L, 5L), rest.stream().map(ConsumerRecord::offset).toList());

      // Beyond the end of its epoch: OffsetForLeaderEpoch reveals the truncation.
      consumer.seek(partition, new OffsetAndMetadata(100, epoch, ""));
      LogTruncationException truncated = assertThrows(LogTruncationException.class, () -> {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (System.nanoTime() < deadline) {
          consumer.poll(Duration.ofMillis(200));
        }
      });
      OffsetAndMetadata divergent = truncated.divergentOffsets().get(partition);
      assertInstanceOf(OffsetAndMetadata.class, divergent, truncated.toString());
      assertEquals(6, divergent.offset(), truncated.toString());
      assertEquals(epoch, divergent.leaderEpoch(), truncated.toString());
    }
  }

  private static void produce(String topic, int partition, int count) throws Exception {
    try (KafkaProducer<String, String> producer = Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
      for (int i = 0; i < count; i++) {
        producer.send(new ProducerRecord<>(topic, partition, null, "value-" + "x".repeat(94) + i)).get();
      }
    }
  }
}
