//! Broker metrics: per-shard counters and histograms, and the process-wide health state.
//!
//! Each shard keeps its own [`ShardMetrics`] in a thread-local, updated with plain `Cell`s (no
//! locks, no atomics, no allocation on the request path: label sets are resolved once -- a
//! topic's counters when its partition opens, an API's histogram by its key as an array index).
//! A scrape asks every shard for a [`ShardSnapshot`] (plain data, `Send`) through the shard mesh
//! and merges them; [`encode`] renders the merged view with the `prometheus-client` crate.
//! The meanings follow Kafka's MBeans (README "Metrics" names each one).
//!
//! This module is a leaf: it uses no other module of the broker, so every module may record
//! into it.

pub mod encode;
pub mod health;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, seconds (the last bucket, +Inf, is implied).
/// From 100 µs (a produce to the page cache) to 10 s (a long-polling fetch or a join).
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets per histogram: the bounds above and +Inf.
pub const BUCKETS: usize = LATENCY_BUCKETS_SECONDS.len() + 1;
/// API keys with a latency histogram: `0..API_KEYS` (Kafka's keys are below 100).
pub const API_KEYS: usize = 128;
/// Record batch codecs by attribute id (none, gzip, snappy, lz4, zstd), Kafka's names.
pub const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// A fixed-bucket latency histogram on one shard. Not thread-safe by design (`Cell`s).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); index i counts values <= bound i and above
    /// bound i-1; the last counts the rest.
    buckets: [Cell<u64>; BUCKETS],
    sum_seconds: Cell<f64>,
    count: Cell<u64>,
}

impl Histogram {
    /// Counts one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS_SECONDS.partition_point(|bound| *bound < seconds);
        let cell = &self.buckets[bucket];
        cell.set(cell.get() + 1);
        self.sum_seconds.set(self.sum_seconds.get() + seconds);
        self.count.set(self.count.get() + 1);
    }

    /// The histogram's values now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].get()),
            sum_seconds: self.sum_seconds.get(),
            count: self.count.get(),
        }
    }
}

/// A histogram's values, sendable between shards and mergeable.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative), bounds [`LATENCY_BUCKETS_SECONDS`] then +Inf.
    pub buckets: [u64; BUCKETS],
    /// Sum of the observed values, seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
}

impl HistogramSnapshot {
    /// Adds `other`'s observations to these.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_seconds += other.sum_seconds;
        self.count += other.count;
    }
}

/// Per-topic counters on one shard (Kafka's `BrokerTopicMetrics` with `topic=`): resolved once
/// per partition ([`topic_counters`]) and kept by it.
#[derive(Debug, Default)]
pub struct TopicCounters {
    /// Bytes of record batches appended by producers (BytesInPerSec).
    pub bytes_in: Cell<u64>,
    /// Bytes of record batches returned to fetches (BytesOutPerSec).
    pub bytes_out: Cell<u64>,
    /// Records appended by producers (MessagesInPerSec).
    pub messages_in: Cell<u64>,
}

impl TopicCounters {
    /// Counts a produce of `bytes` bytes holding `records` records.
    pub fn record_in(&self, bytes: usize, records: u64) {
        self.bytes_in.set(self.bytes_in.get() + bytes as u64);
        self.messages_in.set(self.messages_in.get() + records);
    }

    /// Counts `bytes` bytes returned to a fetch.
    pub fn record_out(&self, bytes: usize) {
        self.bytes_out.set(self.bytes_out.get() + bytes as u64);
    }
}

/// One shard's fetch-session cache figures (Kafka's `FetchSessionCache` MBeans), as the
/// fetch path last left them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchSessionStats {
    /// Open incremental fetch sessions (NumIncrementalFetchSessions).
    pub sessions: usize,
    /// Partitions cached over all sessions (NumIncrementalFetchPartitionsCached).
    pub partitions: usize,
    /// Sessions evicted for new ones since start-up (IncrementalFetchSessionEvictionsPerSec,
    /// as a counter).
    pub evictions: u64,
}

/// Why a Kafka connection was closed (`ringtail_connections_closed_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it between requests.
    ClientClosed = 0,
    /// A frame with an invalid or too large size, or cut off by the client.
    InvalidFrame = 1,
    /// A request that could not be decoded or is not served (Kafka closes those too).
    InvalidRequest = 2,
    /// Reading from or writing to the socket failed.
    SocketError = 3,
    /// No read or write for `connections.max.idle.ms` (issue 14).
    Idle = 4,
    /// Over `max.connections.per.ip`: closed right after accept (issue 14).
    ConnectionLimit = 5,
}

