package clients_test

// sarama (IBM/sarama) with its default configuration: protocol version sarama.DefaultVersion
// (2.8.0: Produce v5+, Fetch v12), acks=WaitForLocal, no idempotence, the range balancer and
// auto-commit every second in groups. The one setting changed is Producer.Return.Successes,
// which NewSyncProducer requires.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaCodecs are sarama's codecs with Kafka's names.
var saramaCodecs = []struct {
	name  string
	codec sarama.CompressionCodec
}{
	{"none", sarama.CompressionNone},
	{"gzip", sarama.CompressionGZIP},
	{"snappy", sarama.CompressionSnappy},
	{"lz4", sarama.CompressionLZ4},
	{"zstd", sarama.CompressionZSTD},
}

// saramaConfig is sarama's default configuration with a client id naming the test.
func saramaConfig(t *testing.T) *sarama.Config {
	config := sarama.NewConfig()
	config.ClientID = "ringtail-go-tests"
	if config.Version != sarama.DefaultVersion {
		t.Fatalf("sarama.NewConfig().Version = %v, want DefaultVersion %v", config.Version, sarama.DefaultVersion)
	}
	return config
}

// saramaCreateTopic creates a topic through sarama's ClusterAdmin (CreateTopics).
func saramaCreateTopic(t *testing.T, topic string, partitions int32) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin([]string{brokerAddr(t)}, saramaConfig(t))
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}
	if err := admin.CreateTopic(topic, detail, false); err != nil {
		t.Fatalf("CreateTopic(%s): %v", topic, err)
	}
}

// saramaMessages are n keyed messages with two headers and timestamps one second apart.
func saramaMessages(topic string, n int, base time.Time) []*sarama.ProducerMessage {
	messages := make([]*sarama.ProducerMessage, n)
	for i := range messages {
		messages[i] = &sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("key-%04d", i)),
			Value: sarama.StringEncoder(fmt.Sprintf("sarama value %04d, sarama value %04d", i, i)),
			Headers: []sarama.RecordHeader{
				{Key: []byte("index"), Value: []byte(fmt.Sprint(i))},
				{Key: []byte("source"), Value: []byte("sarama")},
			},
			Timestamp: base.Add(time.Duration(i) * time.Second),
		}
	}
	return messages
}

// TestSaramaSyncProducerPartitionConsumer sends keyed messages with headers and timestamps
// through a SyncProducer with each codec, then reads every partition from the oldest offset
// with sarama's partition consumer: same keys, values, headers, timestamps and offsets.
func TestSaramaSyncProducerPartitionConsumer(t *testing.T) {
	for _, codec := range saramaCodecs {
		t.Run(codec.name, func(t *testing.T) {
			const partitions, count = 2, 100
			topic := uniqueName("sarama-" + codec.name)
			saramaCreateTopic(t, topic, partitions)

			config := saramaConfig(t)
			config.Producer.Return.Successes = true
			config.Producer.Compression = codec.codec
			producer, err := sarama.NewSyncProducer([]string{brokerAddr(t)}, config)
			if err != nil {
				t.Fatalf("NewSyncProducer: %v", err)
			}
			defer producer.Close()
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			messages := saramaMessages(topic, count, base)
			// One message alone, then the rest as one batch per partition.
			if _, _, err := producer.SendMessage(messages[0]); err != nil {
				t.Fatalf("SendMessage: %v", err)
			}
			if err := producer.SendMessages(messages[1:]); err != nil {
				t.Fatalf("SendMessages: %v", err)
			}
			want := map[int32][]*sarama.ProducerMessage{}
			for _, message := range messages {
				want[message.Partition] = append(want[message.Partition], message)
			}
			if len(want) != partitions {
				t.Fatalf("the hash partitioner used %d partitions, want %d", len(want), partitions)
			}

			consumer, err := sarama.NewConsumer([]string{brokerAddr(t)}, saramaConfig(t))
			if err != nil {
				t.Fatalf("NewConsumer: %v", err)
			}
			defer consumer.Close()
			for partition, expected := range want {
				checkPartitionConsumer(t, consumer, topic, partition, expected)
			}
		})
	}
}

