package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Kafka Streams' word count with {@code processing.guarantee=exactly_once_v2} (KIP-447): every
 * commit is a transaction of the Streams producer over the repartition, changelog and output
 * topics plus the input offsets (TxnOffsetCommit). The output, read read_committed, gives the
 * expected counts, and the group's committed input offsets are the end of the input.
 */
class StreamsExactlyOnceWordCountTest {
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension();

  private static final List<String> LINES = List.of(
      "the quick brown fox",
      "jumps over the lazy dog",
      "The Dog barks",
      "a fox and a dog",
      "quick quick QUICK");

  @Test
  void wordCountGivesExpectedCounts() throws Exception {
    String input = Clients.unique("eos-in");
    String output = Clients.unique("eos-out");
    String application = Clients.unique("eos-wordcount");
    Clients.createTopics(BROKER.bootstrap(), 2, input, output);

    Map<String, Long> expected = new TreeMap<>();
    for (String line : LINES) {
      for (String word : line.toLowerCase(Locale.ROOT).split("\\W+")) {
        expected.merge(word, 1L, Long::sum);
      }
    }

    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
        .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
        .groupBy((key, word) -> word)
        .count()
        .toStream()
        .to(output, Produced.with(Serdes.String(), Serdes.Long()));

    Path stateDir = Files.createTempDirectory("streams-state-");
    Properties config = new Properties();
    config.put(StreamsConfig.APPLICATION_ID_CONFIG, application);
    config.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, BROKER.bootstrap());
    config.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    config.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    config.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    config.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    config.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
    config.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0); // every update downstream
    config.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    config.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

    try (KafkaProducer<String, String> producer =
        Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
      int i = 0;
      for (String line : LINES) {
        producer.send(new ProducerRecord<>(input, "line-" + i++, line));
      }
      producer.flush();
    }

    Map<String, Long> latest = new TreeMap<>();
    try (KafkaStreams streams = new KafkaStreams(builder.build(), config)) {
      streams.setUncaughtExceptionHandler(exception -> {
        exception.printStackTrace();
        return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
            .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
      });
      streams.start();
      Properties consumerConfig = new Properties();
      consumerConfig.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BROKER.bootstrap());
      consumerConfig.put(ConsumerConfig.GROUP_ID_CONFIG, Clients.unique("wordcount-reader"));
      consumerConfig.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      consumerConfig.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
      try (KafkaConsumer<String, Long> reader =
          new KafkaConsumer<>(consumerConfig, new StringDeserializer(), new LongDeserializer())) {
        reader.subscribe(List.of(output));
        long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
        while (!latest.equals(expected) && System.nanoTime() < deadline) {
          if (streams.state() == KafkaStreams.State.ERROR
              || streams.state() == KafkaStreams.State.PENDING_ERROR) {
            break;
          }
          for (ConsumerRecord<String, Long> record : reader.poll(Duration.ofMillis(200))) {
            latest.put(record.key(), record.value());
          }
        }
      }
      assertEquals(expected, latest, "word counts (streams state " + streams.state() + ")");
      // The input offsets went in with the transactions: the whole input is committed.
      try (org.apache.kafka.clients.admin.Admin admin = Clients.admin(BROKER.bootstrap())) {
        Clients.waitUntil(Duration.ofSeconds(30), () -> "committed input offsets of " + application,
            () -> committedInput(admin, application, input) == LINES.size());
      }
      streams.close(Duration.ofSeconds(30));
    } finally {
      try (var paths = Files.walk(stateDir)) {
        paths.sorted(java.util.Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
      }
    }
  }

  /** The sum of the group's committed offsets on `input`. */
  private static long committedInput(
      org.apache.kafka.clients.admin.Admin admin, String group, String input) {
    try {
      Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
          .partitionsToOffsetAndMetadata().get(30, java.util.concurrent.TimeUnit.SECONDS);
      long total = 0;
      for (Map.Entry<TopicPartition, OffsetAndMetadata> entry : offsets.entrySet()) {
        if (entry.getKey().topic().equals(input) && entry.getValue() != null) {
          total += entry.getValue().offset();
        }
      }
      return total;
    } catch (Exception e) {
      throw new AssertionError("listConsumerGroupOffsets " + group, e);
    }
  }
}
