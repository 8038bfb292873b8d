package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Apache Kafka's own command-line tools by their main classes: kafka-topics, the console producer
 * and consumer, kafka-consumer-groups and kafka-get-offsets.
 */
class CliToolsTest {
  // Two Ringtail shards: group coordinator and partitions need not share a shard.
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension(2);

  private static final Duration TOOL_TIMEOUT = Duration.ofSeconds(60);
  private static final int PARTITIONS = 3;
  private static final int MESSAGES = 30;

  @Test
  void topicsCreateListDescribe() throws Exception {
    String topic = Clients.unique("cli-topic");
    Tool.Result created = Tool.run(TOOL_TIMEOUT, Tool.TOPICS, "--bootstrap-server", BROKER.bootstrap(),
        "--create", "--topic", topic, "--partitions", "3", "--replication-factor", "1");
    assertEquals(0, created.exitCode(), created.describe());
    assertTrue(created.stdout().contains("Created topic " + topic + "."), created.describe());

    Tool.Result listed = Tool.run(TOOL_TIMEOUT, Tool.TOPICS, "--bootstrap-server", BROKER.bootstrap(),
        "--list");
    assertEquals(0, listed.exitCode(), listed.describe());
    assertTrue(listed.lines().contains(topic), listed.describe());

    Tool.Result described = Tool.run(TOOL_TIMEOUT, Tool.TOPICS, "--bootstrap-server",
        BROKER.bootstrap(), "--describe", "--topic", topic);
    assertEquals(0, described.exitCode(), described.describe());
    List<String> lines = described.lines();
    String summary = lines.get(0);
    assertTrue(summary.contains("Topic: " + topic), described.describe());
    assertTrue(summary.contains("PartitionCount: 3"), described.describe());
    assertTrue(summary.contains("ReplicationFactor: 1"), described.describe());
    assertTrue(summary.matches(".*TopicId: [A-Za-z0-9_-]{22}\\s.*"), described.describe());
    Set<String> partitions = new HashSet<>();
    for (String line : lines.subList(1, lines.size())) {
      Map<String, String> fields = fields(line);
      assertEquals(topic, fields.get("Topic"), described.describe());
      partitions.add(fields.get("Partition"));
      assertEquals(fields.get("Leader"), fields.get("Replicas"), "one replica, the leader: " + line);
      assertEquals(fields.get("Leader"), fields.get("Isr"), "in sync: " + line);
    }
    assertEquals(Set.of("0", "1", "2"), partitions, described.describe());
  }

  @Test
  void consoleRoundTripThenConsumerGroupsAndGetOffsets() throws Exception {
    String topic = Clients.unique("cli-console");
    String group = Clients.unique("cli-g");
    Clients.createTopics(BROKER.bootstrap(), PARTITIONS, topic);

    StringBuilder input = new StringBuilder();
    Set<String> expected = new HashSet<>();
    for (int i = 0; i < MESSAGES; i++) {
      input.append("key-").append(i).append(':').append("value ").append(i).append('\n');
      expected.add("key-" + i + ":value " + i);
    }
    Tool.Result produced = Tool.runWithInput(TOOL_TIMEOUT, input.toString(), Tool.CONSOLE_PRODUCER,
        "--bootstrap-server", BROKER.bootstrap(), "--topic", topic,
        "--property", "parse.key=true", "--property", "key.separator=:");
    assertEquals(0, produced.exitCode(), produced.describe());

    Tool.Result consumed = Tool.run(TOOL_TIMEOUT, Tool.CONSOLE_CONSUMER,
        "--bootstrap-server", BROKER.bootstrap(), "--topic", topic, "--group", group,
        "--from-beginning", "--max-messages", Integer.toString(MESSAGES), "--timeout-ms", "30000",
        "--property", "print.key=true", "--property", "key.separator=:");
    assertEquals(0, consumed.exitCode(), consumed.describe());
    assertEquals(expected, new HashSet<>(consumed.lines()), consumed.describe());
    assertEquals(MESSAGES, consumed.lines().size(), consumed.describe());
    assertTrue(consumed.stderr().contains("Processed a total of " + MESSAGES + " messages"),
        consumed.describe());

    // kafka-get-offsets: latest per partition adds up to what was produced; earliest are 0.
    Map<Integer, Long> latest = getOffsets(topic, "-1");
    assertEquals(PARTITIONS, latest.size(), "partitions in kafka-get-offsets: " + latest);
    assertEquals(MESSAGES, Clients.sum(latest.values()), "latest offsets: " + latest);
    Map<Integer, Long> earliest = getOffsets(topic, "-2");
    assertEquals(Map.of(0, 0L, 1, 0L, 2, 0L), earliest, "earliest offsets");

    // kafka-consumer-groups --list and --describe: the console consumer committed everything.
    Tool.Result list = Tool.run(TOOL_TIMEOUT, Tool.CONSUMER_GROUPS,
        "--bootstrap-server", BROKER.bootstrap(), "--list");
    assertEquals(0, list.exitCode(), list.describe());
    assertTrue(list.lines().contains(group), list.describe());

    Map<Integer, long[]> described = describeGroup(group, topic);
    assertEquals(latest.keySet(), described.keySet(), "partitions described");
    for (Map.Entry<Integer, long[]> row : described.entrySet()) {
      long[] offsets = row.getValue(); // current, log end, lag
      assertEquals(latest.get(row.getKey()), offsets[1], "LOG-END-OFFSET of " + row.getKey());
      assertEquals(offsets[1], offsets[0], "CURRENT-OFFSET of " + row.getKey());
      assertEquals(0, offsets[2], "LAG of " + row.getKey());
    }

    // --reset-offsets --to-earliest --execute, then the lag is the whole partition.
    Tool.Result reset = Tool.run(TOOL_TIMEOUT, Tool.CONSUMER_GROUPS,
        "--bootstrap-server", BROKER.bootstrap(), "--group", group, "--topic", topic,
        "--reset-offsets", "--to-earliest", "--execute");
    assertEquals(0, reset.exitCode(), reset.describe());
    int resetRows = 0;
    for (String line : reset.lines()) {
      String[] columns = line.trim().split("\\s+");
      if (columns.length == 4 && columns[0].equals(group) && columns[1].equals(topic)) {
        assertEquals("0", columns[3], "NEW-OFFSET: " + line);
        resetRows++;
      }
    }
    assertEquals(PARTITIONS, resetRows, reset.describe());
    try (Admin admin = Clients.admin(BROKER.bootstrap())) {
      Map<TopicPartition, OffsetAndMetadata> committed =
          admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
              .get(30, TimeUnit.SECONDS);
      for (int p = 0; p < PARTITIONS; p++) {
        OffsetAndMetadata offset = committed.get(new TopicPartition(topic, p));
        assertEquals(0, offset == null ? -1 : offset.offset(), "committed after reset, p" + p);
      }
    }
    Map<Integer, long[]> afterReset = describeGroup(group, topic);
    for (Map.Entry<Integer, long[]> row : afterReset.entrySet()) {
      long[] offsets = row.getValue();
      assertEquals(0, offsets[0], "CURRENT-OFFSET after reset of " + row.getKey());
      assertEquals(latest.get(row.getKey()), offsets[2], "LAG after reset of " + row.getKey());
    }
  }