impl CloseReason {
    /// Every reason, in index order.
    pub const ALL: [CloseReason; 6] = [
        CloseReason::ClientClosed,
        CloseReason::InvalidFrame,
        CloseReason::InvalidRequest,
        CloseReason::SocketError,
        CloseReason::Idle,
        CloseReason::ConnectionLimit,
    ];

    /// The `reason` label value.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client_closed",
            CloseReason::InvalidFrame => "invalid_frame",
            CloseReason::InvalidRequest => "invalid_request",
            CloseReason::SocketError => "socket_error",
            CloseReason::Idle => "idle",
            CloseReason::ConnectionLimit => "connection_limit",
        }
    }
}

/// Counters from glommio's executor and reactor, accumulated (glommio's getters reset them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExecutorSnapshot {
    /// Time the executor spent running tasks, seconds.
    pub busy_seconds: f64,
    /// Tasks run.
    pub tasks_executed: u64,
    /// Times the scheduler picked a task queue.
    pub scheduler_runs: u64,
    /// File reads and bytes read through io_uring (all rings).
    pub file_reads: u64,
    /// Bytes of those reads.
    pub file_read_bytes: u64,
    /// File writes through io_uring (all rings).
    pub file_writes: u64,
    /// Bytes of those writes.
    pub file_write_bytes: u64,
}

/// One shard's metrics. Reached with [`with`].
#[derive(Debug)]
pub struct ShardMetrics {
    topics: RefCell<HashMap<String, Rc<TopicCounters>>>,
    /// `ringtail_request_latency_seconds{api}` by API key.
    requests: Box<[Histogram]>,
    /// `ringtail_request_errors_total{api,error}` by (API key, error code); NONE included, as in
    /// Kafka's `ErrorsPerSec`.
    errors: RefCell<HashMap<(i16, i16), u64>>,
    connections: Cell<i64>,
    connections_closed: [Cell<u64>; CloseReason::ALL.len()],
    log_flush: Histogram,
    produce_batches: [Cell<u64>; CODECS.len()],
    cross_shard_sent: Cell<u64>,
    cross_shard_tasks_queued: Cell<i64>,
    tail_cache_hits: Cell<u64>,
    tail_cache_misses: Cell<u64>,
    fetch_sessions: Cell<FetchSessionStats>,
    executor: Cell<ExecutorSnapshot>,
}

thread_local! {
    static SHARD: ShardMetrics = ShardMetrics::new();
}

/// Runs `f` with this thread's (shard's) metrics.
pub fn with<R>(f: impl FnOnce(&ShardMetrics) -> R) -> R {
    SHARD.with(f)
}

/// The counters of `topic` on this shard, created on first use. Partitions call this once when
/// they open, so the request path never looks a topic up.
pub fn topic_counters(topic: &str) -> Rc<TopicCounters> {
    with(|m| {
        if let Some(counters) = m.topics.borrow().get(topic) {
            return counters.clone();
        }
        let counters = Rc::new(TopicCounters::default());
        m.topics
            .borrow_mut()
            .insert(topic.to_string(), counters.clone());
        counters
    })
}

impl ShardMetrics {
    fn new() -> ShardMetrics {
        ShardMetrics {
            topics: RefCell::new(HashMap::new()),
            requests: (0..API_KEYS).map(|_| Histogram::default()).collect(),
            errors: RefCell::new(HashMap::new()),
            connections: Cell::new(0),
            connections_closed: Default::default(),
            log_flush: Histogram::default(),
            produce_batches: Default::default(),
            cross_shard_sent: Cell::new(0),
            cross_shard_tasks_queued: Cell::new(0),
            tail_cache_hits: Cell::new(0),
            tail_cache_misses: Cell::new(0),
            fetch_sessions: Cell::new(FetchSessionStats::default()),
            executor: Cell::new(ExecutorSnapshot::default()),
        }
    }

    /// Counts one answered request of `api_key` that took `elapsed` (RequestMetrics
    /// TotalTimeMs, without the time to write the response).
    pub fn request_done(&self, api_key: i16, elapsed: Duration) {
        if let Some(histogram) = usize::try_from(api_key)
            .ok()
            .and_then(|k| self.requests.get(k))
        {
            histogram.observe(elapsed);
        }
    }

