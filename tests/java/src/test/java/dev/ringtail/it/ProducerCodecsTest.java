package dev.ringtail.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * KafkaProducer with its defaults (idempotent, acks=all) for each codec, read back by a
 * KafkaConsumer with assign + seek: keys, values, headers and timestamps come back intact, at the
 * offsets the producer was told.
 */
class ProducerCodecsTest {
  @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension();

  private static final int PARTITIONS = 3;
  private static final int RECORDS = 300;

  /** One record as sent, and where the broker said it went. */
  private record Sent(ProducerRecord<byte[], byte[]> record, RecordMetadata metadata) {}

  @ParameterizedTest(name = "compression.type={0}")
  @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
  void defaultProducerRoundTripsEveryField(String codec) throws Exception {
    String topic = Clients.unique("codec-" + codec);
    Clients.createTopics(BROKER.bootstrap(), PARTITIONS, topic);
    long seed = new Random().nextLong();
    System.err.println("[it] " + topic + ": seed=" + seed);
    Random random = new Random(seed);
    long baseTimestamp = System.currentTimeMillis() - 60_000;

    List<Sent> sent = new ArrayList<>();
    Map<String, Object> config = new HashMap<>();
    config.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
    config.put(ProducerConfig.LINGER_MS_CONFIG, 5); // several records per batch
    try (KafkaProducer<byte[], byte[]> producer = Clients.bytesProducer(BROKER.bootstrap(), config)) {
      List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
      List<Future<RecordMetadata>> futures = new ArrayList<>();
      for (int i = 0; i < RECORDS; i++) {
        ProducerRecord<byte[], byte[]> record = record(topic, i, baseTimestamp, random);
        records.add(record);
        futures.add(producer.send(record));
      }
      producer.flush();
      for (int i = 0; i < RECORDS; i++) {
        sent.add(new Sent(records.get(i), futures.get(i).get(30, TimeUnit.SECONDS)));
      }
    }

    // The broker's offsets: each partition 0..n-1 without gaps, in send order.
    Map<Integer, Long> nextOffset = new HashMap<>();
    for (Sent s : sent) {
      long expected = nextOffset.getOrDefault(s.metadata.partition(), 0L);
      assertEquals(expected, s.metadata.offset(), "offset of a record in partition " + s.metadata.partition());
      nextOffset.put(s.metadata.partition(), expected + 1);
      assertEquals(s.record.timestamp().longValue(), s.metadata.timestamp(), "CreateTime kept");
    }

    Map<String, Object> consumerConfig = new HashMap<>();
    consumerConfig.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 50);
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.bytesConsumer(BROKER.bootstrap(), consumerConfig)) {
      List<TopicPartition> partitions = new ArrayList<>();
      for (int p = 0; p < PARTITIONS; p++) {
        partitions.add(new TopicPartition(topic, p));
      }
      consumer.assign(partitions);
      for (TopicPartition partition : partitions) {
        consumer.seek(partition, 0);
      }
      List<ConsumerRecord<byte[], byte[]>> received =
          Clients.pollCount(consumer, RECORDS, Duration.ofSeconds(30));
      assertEquals(RECORDS, received.size(), "records read back");

      Map<String, Sent> byPosition = new HashMap<>();
      for (Sent s : sent) {
        byPosition.put(s.metadata.partition() + "@" + s.metadata.offset(), s);
      }
      for (ConsumerRecord<byte[], byte[]> got : received) {
        Sent s = byPosition.remove(got.partition() + "@" + got.offset());
        assertNotNull(s, "unexpected record at " + got.partition() + "@" + got.offset());
        String where = codec + " record " + got.partition() + "@" + got.offset();
        assertArrayEquals(s.record.key(), got.key(), where + ": key");
        assertArrayEquals(s.record.value(), got.value(), where + ": value");
        assertEquals(TimestampType.CREATE_TIME, got.timestampType(), where + ": timestamp type");
        assertEquals(s.record.timestamp().longValue(), got.timestamp(), where + ": timestamp");
        Header[] expectedHeaders = s.record.headers().toArray();
        Header[] gotHeaders = got.headers().toArray();
        assertEquals(expectedHeaders.length, gotHeaders.length, where + ": header count");
        for (int h = 0; h < expectedHeaders.length; h++) {
          assertEquals(expectedHeaders[h].key(), gotHeaders[h].key(), where + ": header key");
          assertArrayEquals(expectedHeaders[h].value(), gotHeaders[h].value(), where + ": header value");
        }
      }
      assertTrue(byPosition.isEmpty(), "records not read back: " + byPosition.keySet());
    }
  }

  /**
   * Record {@code i}: a key (null for every 7th: the sticky partitioner), a value that compresses
   * (text) or does not (random bytes), a null value for every 11th, 0-3 headers including one with
   * a null value, and a CreateTime that is not the send time.
   */
  private static ProducerRecord<byte[], byte[]> record(
      String topic, int i, long baseTimestamp, Random random) {
    byte[] key = i % 7 == 0 ? null : ("key-" + i).getBytes(StandardCharsets.UTF_8);
    byte[] value;
    if (i % 11 == 0) {
      value = null;
    } else if (i % 2 == 0) {
      value = ("value " + i + " ").repeat(1 + random.nextInt(40)).getBytes(StandardCharsets.UTF_8);
    } else {
      value = new byte[random.nextInt(2000)];
      random.nextBytes(value);
    }
    RecordHeaders headers = new RecordHeaders();
    int headerCount = i % 4;
    for (int h = 0; h < headerCount; h++) {
      byte[] headerValue =
          h == 2 ? null : ("h" + h + "-" + i).getBytes(StandardCharsets.UTF_8);
      headers.add(new RecordHeader("header-" + h, headerValue));
    }
    // Not in send order: each batch's max timestamp differs from its last record's.
    long timestamp = baseTimestamp + (i * 37L) % 1000;
    Integer partition = key == null && i % 2 == 0 ? Integer.valueOf(i % PARTITIONS) : null;
    return new ProducerRecord<>(topic, partition, timestamp, key, value, headers);
  }

  /** Ringtail keeps Kafka's on-disk layout: a partition directory with a .log segment file. */
  @Test
  @RingtailOnly
  void ringtailWritesKafkaLayoutSegment() throws Exception {
    String topic = Clients.unique("layout");
    Clients.createTopics(BROKER.bootstrap(), 1, topic);
    try (KafkaProducer<String, String> producer =
        Clients.stringProducer(BROKER.bootstrap(), Map.of())) {
      producer.send(new ProducerRecord<>(topic, "k", "v")).get(30, TimeUnit.SECONDS);
    }
    Path segment = BROKER.broker().ringtailLogDir().resolve(topic + "-0/00000000000000000000.log");
    assertTrue(Files.isRegularFile(segment), "segment file " + segment);
    assertTrue(Files.size(segment) >= 61 + 8, "segment holds a record batch: " + Files.size(segment));
  }
}