  /** kafka-get-offsets --time T: partition -> offset, from lines {@code topic:partition:offset}. */
  private static Map<Integer, Long> getOffsets(String topic, String time) throws Exception {
    Tool.Result result = Tool.run(TOOL_TIMEOUT, Tool.GET_OFFSETS,
        "--bootstrap-server", BROKER.bootstrap(), "--topic", topic, "--time", time);
    assertEquals(0, result.exitCode(), result.describe());
    Map<Integer, Long> offsets = new HashMap<>();
    for (String line : result.lines()) {
      String[] parts = line.trim().split(":");
      assertEquals(3, parts.length, "line `" + line + "` of\n" + result.describe());
      assertEquals(topic, parts[0], result.describe());
      offsets.put(Integer.parseInt(parts[1]), Long.parseLong(parts[2]));
    }
    return offsets;
  }

  /**
   * kafka-consumer-groups --describe: partition -> {CURRENT-OFFSET, LOG-END-OFFSET, LAG} from the
   * rows {@code GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID}.
   */
  private static Map<Integer, long[]> describeGroup(String group, String topic) throws Exception {
    Tool.Result result = Tool.run(TOOL_TIMEOUT, Tool.CONSUMER_GROUPS,
        "--bootstrap-server", BROKER.bootstrap(), "--describe", "--group", group);
    assertEquals(0, result.exitCode(), result.describe());
    Map<Integer, long[]> rows = new HashMap<>();
    List<String> header = null;
    for (String line : result.lines()) {
      List<String> columns = new ArrayList<>(List.of(line.trim().split("\\s+")));
      if (columns.get(0).equals("GROUP")) {
        header = columns;
        continue;
      }
      if (header == null || !columns.get(0).equals(group) || columns.size() < 6) {
        continue;
      }
      assertEquals(topic, columns.get(header.indexOf("TOPIC")), line);
      rows.put(Integer.parseInt(columns.get(header.indexOf("PARTITION"))), new long[] {
          Long.parseLong(columns.get(header.indexOf("CURRENT-OFFSET"))),
          Long.parseLong(columns.get(header.indexOf("LOG-END-OFFSET"))),
          Long.parseLong(columns.get(header.indexOf("LAG")))});
    }
    assertEquals(PARTITIONS, rows.size(), result.describe());
    return rows;
  }

  /** {@code Key: value} pairs of a kafka-topics --describe partition line (tab separated). */
  private static Map<String, String> fields(String line) {
    Map<String, String> fields = new HashMap<>();
    for (String part : line.trim().split("\t")) {
      int colon = part.indexOf(':');
      if (colon > 0) {
        fields.put(part.substring(0, colon).trim(), part.substring(colon + 1).trim());
      }
    }
    return fields;
  }
}
