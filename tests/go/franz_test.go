package clients_test

// franz-go (kgo and kadm) with its defaults: idempotent producer with acks=all, fetch sessions
// (KIP-227) on the consumer, the cooperative-sticky balancer in groups.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// codecs are Kafka's record batch codecs by their attribute id (bits 0-2 of a batch's
// attributes, KIP-110 for zstd).
var codecs = []struct {
	name  string
	id    int16
	codec kgo.CompressionCodec
}{
	{"none", 0, kgo.NoCompression()},
	{"gzip", 1, kgo.GzipCompression()},
	{"snappy", 2, kgo.SnappyCompression()},
	{"lz4", 3, kgo.Lz4Compression()},
	{"zstd", 4, kgo.ZstdCompression()},
}

// newClient is a kgo client for the broker under test with its defaults plus opts.
func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(brokerAddr(t))}, opts...)
	client, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(client.Close)
	return client
}

// newAdmin is a kadm client over its own kgo client.
func newAdmin(t *testing.T) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newClient(t))
}

// createTopic creates topic with partitions partitions and replication factor 1 and fails the
// test on any error.
func createTopic(t *testing.T, admin *kadm.Client, topic string, partitions int32) {
	t.Helper()
	ctx := testContext(t, 20*time.Second)
	responses, err := admin.CreateTopics(ctx, partitions, 1, nil, topic)
	if err != nil {
		t.Fatalf("CreateTopics(%s): %v", topic, err)
	}
	if err := responses.Error(); err != nil {
		t.Fatalf("CreateTopics(%s): %v (%s)", topic, err, responses[topic].ErrMessage)
	}
}

// testRecords are n records for topic with distinct keys, compressible values, two headers
// (one with an empty value) and explicit millisecond timestamps one second apart from base.
func testRecords(topic string, n int, base time.Time) []*kgo.Record {
	records := make([]*kgo.Record, n)
	for i := range records {
		records[i] = &kgo.Record{
			Topic: topic,
			Key:   []byte(fmt.Sprintf("key-%04d", i)),
			Value: []byte(strings.Repeat(fmt.Sprintf("value %04d of a compressible record; ", i), 8)),
			Headers: []kgo.RecordHeader{
				{Key: "index", Value: []byte(fmt.Sprint(i))},
				{Key: "empty", Value: []byte{}},
			},
			Timestamp: base.Add(time.Duration(i) * time.Second),
		}
	}
	return records
}

// consumeN reads records from the client until it has n or the timeout passes.
func consumeN(t *testing.T, client *kgo.Client, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	ctx := testContext(t, timeout)
	var got []*kgo.Record
	for len(got) < n {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("after %v: read %d of %d records", timeout, len(got), n)
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			t.Errorf("fetch %s[%d]: %v", topic, partition, err)
		})
		if t.Failed() {
			t.FailNow()
		}
		got = append(got, fetches.Records()...)
	}
	return got
}

// sameRecord reports how got differs from want in key, value, headers and timestamp ("" when
// it does not).
func sameRecord(want, got *kgo.Record) string {
	var problems []string
	if !bytes.Equal(want.Key, got.Key) {
		problems = append(problems, fmt.Sprintf("key %q, want %q", got.Key, want.Key))
	}
	if !bytes.Equal(want.Value, got.Value) {
		problems = append(problems, fmt.Sprintf("value %q, want %q", got.Value, want.Value))
	}
	if len(want.Headers) != len(got.Headers) {
		problems = append(problems, fmt.Sprintf("%d headers, want %d", len(got.Headers), len(want.Headers)))
	} else {
		for i := range want.Headers {
			if want.Headers[i].Key != got.Headers[i].Key || !bytes.Equal(want.Headers[i].Value, got.Headers[i].Value) {
				problems = append(problems, fmt.Sprintf("header %d = %q:%q, want %q:%q", i,
					got.Headers[i].Key, got.Headers[i].Value, want.Headers[i].Key, want.Headers[i].Value))
			}
		}
	}
	if got.Timestamp.UnixMilli() != want.Timestamp.UnixMilli() {
		problems = append(problems, fmt.Sprintf("timestamp %d ms, want %d ms", got.Timestamp.UnixMilli(),
			want.Timestamp.UnixMilli()))
	}
	if got.Attrs.TimestampType() != 0 {
		problems = append(problems, fmt.Sprintf("timestamp type %d, want 0 (CreateTime)", got.Attrs.TimestampType()))
	}
	return strings.Join(problems, "; ")
}

