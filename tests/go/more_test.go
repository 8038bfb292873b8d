package clients_test

// More franz-go and sarama calls checked against Kafka's behaviour: a fetch from the middle of
// a batch, topic configs, the group admin calls, auto-created topics and transactions.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFranzConsumeFromMidBatch starts a consumer at an offset inside a stored batch: the
// broker returns the whole batch (Kafka never splits one) and the client skips the records
// before the offset.
func TestFranzConsumeFromMidBatch(t *testing.T) {
	admin := newAdmin(t)
	topic := uniqueName("franz-mid")
	createTopic(t, admin, topic, 1)
	producer := newClient(t, kgo.ProducerLinger(50*time.Millisecond))
	ctx := testContext(t, 30*time.Second)
	if err := producer.ProduceSync(ctx, testRecords(topic, 10, time.Now())...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync: %v", err)
	}
	consumer := newClient(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {0: kgo.NewOffset().At(4)},
	}))
	got := consumeN(t, consumer, 6, 20*time.Second)
	for i, record := range got {
		if want := int64(4 + i); record.Offset != want || string(record.Key) != fmt.Sprintf("key-%04d", want) {
			t.Errorf("record %d: offset %d key %s, want offset %d", i, record.Offset, record.Key, want)
		}
	}
}

// TestKadmDescribeTopicConfigs checks the topic configs a new topic is described with:
// Kafka's defaults (and a value set at creation, source DYNAMIC_TOPIC_CONFIG).
func TestKadmDescribeTopicConfigs(t *testing.T) {
	admin := newAdmin(t)
	ctx := testContext(t, 30*time.Second)
	topic := uniqueName("kadm-configs")
	retention := "3600000"
	created, err := admin.CreateTopics(ctx, 1, 1, map[string]*string{"retention.ms": &retention}, topic)
	if err != nil || created.Error() != nil {
		t.Fatalf("CreateTopics: %v %v", err, created.Error())
	}
	described, err := admin.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs: %v", err)
	}
	resource, err := described.On(topic, nil)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs(%s): %v", topic, err)
	}
	values := map[string]kadm.Config{}
	for _, config := range resource.Configs {
		values[config.Key] = config
	}
	for key, want := range map[string]string{
		"retention.ms":           "3600000",
		"cleanup.policy":         "delete",
		"compression.type":       "producer",
		"segment.bytes":          "1073741824",
		"max.message.bytes":      "1048588",
		"message.timestamp.type": "CreateTime",
		"min.insync.replicas":    "1",
		"retention.bytes":        "-1",
	} {
		config, ok := values[key]
		if !ok {
			t.Errorf("%s: not described", key)
			continue
		}
		if config.MaybeValue() != want {
			t.Errorf("%s = %q, want %q", key, config.MaybeValue(), want)
		}
	}
	if source := values["retention.ms"].Source.String(); source != "DYNAMIC_TOPIC_CONFIG" {
		t.Errorf("retention.ms source %s, want DYNAMIC_TOPIC_CONFIG", source)
	}
	missingTopic := uniqueName("kadm-no-such-topic")
	missing, err := admin.DescribeTopicConfigs(ctx, missingTopic)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs(missing): %v", err)
	}
	resource, err = missing.On(missingTopic, nil)
	if err != nil || !errors.Is(resource.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("DescribeTopicConfigs of a missing topic: %v, %+v; want UNKNOWN_TOPIC_OR_PARTITION", err, resource)
	}
}

