package clients_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchBytes counts the Fetch (key 1) requests a kgo client writes and the responses it reads,
// in bytes, through kgo's broker hooks.
type fetchBytes struct {
	mu                          sync.Mutex
	requestSizes, responseSizes []int
}

func (f *fetchBytes) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		f.mu.Lock()
		f.requestSizes = append(f.requestSizes, n)
		f.mu.Unlock()
	}
}

func (f *fetchBytes) OnBrokerRead(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		f.mu.Lock()
		f.responseSizes = append(f.responseSizes, n)
		f.mu.Unlock()
	}
}

// counts is (requests, responses) so far.
func (f *fetchBytes) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requestSizes), len(f.responseSizes)
}

// medians is the median size of the requests and responses after the first from[0] / from[1].
func (f *fetchBytes) medians(from [2]int) (float64, float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return median(f.requestSizes[from[0]:]), median(f.responseSizes[from[1]:])
}

func median(sizes []int) float64 {
	sorted := append([]int(nil), sizes...)
	sort.Ints(sorted)
	return float64(sorted[len(sorted)/2])
}

// steadyFetch consumes every record of topic (one per partition) with a kgo consumer built
// with opts, lets it fetch with nothing new for a while, then produces to three partitions and
// reads those records; it returns the median Fetch request and response bytes of the quiet
// period (the median: a client may open a new session, one full fetch, in the window).
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
	startRequests, startResponses := hook.counts()
	time.Sleep(2 * time.Second)
	endRequests, endResponses := hook.counts()
	requests, responses := endRequests-startRequests, endResponses-startResponses
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
	requestMedian, responseMedian := hook.medians([2]int{startRequests, startResponses})
	return requestMedian, responseMedian
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
	t.Logf("median bytes per quiet fetch: sessions request %.0f response %.0f; sessionless request %.0f response %.0f",
		sessionRequest, sessionResponse, fullRequest, fullResponse)
	// A sessionless fetch of 1,000 partitions is ~30 kB each way; an incremental one with no
	// changes is a header.
	if sessionRequest*10 > fullRequest {
		t.Errorf("session fetch requests %.0f B, not a tenth of sessionless %.0f B", sessionRequest, fullRequest)
	}
	if sessionResponse*10 > fullResponse {
		t.Errorf("session fetch responses %.0f B, not a tenth of sessionless %.0f B", sessionResponse, fullResponse)
	}
}