func checkPartitionConsumer(t *testing.T, consumer sarama.Consumer, topic string, partition int32,
	expected []*sarama.ProducerMessage) {
	t.Helper()
	partitionConsumer, err := consumer.ConsumePartition(topic, partition, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("ConsumePartition(%s, %d): %v", topic, partition, err)
	}
	defer partitionConsumer.Close()
	timeout := time.After(30 * time.Second)
	for i, want := range expected {
		var got *sarama.ConsumerMessage
		select {
		case got = <-partitionConsumer.Messages():
		case err := <-partitionConsumer.Errors():
			t.Fatalf("partition %d: %v", partition, err)
		case <-timeout:
			t.Fatalf("partition %d: read %d of %d messages in 30 s", partition, i, len(expected))
		}
		wantKey, _ := want.Key.Encode()
		wantValue, _ := want.Value.Encode()
		if got.Offset != want.Offset || got.Offset != int64(i) {
			t.Errorf("partition %d message %d: offset %d, produced at %d", partition, i, got.Offset, want.Offset)
		}
		if !bytes.Equal(got.Key, wantKey) || !bytes.Equal(got.Value, wantValue) {
			t.Errorf("partition %d offset %d: %q=%q, want %q=%q", partition, got.Offset, got.Key, got.Value,
				wantKey, wantValue)
		}
		if got.Timestamp.UnixMilli() != want.Timestamp.UnixMilli() {
			t.Errorf("partition %d offset %d: timestamp %d, want %d", partition, got.Offset,
				got.Timestamp.UnixMilli(), want.Timestamp.UnixMilli())
		}
		if len(got.Headers) != len(want.Headers) {
			t.Errorf("partition %d offset %d: %d headers, want %d", partition, got.Offset, len(got.Headers),
				len(want.Headers))
			continue
		}
		for h := range want.Headers {
			if !bytes.Equal(got.Headers[h].Key, want.Headers[h].Key) || !bytes.Equal(got.Headers[h].Value, want.Headers[h].Value) {
				t.Errorf("partition %d offset %d: header %d = %q:%q, want %q:%q", partition, got.Offset, h,
					got.Headers[h].Key, got.Headers[h].Value, want.Headers[h].Key, want.Headers[h].Value)
			}
		}
	}
	if hwm := partitionConsumer.HighWaterMarkOffset(); hwm != int64(len(expected)) {
		t.Errorf("partition %d: high watermark %d, want %d", partition, hwm, len(expected))
	}
}

// saramaGroupHandler records what a group session is given and marks every message.
type saramaGroupHandler struct {
	mu       sync.Mutex
	claims   map[string][]int32
	received []*sarama.ConsumerMessage
	// consuming is closed once ConsumeClaim runs for every claimed partition: their offsets
	// are resolved then (for the default initial offset, newest, through ListOffsets).
	consuming chan struct{}
	started   int
	once      sync.Once
}

func (h *saramaGroupHandler) Setup(session sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = session.Claims()
	h.started = 0
	return nil
}

func (h *saramaGroupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaGroupHandler) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	h.mu.Lock()
	h.started++
	claimed := 0
	for _, partitions := range h.claims {
		claimed += len(partitions)
	}
	if h.started == claimed {
		h.once.Do(func() { close(h.consuming) })
	}
	h.mu.Unlock()
	for {
		select {
		case message, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.mu.Lock()
			h.received = append(h.received, message)
			h.mu.Unlock()
			session.MarkMessage(message, "")
		case <-session.Context().Done():
			return nil
		}
	}
}

func (h *saramaGroupHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.received)
}

// runSaramaGroup starts one member of group on topic; stop() ends its session and closes it
// (which commits the marked offsets and leaves the group).
func runSaramaGroup(t *testing.T, group, topic string) (handler *saramaGroupHandler, stop func()) {
	t.Helper()
	consumerGroup, err := sarama.NewConsumerGroup([]string{brokerAddr(t)}, group, saramaConfig(t))
	if err != nil {
		t.Fatalf("NewConsumerGroup: %v", err)
	}
	handler = &saramaGroupHandler{consuming: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var errs []error
	var errsMu sync.Mutex
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := consumerGroup.Consume(ctx, []string{topic}, handler); err != nil &&
				!errors.Is(err, sarama.ErrClosedConsumerGroup) {
				errsMu.Lock()
				errs = append(errs, err)
				errsMu.Unlock()
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if err := consumerGroup.Close(); err != nil {
			t.Errorf("closing the consumer group: %v", err)
		}
		errsMu.Lock()
		defer errsMu.Unlock()
		for _, err := range errs {
			t.Errorf("Consume: %v", err)
		}
	}
	t.Cleanup(stop)
	select {
	case <-handler.consuming:
	case <-time.After(45 * time.Second):
		stop()
		t.Fatalf("group %s: not consuming its claims within 45 s", group)
	}
	return handler, stop
}

// TestSaramaConsumerGroup consumes through a sarama consumer group (defaults: range balancer,
// auto-commit, initial offset newest): a member gets all three partitions and reads what is
// produced after it joined; its offsets are committed when it closes (checked with
// ClusterAdmin.ListConsumerGroupOffsets); a new member of the same group resumes there and
// reads only newer records.
func TestSaramaConsumerGroup(t *testing.T) {
	const partitions = 3
	topic, group := uniqueName("sarama-group"), uniqueName("sarama-group")
	saramaCreateTopic(t, topic, partitions)
	config := saramaConfig(t)
	config.Producer.Return.Successes = true
	config.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer([]string{brokerAddr(t)}, config)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer producer.Close()
	produce := func(prefix string) {
		t.Helper()
		messages := make([]*sarama.ProducerMessage, 30)
		for i := range messages {
			messages[i] = &sarama.ProducerMessage{Topic: topic, Partition: int32(i % partitions),
				Key: sarama.StringEncoder(fmt.Sprintf("%s-%02d", prefix, i)), Value: sarama.StringEncoder("v")}
		}
		if err := producer.SendMessages(messages); err != nil {
			t.Fatalf("SendMessages: %v", err)
		}
	}
	waitCount := func(handler *saramaGroupHandler, want int) {
		t.Helper()
		waitFor(t, 30*time.Second, func() bool { return handler.count() >= want },
			func() string { return fmt.Sprintf("group member read %d of %d messages", handler.count(), want) })
	}

	first, stopFirst := runSaramaGroup(t, group, topic)
	first.mu.Lock()
	claims := first.claims[topic]
	first.mu.Unlock()
	if len(claims) != partitions {
		t.Fatalf("the only member claims %v, want all %d partitions", claims, partitions)
	}
	produce("first")
	waitCount(first, 30)
	stopFirst()

	admin, err := sarama.NewClusterAdmin([]string{brokerAddr(t)}, saramaConfig(t))
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		t.Fatalf("ListConsumerGroupOffsets: %v", err)
	}
	for partition := int32(0); partition < partitions; partition++ {
		block := offsets.GetBlock(topic, partition)
		if block == nil || block.Err != sarama.ErrNoError || block.Offset != 10 {
			t.Errorf("committed offset of %s[%d]: %+v, want 10", topic, partition, block)
		}
	}

	produce("second")
	second, stopSecond := runSaramaGroup(t, group, topic)
	waitCount(second, 30)
	time.Sleep(500 * time.Millisecond) // anything read twice would arrive now
	stopSecond()
	second.mu.Lock()
	defer second.mu.Unlock()
	if len(second.received) != 30 {
		t.Errorf("the second member read %d messages, want the 30 newer ones", len(second.received))
	}
	for _, message := range second.received {
		if !bytes.HasPrefix(message.Key, []byte("second-")) {
			t.Errorf("the second member read %s at %d@%d, which the first had committed", message.Key,
				message.Partition, message.Offset)
		}
	}
}

