package clients_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchBytes counts the Fetch (key 1) requests a kgo client writes and the responses it reads,
// in bytes, through kgo's broker hooks.
type fetchBytes struct {
	mu                          sync.Mutex
	requests, responses         int
	requestBytes, responseBytes int
}

func (f *fetchBytes) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		f.mu.Lock()
		f.requests++
		f.requestBytes += n
		f.mu.Unlock()
	}
}

func (f *fetchBytes) OnBrokerRead(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		f.mu.Lock()
		f.responses++
		f.responseBytes += n
		f.mu.Unlock()
	}
}

// snapshot is (requests, request bytes, responses, response bytes) so far.
func (f *fetchBytes) snapshot() [4]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return [4]int{f.requests, f.requestBytes, f.responses, f.responseBytes}
}

// steadyFetch consumes every record of topic (one per partition) with a kgo consumer built
// with opts, lets it fetch with nothing new for a while, then produces to three partitions and
// reads those records; it returns the mean Fetch request and response bytes of the quiet
// period.
func steadyFetch(t *testing.T, producer *kgo.Client, topic string, partitions int, opts ...kgo.Opt) (float64, float64) {
	t.Helper()
	hook := &fetchBytes{}
	consumer := newClient(t, append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.WithHooks(hook),
	}, opts...)...)
	got := consumeN(t, consumer, partitions, 90*time.Second)
	seen := map[int32]bool{}
	for _, record := range got {
		seen[record.Partition] = true
	}
	if len(seen) != partitions {
		t.Fatalf("records from %d partitions, want %d", len(seen), partitions)
	}
	// Quiet: fetches that find nothing new (each waits up to FetchMaxWait).
	start := hook.snapshot()
	time.Sleep(2 * time.Second)
	end := hook.snapshot()
	requests, responses := end[0]-start[0], end[2]-start[2]
	if requests < 3 || responses < 3 {
		t.Fatalf("only %d fetch requests / %d responses in 2 s of quiet", requests, responses)
	}
	// New records on a few partitions still arrive.
	var later []*kgo.Record
	for _, p := range []int32{1, int32(partitions / 2), int32(partitions - 1)} {
		later = append(later, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("later-%d", p))})
	}
	if err := producer.ProduceSync(testContext(t, 30*time.Second), later...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync: %v", err)
	}
	for _, record := range consumeN(t, consumer, len(later), 30*time.Second) {
		if string(record.Value) != fmt.Sprintf("later-%d", record.Partition) {
			t.Fatalf("later record %q on partition %d", record.Value, record.Partition)
		}
	}
	return float64(end[1]-start[1]) / float64(requests), float64(end[3]-start[3]) / float64(responses)
}

// TestFranzFetchSessions1000Partitions: franz-go uses incremental fetch sessions (KIP-227) by
// default. A consumer of 1,000 partitions then sends fetches naming no partition and gets
// answers without partitions while nothing changes, where the same consumer with
// DisableFetchSessions lists and is answered all 1,000 every time; records still arrive.
func TestFranzFetchSessions1000Partitions(t *testing.T) {
	const partitions = 1000
	admin := newAdmin(t)
	topic := fmt.Sprintf("franz-fetch-sessions-%d", time.Now().UnixNano())
	createTopic(t, admin, topic, partitions)
	producer := newClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	records := make([]*kgo.Record, partitions)
	for i := range records {
		records[i] = &kgo.Record{Topic: topic, Partition: int32(i), Value: []byte("v")}
	}
	if err := producer.ProduceSync(testContext(t, 60*time.Second), records...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync: %v", err)
	}
	sessionRequest, sessionResponse := steadyFetch(t, producer, topic, partitions)
	fullRequest, fullResponse := steadyFetch(t, producer, topic, partitions, kgo.DisableFetchSessions())
	t.Logf("mean bytes per quiet fetch: sessions request %.0f response %.0f; sessionless request %.0f response %.0f",
		sessionRequest, sessionResponse, fullRequest, fullResponse)
	// A sessionless fetch of 1,000 partitions is ~30 kB each way; an incremental one with no
	// changes is a header. Allow for the odd full fetch in the window.
	if sessionRequest*10 > fullRequest {
		t.Errorf("session fetch requests %.0f B, not a tenth of sessionless %.0f B", sessionRequest, fullRequest)
	}
	if sessionResponse*10 > fullResponse {
		t.Errorf("session fetch responses %.0f B, not a tenth of sessionless %.0f B", sessionResponse, fullResponse)
	}
}