// TestFranzProduceConsumeEachCodec produces keyed records with headers and timestamps through
// kgo's default (idempotent, acks=all) producer with each codec, and reads them back with a
// default direct consumer (fetch sessions on): every record intact, offsets dense from 0.
func TestFranzProduceConsumeEachCodec(t *testing.T) {
	admin := newAdmin(t)
	for _, codec := range codecs {
		t.Run(codec.name, func(t *testing.T) {
			const partitions, count = 3, 300
			topic := uniqueName("franz-" + codec.name)
			createTopic(t, admin, topic, partitions)

			producer := newClient(t, kgo.ProducerBatchCompression(codec.codec), kgo.ProducerLinger(20*time.Millisecond))
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			records := testRecords(topic, count, base)
			ctx := testContext(t, 30*time.Second)
			if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
				t.Fatalf("ProduceSync: %v", err)
			}
			byKey := map[string]*kgo.Record{}
			for _, record := range records {
				byKey[string(record.Key)] = record
			}

			consumer := newClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := consumeN(t, consumer, count, 30*time.Second)
			if len(got) != count {
				t.Fatalf("read %d records, want %d", len(got), count)
			}
			nextOffset := map[int32]int64{}
			for _, record := range got {
				want := byKey[string(record.Key)]
				if want == nil {
					t.Fatalf("unexpected record key %q", record.Key)
				}
				if record.Partition != want.Partition || record.Offset != want.Offset {
					t.Errorf("%s read at %d@%d, produced at %d@%d", record.Key, record.Partition,
						record.Offset, want.Partition, want.Offset)
				}
				if record.Offset != nextOffset[record.Partition] {
					t.Errorf("partition %d: offset %d, want %d", record.Partition, record.Offset,
						nextOffset[record.Partition])
				}
				nextOffset[record.Partition] = record.Offset + 1
				if problem := sameRecord(want, record); problem != "" {
					t.Errorf("%s: %s", record.Key, problem)
				}
				delete(byKey, string(record.Key))
			}
			if len(byKey) != 0 {
				t.Errorf("%d records not read back", len(byKey))
			}
		})
	}
}

// TestRingtailStoresBatchesAsSent produces with each codec and reads Ringtail's segment files
// (Kafka's layout: <log dir>/<topic>-<partition>/00000000000000000000.log): every batch carries
// the producer's codec, as the README promises ("record batches stored as producers sent
// them"). Ringtail-only: it reads the broker's files.
func TestRingtailStoresBatchesAsSent(t *testing.T) {
	skipOnKafka(t, "reads Ringtail's segment files")
	admin := newAdmin(t)
	for _, codec := range codecs {
		t.Run(codec.name, func(t *testing.T) {
			const partitions = 2
			topic := uniqueName("stored-" + codec.name)
			createTopic(t, admin, topic, partitions)
			producer := newClient(t, kgo.ProducerBatchCompression(codec.codec), kgo.ProducerLinger(20*time.Millisecond))
			ctx := testContext(t, 30*time.Second)
			if err := producer.ProduceSync(ctx, testRecords(topic, 100, time.Now())...).FirstErr(); err != nil {
				t.Fatalf("ProduceSync: %v", err)
			}
			checkStoredCodec(t, topic, partitions, codec.id)
		})
	}
}

// checkStoredCodec reads Ringtail's segment files of topic and checks that every batch carries
// the producer's codec: Ringtail stores batches as producers sent them (README, "record
// batches stored as producers sent them"). kgo compresses a batch only when that makes it
// smaller, and these values compress well.
func checkStoredCodec(t *testing.T, topic string, partitions int, codecID int16) {
	t.Helper()
	batches := 0
	for partition := range partitions {
		path := filepath.Join(testBroker.dataDir, fmt.Sprintf("%s-%d", topic, partition), "00000000000000000000.log")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("segment of %s-%d: %v", topic, partition, err)
		}
		// Batch header (Kafka's record batch v2): baseOffset i64, batchLength i32, leader
		// epoch i32, magic i8, crc u32, attributes i16 at byte 21. A zero length ends the
		// written part of a preallocated file.
		for position := 0; position+61 <= len(data); {
			length := int(int32(binary.BigEndian.Uint32(data[position+8:])))
			if length == 0 {
				break
			}
			if length < 49 || position+12+length > len(data) {
				t.Fatalf("%s: batch at byte %d has length %d (file %d bytes)", path, position, length, len(data))
			}
			attributes := int16(binary.BigEndian.Uint16(data[position+21:]))
			if attributes&7 != codecID {
				t.Errorf("%s: batch at byte %d stored with codec %d, produced with %d", path, position,
					attributes&7, codecID)
			}
			batches++
			position += 12 + length
		}
	}
	if batches == 0 {
		t.Errorf("no batches found in the segments of %s", topic)
	}
}