// TestSaramaGroupTakeOver runs two sarama group members (range balancer, auto-commit) on a
// 4-partition topic: both claim partitions and together read every record; then one closes
// (committing its marked offsets and leaving), the other claims all four partitions and
// reads exactly the records produced after that: none lost, none read twice.
func TestSaramaGroupTakeOver(t *testing.T) {
	const partitions = 4
	topic, group := uniqueName("sarama-takeover"), uniqueName("sarama-takeover")
	saramaCreateTopic(t, topic, partitions)
	config := saramaConfig(t)
	config.Producer.Return.Successes = true
	config.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer([]string{brokerAddr(t)}, config)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer producer.Close()
	produce := func(prefix string) {
		t.Helper()
		messages := make([]*sarama.ProducerMessage, 40)
		for i := range messages {
			messages[i] = &sarama.ProducerMessage{Topic: topic, Partition: int32(i % partitions),
				Key: sarama.StringEncoder(fmt.Sprintf("%s-%02d", prefix, i)), Value: sarama.StringEncoder("v")}
		}
		if err := producer.SendMessages(messages); err != nil {
			t.Fatalf("SendMessages: %v", err)
		}
	}
	claimed := func(h *saramaGroupHandler) int {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.started < len(h.claims[topic]) {
			return 0 // still resolving its offsets
		}
		return len(h.claims[topic])
	}

	first, stopFirst := runSaramaGroup(t, group, topic)
	second, stopSecond := runSaramaGroup(t, group, topic)
	describe := func() string {
		return fmt.Sprintf("first claims %d (read %d), second claims %d (read %d)",
			claimed(first), first.count(), claimed(second), second.count())
	}
	waitFor(t, 60*time.Second, func() bool {
		return claimed(first) > 0 && claimed(second) > 0 && claimed(first)+claimed(second) == partitions
	}, func() string { return "group not balanced: " + describe() })
	produce("before")
	waitFor(t, 30*time.Second, func() bool { return first.count()+second.count() >= 40 },
		func() string { return "records before the leave not all read: " + describe() })
	if first.count() == 0 || second.count() == 0 {
		t.Fatalf("both members should read records: %s", describe())
	}

	stopFirst()
	waitFor(t, 60*time.Second, func() bool { return claimed(second) == partitions },
		func() string { return "second member did not take over: " + describe() })
	produce("after")
	waitFor(t, 30*time.Second, func() bool { return first.count()+second.count() >= 80 },
		func() string { return "records after the leave not all read: " + describe() })
	time.Sleep(500 * time.Millisecond) // anything read twice would arrive now
	stopSecond()

	seen := map[string]string{}
	for _, member := range []struct {
		name    string
		handler *saramaGroupHandler
	}{{"first", first}, {"second", second}} {
		member.handler.mu.Lock()
		for _, message := range member.handler.received {
			if earlier, dup := seen[string(message.Key)]; dup {
				t.Errorf("%s read twice (by %s, then by %s)", message.Key, earlier, member.name)
			}
			seen[string(message.Key)] = member.name
		}
		member.handler.mu.Unlock()
	}
	if len(seen) != 80 {
		t.Errorf("read %d distinct records, want 80", len(seen))
	}
}