// TestKadmGroupOffsets drives a group with no members through kadm: offsets committed by an
// admin (generation -1, as Kafka's tools do), fetched, listed, described, its lag, one offset
// deleted (OffsetDelete), then the group deleted.
func TestKadmGroupOffsets(t *testing.T) {
	admin := newAdmin(t)
	ctx := testContext(t, 30*time.Second)
	topic, group := uniqueName("kadm-offsets"), uniqueName("kadm-offsets")
	createTopic(t, admin, topic, 2)
	producer := newClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	records := testRecords(topic, 10, time.Now())
	for i, record := range records {
		record.Partition = int32(i % 2)
	}
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync: %v", err)
	}

	var offsets kadm.Offsets
	offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: 3, LeaderEpoch: -1, Metadata: "admin"})
	offsets.Add(kadm.Offset{Topic: topic, Partition: 1, At: 5, LeaderEpoch: -1})
	if err := admin.CommitAllOffsets(ctx, group, offsets); err != nil {
		t.Fatalf("CommitAllOffsets: %v", err)
	}
	fetched, err := admin.FetchOffsets(ctx, group)
	if err != nil || fetched.Error() != nil {
		t.Fatalf("FetchOffsets: %v %v", err, fetched.Error())
	}
	for partition, want := range map[int32]int64{0: 3, 1: 5} {
		got, ok := fetched.Lookup(topic, partition)
		if !ok || got.At != want {
			t.Errorf("committed %s[%d] = %+v, want %d", topic, partition, got, want)
		}
	}
	if got, _ := fetched.Lookup(topic, 0); got.Metadata != "admin" {
		t.Errorf("committed metadata %q, want %q", got.Metadata, "admin")
	}

	listed, err := admin.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if listedGroup, ok := listed[group]; !ok || listedGroup.State != "Empty" {
		t.Errorf("ListGroups: %s = %+v (listed %v), want state Empty", group, listedGroup, ok)
	}
	described, err := admin.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	if description := described[group]; description.Err != nil || description.State != "Empty" || len(description.Members) != 0 {
		t.Errorf("DescribeGroups: state %q, %d members, err %v; want Empty, 0", description.State,
			len(description.Members), description.Err)
	}
	lags, err := admin.Lag(ctx, group)
	if err != nil {
		t.Fatalf("Lag: %v", err)
	}
	for partition, want := range map[int32]int64{0: 2, 1: 0} {
		lag, ok := lags[group].Lag.Lookup(topic, partition)
		if !ok || lag.Err != nil || lag.Lag != want {
			t.Errorf("lag of %s[%d] = %+v, want %d", topic, partition, lag, want)
		}
	}

	deletedOffsets, err := admin.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || deletedOffsets.Error() != nil {
		t.Fatalf("DeleteOffsets: %v %v", err, deletedOffsets.Error())
	}
	fetched, err = admin.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets after DeleteOffsets: %v", err)
	}
	if got, ok := fetched.Lookup(topic, 0); ok && got.At != -1 {
		t.Errorf("after OffsetDelete %s[0] is still committed at %d", topic, got.At)
	}
	if got, ok := fetched.Lookup(topic, 1); !ok || got.At != 5 {
		t.Errorf("after deleting partition 0's offset, partition 1 = %+v, want 5", got)
	}

	deleted, err := admin.DeleteGroups(ctx, group)
	if err != nil || deleted.Error() != nil {
		t.Fatalf("DeleteGroups: %v %v", err, deleted.Error())
	}
	listed, err = admin.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups after DeleteGroups: %v", err)
	}
	if _, ok := listed[group]; ok {
		t.Errorf("deleted group %s still listed", group)
	}
	again, err := admin.DeleteGroups(ctx, group)
	if err != nil {
		t.Fatalf("DeleteGroups again: %v", err)
	}
	if !errors.Is(again.Error(), kerr.GroupIDNotFound) {
		t.Errorf("deleting %s twice: %v, want GROUP_ID_NOT_FOUND", group, again.Error())
	}
}

// TestSaramaAutoCreateTopic produces to a topic nobody created: sarama's metadata request
// allows auto-creation (its default) and the broker creates the topic with num.partitions (1).
func TestSaramaAutoCreateTopic(t *testing.T) {
	topic := uniqueName("sarama-auto")
	config := saramaConfig(t)
	config.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer([]string{brokerAddr(t)}, config)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer producer.Close()
	partition, offset, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("first")})
	if err != nil {
		t.Fatalf("SendMessage to a new topic: %v", err)
	}
	if partition != 0 || offset != 0 {
		t.Errorf("first message at %d@%d, want 0@0", partition, offset)
	}
	client, err := sarama.NewClient([]string{brokerAddr(t)}, saramaConfig(t))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer client.Close()
	partitions, err := client.Partitions(topic)
	if err != nil || len(partitions) != 1 {
		t.Errorf("partitions of the auto-created topic: %v, %v; want [0]", partitions, err)
	}
}

// TestFranzTransactions commits one transaction and aborts another through kgo's
// transactional producer; a read_committed consumer sees only the committed records.
// It runs on Ringtail and on Apache Kafka alike.
func TestFranzTransactions(t *testing.T) {
	admin := newAdmin(t)
	topic := uniqueName("franz-txn")
	createTopic(t, admin, topic, 1)
	producer := newClient(t, kgo.TransactionalID(uniqueName("franz-txn")), kgo.DefaultProduceTopic(topic))
	for _, commit := range []bool{true, false, true} {
		ctx := testContext(t, 30*time.Second)
		if err := producer.BeginTransaction(); err != nil {
			t.Fatalf("BeginTransaction: %v", err)
		}
		value := fmt.Sprintf("committed=%v", commit)
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}, &kgo.Record{Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatalf("ProduceSync: %v", err)
		}
		if err := producer.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("EndTransaction(%v): %v", commit, err)
		}
	}
	consumer := newClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := consumeN(t, consumer, 4, 20*time.Second)
	for _, record := range got {
		if string(record.Value) != "committed=true" {
			t.Errorf("read_committed consumer read %q at offset %d", record.Value, record.Offset)
		}
	}
	// Offsets: 2 committed records + marker, 2 aborted + marker, 2 committed + marker.
	if got[2].Offset != 6 {
		t.Errorf("first record of the last transaction at offset %d, want 6", got[2].Offset)
	}
}
