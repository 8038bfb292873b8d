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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Kafka Streams' word count (at_least_once): a known input gives the expected counts. The
 * topology regroups by word, so it also uses a repartition topic and a changelog topic that
 * Streams creates itself, and its consumer group.
 */
class StreamsWordCountTest {
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension();

  private static final List<String> LINES = List.of(
      "the quick brown fox",
      "jumps over the lazy dog",
      "The Dog barks",
      "a fox and a dog",
      "quick quick QUICK");

  @Test
  void wordCountGivesExpectedCounts() throws Exception {
    String input = Clients.unique("streams-in");
    String output = Clients.unique("streams-out");
    String application = Clients.unique("wordcount");
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
    config.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
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
      streams.close(Duration.ofSeconds(30));
    } finally {
      try (var paths = Files.walk(stateDir)) {
        paths.sorted(java.util.Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
      }
    }
  }
}