// groupMember is one kgo group consumer that commits what it read after every poll, before it
// lets a rebalance go on (BlockRebalanceOnPoll), so a revoked partition's records are always
// committed first.
type groupMember struct {
	name   string
	client *kgo.Client
	done   chan struct{}
	cancel context.CancelFunc

	mu       sync.Mutex
	assigned map[int32]bool
	records  []*kgo.Record
	errors   []error
}

func startGroupMember(t *testing.T, name, group, topic string) *groupMember {
	t.Helper()
	member := &groupMember{name: name, done: make(chan struct{}), assigned: map[int32]bool{}}
	member.client = newClient(t,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, added map[string][]int32) {
			member.mu.Lock()
			defer member.mu.Unlock()
			for _, partition := range added[topic] {
				member.assigned[partition] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			member.forget(lost[topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			member.forget(lost[topic])
		}),
	)
	ctx, cancel := context.WithCancel(context.Background())
	member.cancel = cancel
	go member.run(ctx)
	return member
}

func (m *groupMember) forget(partitions []int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, partition := range partitions {
		delete(m.assigned, partition)
	}
}

func (m *groupMember) run(ctx context.Context) {
	defer close(m.done)
	for ctx.Err() == nil {
		fetches := m.client.PollRecords(ctx, 100)
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				m.fail(fmt.Errorf("%s: fetch %s[%d]: %w", m.name, topic, partition, err))
			}
		})
		records := fetches.Records()
		if len(records) > 0 {
			commitCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err := m.client.CommitRecords(commitCtx, records...)
			cancel()
			if err != nil {
				m.fail(fmt.Errorf("%s: CommitRecords: %w", m.name, err))
			}
			m.mu.Lock()
			m.records = append(m.records, records...)
			m.mu.Unlock()
		}
		m.client.AllowRebalance()
	}
}

func (m *groupMember) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errors = append(m.errors, err)
}

// leave stops polling and closes the client, which sends LeaveGroup.
func (m *groupMember) leave() {
	m.cancel()
	<-m.done
	m.client.AllowRebalance()
	m.client.Close()
}

func (m *groupMember) snapshot() (assigned []int32, records []*kgo.Record, errs []error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for partition := range m.assigned {
		assigned = append(assigned, partition)
	}
	sort.Slice(assigned, func(i, j int) bool { return assigned[i] < assigned[j] })
	return assigned, slices.Clone(m.records), slices.Clone(m.errors)
}

// waitFor polls condition every 100 ms until it holds or timeout passes; then it fails with
// describe().
func waitFor(t *testing.T, timeout time.Duration, condition func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !condition() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// produceToPartitions writes count keyed records round-robin over partitions (manual
// partitioning), keys prefix-0000..., and waits for their acks.
func produceToPartitions(t *testing.T, producer *kgo.Client, topic, prefix string, partitions, count int) {
	t.Helper()
	records := make([]*kgo.Record, count)
	for i := range records {
		records[i] = &kgo.Record{Topic: topic, Partition: int32(i % partitions),
			Key: []byte(fmt.Sprintf("%s-%04d", prefix, i)), Value: []byte("v")}
	}
	ctx := testContext(t, 30*time.Second)
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync: %v", err)
	}
}