    /// Counts `count` occurrences of `error_code` in a response of `api_key` (Kafka's
    /// `ErrorsPerSec`, fed by `AbstractResponse.errorCounts`). Allocates only for a pair not
    /// seen before on this shard.
    pub fn request_errors(&self, api_key: i16, error_code: i16, count: u64) {
        *self
            .errors
            .borrow_mut()
            .entry((api_key, error_code))
            .or_insert(0) += count;
    }

    /// A Kafka connection was accepted.
    pub fn connection_opened(&self) {
        self.connections.set(self.connections.get() + 1);
    }

    /// A Kafka connection was closed for `reason`.
    pub fn connection_closed(&self, reason: CloseReason) {
        self.connections.set(self.connections.get() - 1);
        let cell = &self.connections_closed[reason as usize];
        cell.set(cell.get() + 1);
    }

    /// One fdatasync of a partition log took `elapsed` (LogFlushStats LogFlushRateAndTimeMs).
    pub fn log_flushed(&self, elapsed: Duration) {
        self.log_flush.observe(elapsed);
    }

    /// A produced batch with compression codec `codec_id` (0-4) was appended.
    pub fn produce_batch(&self, codec_id: usize) {
        if let Some(cell) = self.produce_batches.get(codec_id) {
            cell.set(cell.get() + 1);
        }
    }

    /// A closure was sent to another shard over the mesh.
    pub fn cross_shard_sent(&self) {
        self.cross_shard_sent.set(self.cross_shard_sent.get() + 1);
    }

    /// A closure from another shard starts (`+1`) or finished (`-1`) on this shard.
    pub fn cross_shard_task(&self, delta: i64) {
        self.cross_shard_tasks_queued
            .set(self.cross_shard_tasks_queued.get() + delta);
    }

    /// A fetch read was served by the tail cache (`hit`) or by the log.
    pub fn tail_cache(&self, hit: bool) {
        let cell = if hit {
            &self.tail_cache_hits
        } else {
            &self.tail_cache_misses
        };
        cell.set(cell.get() + 1);
    }

    /// The shard's fetch-session cache now holds `stats`.
    pub fn fetch_sessions(&self, stats: FetchSessionStats) {
        self.fetch_sessions.set(stats);
    }

    /// Adds what glommio counted since the last call (its getters reset) and returns the
    /// totals. Must run on a glommio executor thread.
    pub fn poll_executor(&self) -> ExecutorSnapshot {
        let executor = glommio::executor();
        let stats = executor.executor_stats();
        let io = executor.io_stats().all_rings();
        let mut total = self.executor.get();
        total.busy_seconds += stats.executor_runtime().as_secs_f64();
        total.tasks_executed += stats.tasks_executed();
        total.scheduler_runs += stats.scheduler_runs();
        let (reads, read_bytes) = io.file_reads();
        let (buffered_reads, buffered_read_bytes) = io.file_buffered_reads();
        let (writes, write_bytes) = io.file_writes();
        let (buffered_writes, buffered_write_bytes) = io.file_buffered_writes();
        total.file_reads += reads + buffered_reads;
        total.file_read_bytes += read_bytes + buffered_read_bytes;
        total.file_writes += writes + buffered_writes;
        total.file_write_bytes += write_bytes + buffered_write_bytes;
        self.executor.set(total);
        total
    }

    /// Every topic's counters on this shard now.
    pub fn topic_snapshots(&self) -> Vec<TopicSnapshot> {
        self.topics
            .borrow()
            .iter()
            .map(|(name, c)| TopicSnapshot {
                topic: name.clone(),
                bytes_in: c.bytes_in.get(),
                bytes_out: c.bytes_out.get(),
                messages_in: c.messages_in.get(),
            })
            .collect()
    }

    /// This shard's counters now, without partitions, groups and read-ahead figures (the
    /// caller adds those).
    pub fn snapshot(&self, shard_id: usize) -> ShardSnapshot {
        let topics = self.topic_snapshots();
        let requests = self
            .requests
            .iter()
            .enumerate()
            .filter(|(_, h)| h.count.get() > 0)
            .map(|(key, h)| (key as i16, h.snapshot()))
            .collect();
        ShardSnapshot {
            shard_id,
            topics,
            requests,
            errors: self.errors.borrow().iter().map(|(k, v)| (*k, *v)).collect(),
            connections: self.connections.get(),
            connections_closed: std::array::from_fn(|i| self.connections_closed[i].get()),
            log_flush: self.log_flush.snapshot(),
            produce_batches: std::array::from_fn(|i| self.produce_batches[i].get()),
            cross_shard_sent: self.cross_shard_sent.get(),
            cross_shard_tasks_queued: self.cross_shard_tasks_queued.get(),
            tail_cache_hits: self.tail_cache_hits.get(),
            tail_cache_misses: self.tail_cache_misses.get(),
            read_ahead_hits: 0,
            read_ahead_bytes: 0,
            fetch_sessions: self.fetch_sessions.get(),
            executor: self.poll_executor(),
            partitions: Vec::new(),
            groups: Vec::new(),
        }
    }
}

