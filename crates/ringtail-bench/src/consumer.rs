//! The consumer load generator: ListOffsets for the start (and end) offsets, then one Fetch loop
//! per leader on each executor, without a consumer group (partitions are assigned directly, so
//! `rebalance.time.ms` is 0). Fetch settings follow Kafka's ConsumerConfig: `fetch.max.bytes`
//! 52428800, `max.partition.fetch.bytes` 1048576, `fetch.max.wait.ms` 500, `fetch.min.bytes` 1.
//!
//! Every batch is decompressed and walked, as a real consumer does; MB counts key and value bytes
//! as kafka-consumer-perf-test does. With `e2e`, the first 8 bytes of each value hold the send
//! time in nanoseconds since the shared epoch, and the difference to now is recorded.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, ListOffsetsRequest, TopicName};

use super::batch::walk_records;
use super::client::{topic_name, ClientError, Connection};
use super::cluster::TopicLayout;
use super::stats::{latency_histogram, SharedStats, LATENCY_MAX_US};
use super::BenchError;
use crate::protocol::record_batch::RecordBatchHeader;

/// Where consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The log start offset (`auto.offset.reset=earliest`).
    Earliest,
    /// The log end offset at start (`auto.offset.reset=latest`).
    Latest,
}

/// Everything one consume run needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsumeSpec {
    /// Topic to read.
    pub topic: String,
    /// Stop after this many records over all workers; `None` stops at the end offsets seen at
    /// start.
    pub num_records: Option<u64>,
    /// Executors (threads); partition `p` goes to worker `p % threads`.
    pub threads: usize,
    /// Where to start.
    pub start_from: StartFrom,
    /// `fetch.max.bytes`, bytes per Fetch response.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`, bytes per partition per Fetch response.
    pub max_partition_fetch_bytes: i32,
    /// `fetch.max.wait.ms`, how long the broker may hold a Fetch, milliseconds.
    pub fetch_max_wait_ms: i32,
    /// `request.timeout.ms`, milliseconds.
    pub request_timeout_ms: u64,
    /// Give up after this long without a record, milliseconds (kafka-consumer-perf-test
    /// `--timeout`, default 10000).
    pub timeout_ms: u64,
    /// `client.id`.
    pub client_id: String,
    /// Measure end-to-end latency from the stamp in each value.
    #[serde(skip)]
    pub e2e_epoch: Option<Instant>,
}

/// What one worker consumed.
#[derive(Debug)]
pub struct ConsumeWorkerResult {
    /// Records consumed.
    pub records: u64,
    /// Key and value bytes consumed.
    pub bytes: u64,
    /// End-to-end latency in microseconds (empty without e2e).
    pub histogram: Histogram<u64>,
}

/// Runs one consumer worker on the current executor.
pub async fn consume_worker(
    spec: Arc<ConsumeSpec>,
    layout: TopicLayout,
    worker: usize,
    stats: Arc<SharedStats>,
) -> Result<ConsumeWorkerResult, BenchError> {
    let result = consume_worker_inner(spec, layout, worker, stats.clone()).await;
    if let Err(e) = &result {
        stats.fail(e.to_string());
    }
    result
}

async fn consume_worker_inner(
    spec: Arc<ConsumeSpec>,
    layout: TopicLayout,
    worker: usize,
    stats: Arc<SharedStats>,
) -> Result<ConsumeWorkerResult, BenchError> {
    let assigned: Vec<usize> = (0..layout.partitions())
        .filter(|p| p % spec.threads == worker)
        .collect();
    let mut loops = Vec::new();
    for (broker, partitions) in layout.by_leader(&assigned) {
        let timeout = Duration::from_millis(spec.request_timeout_ms);
        let connection =
            Rc::new(Connection::connect(&layout.brokers[&broker], &spec.client_id, timeout).await?);
        let start = list_offsets(&connection, &spec.topic, &partitions, spec.start_from).await?;
        let end = match spec.num_records {
            Some(_) => None,
            None => {
                Some(list_offsets(&connection, &spec.topic, &partitions, StartFrom::Latest).await?)
            }
        };
        loops.push(glommio::spawn_local(fetch_loop(
            spec.clone(),
            connection,
            partitions,
            start,
            end,
            stats.clone(),
        )));
    }
    let mut result = ConsumeWorkerResult {
        records: 0,
        bytes: 0,
        histogram: latency_histogram(),
    };
    let mut first_error = None;
    for task in loops {
        match task.await {
            Ok(part) => {
                result.records += part.records;
                result.bytes += part.bytes;
                result
                    .histogram
                    .add(&part.histogram)
                    .expect("same histogram bounds");
            }
            Err(e) => {
                stats.fail(e.to_string());
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(result),
    }
}

/// Offsets of `partitions` at the log start (`Earliest`, timestamp -2) or end (`Latest`, -1).
pub async fn list_offsets(
    connection: &Connection,
    topic: &str,
    partitions: &[usize],
    which: StartFrom,
) -> Result<Vec<i64>, BenchError> {
    let version = connection.version::<ListOffsetsRequest>(8)?;
    let timestamp = match which {
        StartFrom::Earliest => -2,
        StartFrom::Latest => -1,
    };
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p as i32)
                            .with_timestamp(timestamp)
                            .with_current_leader_epoch(-1)
                    })
                    .collect(),
            )]);
    let response = connection.call(&request, version).await?;
    let mut offsets = vec![-1; partitions.len()];
    for t in &response.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(ClientError::broker(
                    ApiKey::ListOffsets,
                    format!(" for {topic}-{}", p.partition_index),
                    p.error_code,
                )
                .into());
            }
            if let Some(i) = partitions
                .iter()
                .position(|&q| q as i32 == p.partition_index)
            {
                offsets[i] = p.offset;
            }
        }
    }
    if let Some(i) = offsets.iter().position(|&o| o < 0) {
        return Err(BenchError::Protocol(format!(
            "ListOffsets gave no offset for {topic}-{}",
            partitions[i]
        )));
    }
    Ok(offsets)
}