// TestFranzGroupTakeOver runs two kgo group members (cooperative-sticky, the default) on a
// 4-partition topic: both get partitions and together read every record, committing as they
// go; then one leaves, the other takes over all partitions and reads exactly the records
// produced after that -- none lost, none read twice -- and the group's committed offsets
// equal the log end offsets.
func TestFranzGroupTakeOver(t *testing.T) {
	const partitions = 4
	admin := newAdmin(t)
	topic, group := uniqueName("franz-group"), uniqueName("franz-group")
	createTopic(t, admin, topic, partitions)
	producer := newClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))

	first := startGroupMember(t, "first", group, topic)
	second := startGroupMember(t, "second", group, topic)
	defer first.leave()
	defer second.leave()

	balanced := func() bool {
		firstAssigned, _, _ := first.snapshot()
		secondAssigned, _, _ := second.snapshot()
		union := map[int32]bool{}
		for _, partition := range append(firstAssigned, secondAssigned...) {
			union[partition] = true
		}
		return len(firstAssigned) > 0 && len(secondAssigned) > 0 &&
			len(firstAssigned)+len(secondAssigned) == partitions && len(union) == partitions
	}
	describe := func() string {
		firstAssigned, firstRecords, firstErrors := first.snapshot()
		secondAssigned, secondRecords, secondErrors := second.snapshot()
		return fmt.Sprintf("first: partitions %v, %d records, errors %v; second: partitions %v, %d records, errors %v",
			firstAssigned, len(firstRecords), firstErrors, secondAssigned, len(secondRecords), secondErrors)
	}
	waitFor(t, 45*time.Second, balanced, func() string { return "group not balanced: " + describe() })

	produceToPartitions(t, producer, topic, "before", partitions, 40)
	total := func() int {
		_, firstRecords, _ := first.snapshot()
		_, secondRecords, _ := second.snapshot()
		return len(firstRecords) + len(secondRecords)
	}
	waitFor(t, 30*time.Second, func() bool { return total() >= 40 },
		func() string { return "records before the leave not all read: " + describe() })
	_, firstRecords, _ := first.snapshot()
	_, secondRecords, _ := second.snapshot()
	if len(firstRecords) == 0 || len(secondRecords) == 0 {
		t.Fatalf("both members should read records: %s", describe())
	}

	first.leave()
	waitFor(t, 45*time.Second, func() bool {
		assigned, _, _ := second.snapshot()
		return len(assigned) == partitions
	}, func() string { return "second member did not take over all partitions: " + describe() })

	produceToPartitions(t, producer, topic, "after", partitions, 40)
	waitFor(t, 30*time.Second, func() bool { return total() >= 80 },
		func() string { return "records after the leave not all read: " + describe() })
	time.Sleep(500 * time.Millisecond) // a duplicate, if any, would arrive now

	_, firstRecords, firstErrors := first.snapshot()
	_, secondRecords, secondErrors := second.snapshot()
	for _, err := range append(firstErrors, secondErrors...) {
		t.Error(err)
	}
	seen := map[string]string{}
	for _, read := range []struct {
		name    string
		records []*kgo.Record
	}{{"first", firstRecords}, {"second", secondRecords}} {
		for _, record := range read.records {
			if earlier, dup := seen[string(record.Key)]; dup {
				t.Errorf("%s read twice (by %s, then by %s)", record.Key, earlier, read.name)
			}
			seen[string(record.Key)] = read.name
		}
	}
	if len(seen) != 80 {
		t.Errorf("read %d distinct records, want 80: %s", len(seen), describe())
	}
	for _, record := range firstRecords {
		if strings.HasPrefix(string(record.Key), "after") {
			t.Errorf("first member read %s after it left", record.Key)
		}
	}

	ctx := testContext(t, 20*time.Second)
	committed, err := admin.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	ends, err := admin.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	for partition := int32(0); partition < partitions; partition++ {
		end, _ := ends.Lookup(topic, partition)
		offset, ok := committed.Lookup(topic, partition)
		if !ok || offset.Err != nil || offset.At != end.Offset || end.Offset != 20 {
			t.Errorf("partition %d: committed %+v, end offset %d, want both 20", partition, offset, end.Offset)
		}
	}
	described, err := admin.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	description := described[group]
	if description.Err != nil || description.State != "Stable" || len(description.Members) != 1 ||
		description.Protocol != "cooperative-sticky" {
		t.Errorf("DescribeGroups: state %q, %d members, protocol %q, err %v; want Stable, 1, cooperative-sticky",
			description.State, len(description.Members), description.Protocol, description.Err)
	}
}