/// One topic's counters on one shard.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSnapshot {
    pub topic: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
}

impl TopicSnapshot {
    /// Zero counters for `topic`.
    pub fn empty(topic: String) -> TopicSnapshot {
        TopicSnapshot {
            topic,
            bytes_in: 0,
            bytes_out: 0,
            messages_in: 0,
        }
    }
}

/// One partition's offsets and size (Kafka's `Log` MBeans), from its owning shard.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: usize,
    /// The partition is offline after a write or fdatasync failure.
    pub offline: bool,
}

/// One consumer group on its coordinating shard.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    pub group_id: String,
    /// Kafka's state name (Stable, Empty, ...).
    pub state: &'static str,
    pub members: usize,
    /// Committed offsets: (topic, partition, offset).
    pub offsets: Vec<(String, i32, i64)>,
}

/// Everything one shard reports to a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardSnapshot {
    pub shard_id: usize,
    pub topics: Vec<TopicSnapshot>,
    /// (API key, latency) for the APIs this shard answered.
    pub requests: Vec<(i16, HistogramSnapshot)>,
    /// ((API key, error code), count).
    pub errors: Vec<((i16, i16), u64)>,
    /// Open Kafka connections.
    pub connections: i64,
    /// Closed Kafka connections by [`CloseReason`] index.
    pub connections_closed: [u64; CloseReason::ALL.len()],
    pub log_flush: HistogramSnapshot,
    /// Produced batches by codec id ([`CODECS`]).
    pub produce_batches: [u64; CODECS.len()],
    pub cross_shard_sent: u64,
    pub cross_shard_tasks_queued: i64,
    pub tail_cache_hits: u64,
    pub tail_cache_misses: u64,
    /// Log reads answered by a read-ahead (`log::read_ahead`; filled by the caller, as
    /// partitions are: metrics does not depend on the log).
    pub read_ahead_hits: u64,
    /// Bytes the shard's read-aheads hold or are reading (filled by the caller).
    pub read_ahead_bytes: u64,
    pub fetch_sessions: FetchSessionStats,
    pub executor: ExecutorSnapshot,
    pub partitions: Vec<PartitionSnapshot>,
    pub groups: Vec<GroupSnapshot>,
}

/// Kafka's error name (`Errors` enum constant, e.g. `UNKNOWN_TOPIC_OR_PARTITION`) for a code,
/// `NONE` for 0, the number for a code kafka-protocol does not know.
pub fn error_name(code: i16) -> String {
    if code == 0 {
        return "NONE".to_string();
    }
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        Some(error) => screaming_snake(&format!("{error:?}")),
        None => format!("ERROR_{code}"),
    }
}

/// Kafka's request name for an API key (`Produce`, `Fetch`, ... as `RequestMetrics` labels
/// them).
pub fn api_name(api_key: i16) -> String {
    match kafka_protocol::messages::ApiKey::try_from(api_key) {
        Ok(key) => format!("{key:?}"),
        Err(_) => format!("api_{api_key}"),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_bucket(seconds: f64, bucket: usize) {
        let h = Histogram::default();
        h.observe(Duration::from_secs_f64(seconds));
        let s = h.snapshot();
        assert_eq!(s.buckets[bucket], 1, "{seconds} s");
        assert_eq!(s.count, 1);
    }

    #[test]
    fn observations_land_in_their_bucket() {
        check_bucket(0.0, 0);
        check_bucket(0.0001, 0);
        check_bucket(0.0002, 1);
        check_bucket(0.003, 5);
        check_bucket(10.0, 15);
        check_bucket(11.0, 16);
    }

    #[test]
    fn names_are_kafkas() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(1), "OFFSET_OUT_OF_RANGE");
        assert_eq!(api_name(0), "Produce");
        assert_eq!(api_name(1), "Fetch");
    }
}