async fn fetch_loop(
    spec: Arc<ConsumeSpec>,
    connection: Rc<Connection>,
    partitions: Vec<usize>,
    mut offsets: Vec<i64>,
    mut end: Option<Vec<i64>>,
    stats: Arc<SharedStats>,
) -> Result<ConsumeWorkerResult, BenchError> {
    let version = connection.version::<FetchRequest>(12)?;
    let topic: TopicName = topic_name(&spec.topic);
    let mut result = ConsumeWorkerResult {
        records: 0,
        bytes: 0,
        histogram: latency_histogram(),
    };
    let mut scratch = Vec::new();
    let mut last_progress = Instant::now();
    let mut end_checked = vec![false; partitions.len()];
    loop {
        if stats.stopping() {
            return Ok(result);
        }
        if spec
            .num_records
            .is_some_and(|n| stats.records.load(Ordering::Relaxed) >= n)
        {
            return Ok(result);
        }
        let wanted: Vec<usize> = (0..partitions.len())
            .filter(|&i| end.as_ref().is_none_or(|e| offsets[i] < e[i]))
            .collect();
        if wanted.is_empty() {
            return Ok(result);
        }
        let request = fetch_request(&spec, &topic, &partitions, &offsets, &wanted);
        let response = connection.call(&request, version).await?;
        if response.error_code != 0 {
            return Err(ClientError::broker(ApiKey::Fetch, "", response.error_code).into());
        }
        let mut tally = Tally {
            now_ns: spec.e2e_epoch.map(|e| e.elapsed().as_nanos() as u64),
            ..Tally::default()
        };
        for t in &response.responses {
            for p in &t.partitions {
                let Some(i) = partitions
                    .iter()
                    .position(|&q| q as i32 == p.partition_index)
                else {
                    continue;
                };
                if p.error_code != 0 {
                    return Err(ClientError::broker(
                        ApiKey::Fetch,
                        format!(" for {}-{}", spec.topic, p.partition_index),
                        p.error_code,
                    )
                    .into());
                }
                if let Some(end) = end.as_mut().filter(|_| !end_checked[i]) {
                    // Some brokers answer ListOffsets(latest) below the log end offset (tansu 0.6
                    // did); the first Fetch's high watermark is the end as of the start, too.
                    end_checked[i] = true;
                    end[i] = end[i].max(p.high_watermark);
                }
                let Some(data) = &p.records else { continue };
                let limit = end.as_ref().map_or(i64::MAX, |e| e[i]);
                tally.batches(
                    data,
                    &mut offsets[i],
                    limit,
                    &mut scratch,
                    &mut result.histogram,
                )?;
            }
        }
        let Tally {
            records,
            bytes,
            sum_us,
            max_us,
            ..
        } = tally;
        result.records += records;
        result.bytes += bytes;
        stats.complete(records, bytes, sum_us, max_us);
        if records > 0 {
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= Duration::from_millis(spec.timeout_ms) {
            let consumed = stats.records.load(Ordering::Relaxed);
            return Err(BenchError::NoProgress {
                consumed,
                timeout_ms: spec.timeout_ms,
                broker: connection.addr.clone(),
            });
        }
    }
}

/// One Fetch for the `wanted` indexes of `partitions`, each from its offset in `offsets`.
fn fetch_request(
    spec: &ConsumeSpec,
    topic: &TopicName,
    partitions: &[usize],
    offsets: &[i64],
    wanted: &[usize],
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(spec.fetch_max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(spec.fetch_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic.clone())
            .with_partitions(
                wanted
                    .iter()
                    .map(|&i| {
                        FetchPartition::default()
                            .with_partition(partitions[i] as i32)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(offsets[i])
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(spec.max_partition_fetch_bytes)
                    })
                    .collect(),
            )])
}