// TestKadmTopics creates, lists, describes (Metadata), lists offsets of and deletes topics
// through kadm.
func TestKadmTopics(t *testing.T) {
	admin := newAdmin(t)
	ctx := testContext(t, 60*time.Second)
	first, second := uniqueName("kadm-a"), uniqueName("kadm-b")

	created, err := admin.CreateTopics(ctx, 3, 1, nil, first, second)
	if err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	for _, topic := range []string{first, second} {
		response := created[topic]
		if response.Err != nil || response.NumPartitions != 3 || response.ReplicationFactor != 1 ||
			response.ID == (kadm.TopicID{}) {
			t.Errorf("CreateTopics %s: %+v; want 3 partitions, replication factor 1, a topic id", topic, response)
		}
	}
	again, err := admin.CreateTopics(ctx, 3, 1, nil, first)
	if err != nil {
		t.Fatalf("CreateTopics again: %v", err)
	}
	if !errors.Is(again[first].Err, kerr.TopicAlreadyExists) {
		t.Errorf("creating %s twice: %v, want TOPIC_ALREADY_EXISTS", first, again[first].Err)
	}
	invalid, err := admin.CreateTopics(ctx, 0, 1, nil, uniqueName("kadm-zero"))
	if err != nil {
		t.Fatalf("CreateTopics with 0 partitions: %v", err)
	}
	if err := invalid.Error(); !errors.Is(err, kerr.InvalidPartitions) {
		t.Errorf("creating a topic with 0 partitions: %v, want INVALID_PARTITIONS", err)
	}

	brokers, err := admin.ListBrokers(ctx)
	if err != nil || len(brokers) != 1 {
		t.Fatalf("ListBrokers: %v, %v; want one broker", brokers, err)
	}
	node := brokers[0]
	if address := fmt.Sprintf("%s:%d", node.Host, node.Port); address != brokerAddr(t) {
		t.Errorf("broker advertises %s, want %s", address, brokerAddr(t))
	}

	listed, err := admin.ListTopics(ctx)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	for _, topic := range []string{first, second} {
		detail, ok := listed[topic]
		if !ok {
			t.Fatalf("ListTopics lacks %s: %v", topic, listed.Names())
		}
		if detail.Err != nil || detail.IsInternal || detail.ID != created[topic].ID || len(detail.Partitions) != 3 {
			t.Errorf("ListTopics %s: %+v; want 3 partitions, id %v", topic, detail, created[topic].ID)
		}
		for _, partition := range detail.Partitions.Sorted() {
			if partition.Err != nil || partition.Leader != node.NodeID ||
				!slices.Equal(partition.Replicas, []int32{node.NodeID}) || !slices.Equal(partition.ISR, []int32{node.NodeID}) {
				t.Errorf("%s[%d]: leader %d, replicas %v, isr %v, err %v; want node %d everywhere", topic,
					partition.Partition, partition.Leader, partition.Replicas, partition.ISR, partition.Err, node.NodeID)
			}
		}
	}
	if _, ok := listed["__consumer_offsets"]; ok {
		t.Errorf("ListTopics (without internal topics) lists __consumer_offsets")
	}

	// Five records in partition 0 (kgo's default codec); 1 and 2 stay empty.
	producer := newClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := producer.ProduceSync(ctx, testRecords(first, 5, time.Now())...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync: %v", err)
	}
	starts, err := admin.ListStartOffsets(ctx, first)
	checkListedOffsets(t, "ListStartOffsets", first, starts, err, map[int32][2]int64{0: {0, 0}, 1: {0, 0}, 2: {0, 0}})
	ends, err := admin.ListEndOffsets(ctx, first)
	checkListedOffsets(t, "ListEndOffsets", first, ends, err, map[int32][2]int64{0: {5, 0}, 1: {0, 0}, 2: {0, 0}})

	deleted, err := admin.DeleteTopics(ctx, first, second)
	if err != nil {
		t.Fatalf("DeleteTopics: %v", err)
	}
	if err := deleted.Error(); err != nil {
		t.Errorf("DeleteTopics: %v", err)
	}
	missing, err := admin.DeleteTopics(ctx, first)
	if err != nil {
		t.Fatalf("DeleteTopics again: %v", err)
	}
	if !errors.Is(missing[first].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("deleting %s twice: %v, want UNKNOWN_TOPIC_OR_PARTITION", first, missing[first].Err)
	}
	waitFor(t, 20*time.Second, func() bool {
		listed, err := admin.ListTopics(ctx)
		if err != nil {
			return false
		}
		_, hasFirst := listed[first]
		_, hasSecond := listed[second]
		return !hasFirst && !hasSecond
	}, func() string { return "deleted topics still listed" })
	described, err := admin.ListTopics(ctx, first)
	if err != nil {
		t.Fatalf("ListTopics(%s): %v", first, err)
	}
	if !errors.Is(described[first].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("Metadata for deleted %s: %v, want UNKNOWN_TOPIC_OR_PARTITION", first, described[first].Err)
	}
}

// checkListedOffsets checks a kadm ListedOffsets for topic against want: partition ->
// {offset, timestamp}, where a timestamp of 0 is not checked.
func checkListedOffsets(t *testing.T, what, topic string, listed kadm.ListedOffsets, err error, want map[int32][2]int64) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	for partition, expected := range want {
		got, ok := listed.Lookup(topic, partition)
		if !ok || got.Err != nil || got.Offset != expected[0] || (expected[1] != 0 && got.Timestamp != expected[1]) {
			t.Errorf("%s %s[%d]: offset %d timestamp %d (err %v, found %v); want offset %d timestamp %d",
				what, topic, partition, got.Offset, got.Timestamp, got.Err, ok, expected[0], expected[1])
		}
	}
}

// TestKadmListOffsetsByTimestamp lists offsets by timestamp (ListOffsets with a time, and -3,
// the max timestamp, KIP-734) in batches written with each codec: the broker has to look
// inside the (compressed) batch for the record's offset.
func TestKadmListOffsetsByTimestamp(t *testing.T) {
	admin := newAdmin(t)
	for _, codec := range codecs {
		t.Run(codec.name, func(t *testing.T) {
			ctx := testContext(t, 30*time.Second)
			topic := uniqueName("kadm-time-" + codec.name)
			createTopic(t, admin, topic, 2)
			// Five records in partition 0, in one batch, timestamps one second apart; partition
			// 1 stays empty.
			producer := newClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ProducerBatchCompression(codec.codec), kgo.ProducerLinger(50*time.Millisecond))
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			if err := producer.ProduceSync(ctx, testRecords(topic, 5, base)...).FirstErr(); err != nil {
				t.Fatalf("ProduceSync: %v", err)
			}
			millis := base.UnixMilli()
			after, err := admin.ListOffsetsAfterMilli(ctx, millis+1500, topic)
			checkListedOffsets(t, "ListOffsetsAfterMilli", topic, after, err, map[int32][2]int64{0: {2, millis + 2000}})
			exact, err := admin.ListOffsetsAfterMilli(ctx, millis, topic)
			checkListedOffsets(t, "ListOffsetsAfterMilli(first)", topic, exact, err, map[int32][2]int64{0: {0, millis}})
			maxTimestamp, err := admin.ListMaxTimestampOffsets(ctx, topic)
			checkListedOffsets(t, "ListMaxTimestampOffsets", topic, maxTimestamp, err,
				map[int32][2]int64{0: {4, millis + 4000}, 1: {-1, -1}})
			// After the newest timestamp there is no offset: kadm then asks for the end offset.
			future, err := admin.ListOffsetsAfterMilli(ctx, millis+10_000, topic)
			checkListedOffsets(t, "ListOffsetsAfterMilli(future)", topic, future, err, map[int32][2]int64{0: {5, 0}, 1: {0, 0}})
		})
	}
}

// TestKadmListOffsetsWideTimestampDeltas lists offsets by timestamp in one batch whose records
// are 59 days apart: a record's timestampDelta is a varlong (Kafka's DefaultRecord), larger
// than any 32-bit varint holds (2^31 ms is 24.8 days). Kafka's default
// log.message.timestamp.before.max.ms accepts old timestamps.
func TestKadmListOffsetsWideTimestampDeltas(t *testing.T) {
	admin := newAdmin(t)
	ctx := testContext(t, 30*time.Second)
	topic := uniqueName("kadm-wide")
	createTopic(t, admin, topic, 1)
	producer := newClient(t, kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(50*time.Millisecond))
	now := time.Now().Truncate(time.Millisecond)
	stamps := []time.Time{now.Add(-60 * 24 * time.Hour), now.Add(-24 * time.Hour), now.Add(-time.Hour)}
	records := testRecords(topic, len(stamps), now)
	for i := range records {
		records[i].Timestamp = stamps[i]
	}
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync: %v", err)
	}
	for i, stamp := range stamps {
		listed, err := admin.ListOffsetsAfterMilli(ctx, stamp.UnixMilli(), topic)
		checkListedOffsets(t, fmt.Sprintf("ListOffsetsAfterMilli(record %d)", i), topic, listed, err,
			map[int32][2]int64{0: {int64(i), stamp.UnixMilli()}})
	}
	maxTimestamp, err := admin.ListMaxTimestampOffsets(ctx, topic)
	checkListedOffsets(t, "ListMaxTimestampOffsets", topic, maxTimestamp, err, map[int32][2]int64{0: {2, stamps[2].UnixMilli()}})
	consumer := newClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for i, record := range consumeN(t, consumer, len(stamps), 20*time.Second) {
		if !record.Timestamp.Equal(stamps[i]) {
			t.Errorf("record %d read back with timestamp %v, want %v", i, record.Timestamp, stamps[i])
		}
	}
}