/// What one Fetch response delivered.
#[derive(Default)]
struct Tally {
    /// Nanoseconds since the e2e epoch at receipt; `None` unless the run is e2e.
    now_ns: Option<u64>,
    records: u64,
    /// Key and value bytes.
    bytes: u64,
    /// Sum and maximum of the e2e latencies recorded, in microseconds.
    sum_us: u64,
    max_us: u64,
}

impl Tally {
    /// Counts the records of one partition's record set from `*offset` up to `limit`
    /// (exclusive) and moves `*offset` past each whole batch. A partial batch at the end of
    /// the set is left for the next Fetch; control batches are skipped.
    fn batches(
        &mut self,
        data: &[u8],
        offset: &mut i64,
        limit: i64,
        scratch: &mut Vec<u8>,
        histogram: &mut Histogram<u64>,
    ) -> Result<(), BenchError> {
        let mut rest: &[u8] = data;
        while let Ok(header) = RecordBatchHeader::parse(rest) {
            let size = header.size_bytes();
            if size > rest.len() || size == 0 {
                break; // a partial batch at the end of the response
            }
            let batch = &rest[..size];
            rest = &rest[size..];
            if header.next_offset() <= *offset {
                continue;
            }
            if !header.is_control() {
                let from = *offset;
                walk_records(&header, batch, scratch, |record| {
                    if record.offset < from || record.offset >= limit {
                        return;
                    }
                    self.records += 1;
                    self.bytes += (record.key.map_or(0, <[u8]>::len)
                        + record.value.map_or(0, <[u8]>::len))
                        as u64;
                    if let (Some(now_ns), Some(value)) = (self.now_ns, record.value) {
                        if let Some(stamp) = value.get(..8) {
                            let sent_ns = u64::from_le_bytes(stamp.try_into().expect("8 bytes"));
                            let latency_us =
                                (now_ns.saturating_sub(sent_ns) / 1000).clamp(1, LATENCY_MAX_US);
                            let _ = histogram.record(latency_us);
                            self.sum_us += latency_us;
                            self.max_us = self.max_us.max(latency_us);
                        }
                    }
                })?;
            }
            *offset = header.next_offset();
        }
        Ok(())
    }
}

/// Figures of a whole consume run.
#[derive(Debug, serde::Serialize)]
pub struct ConsumeFigures {
    /// `start.time`, milliseconds since the Unix epoch.
    pub start_unix_ms: i64,
    /// `end.time`, milliseconds since the Unix epoch.
    pub end_unix_ms: i64,
    /// Records consumed (`data.consumed.in.nMsg`).
    pub records: u64,
    /// Key and value bytes consumed.
    pub bytes: u64,
    /// `data.consumed.in.MB` (MiB).
    pub mb: f64,
    /// `MB.sec` (MiB/s).
    pub mb_per_sec: f64,
    /// `nMsg.sec`.
    pub records_per_sec: f64,
    /// `fetch.time.ms` (no group, so it equals the elapsed time).
    pub fetch_time_ms: i64,
}

impl ConsumeFigures {
    /// kafka-consumer-perf-test's header line (`ConsumerPerformance.printHeader`).
    pub const HEADER: &'static str =
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

    /// Figures from totals and the run's wall-clock bounds.
    pub fn new(records: u64, bytes: u64, start_unix_ms: i64, end_unix_ms: i64) -> ConsumeFigures {
        let elapsed_s = ((end_unix_ms - start_unix_ms).max(1)) as f64 / 1000.0;
        let mb = bytes as f64 / (1024.0 * 1024.0);
        ConsumeFigures {
            start_unix_ms,
            end_unix_ms,
            records,
            bytes,
            mb,
            mb_per_sec: mb / elapsed_s,
            records_per_sec: records as f64 / elapsed_s,
            fetch_time_ms: end_unix_ms - start_unix_ms,
        }
    }

    /// kafka-consumer-perf-test's value line.
    pub fn perf_test_line(&self) -> String {
        format!(
            "{}, {}, {:.4}, {:.4}, {}, {:.4}, 0, {}, {:.4}, {:.4}",
            super::report::format_time_ms(self.start_unix_ms),
            super::report::format_time_ms(self.end_unix_ms),
            self.mb,
            self.mb_per_sec,
            self.records,
            self.records_per_sec,
            self.fetch_time_ms,
            self.mb_per_sec,
            self.records_per_sec
        )
    }
}
