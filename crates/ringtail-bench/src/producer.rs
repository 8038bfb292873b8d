//! The producer load generator: one record generator and one sender per executor, as Kafka's
//! producer splits `send()` (append to the accumulator) from its I/O thread (`Sender`).
//!
//! The generator appends records to the `RecordAccumulator`, paced to `--throughput` when set.
//! Latency is measured per record from its *intended* send time (start + i / rate), so a stalled
//! broker shows up as latency rather than as fewer samples (no coordinated omission). The sender
//! drains ready batches per leader into one Produce request each, keeping at most
//! `max.in.flight.requests.per.connection` unanswered per connection, and assigns idempotent
//! sequence numbers at drain time as Kafka's `RecordAccumulator.drain` does.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::channel::mpsc;
use futures::StreamExt;
use hdrhistogram::Histogram;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, ProduceRequest, ProducerId};

use super::accumulator::RecordAccumulator;
use super::batch::BatchBuilder;
use super::client::{topic_name, with_timeout, ClientError, Connection, ResponseReceiver};
use super::cluster::TopicLayout;
use super::config::{Acks, ProducerConfig};
use super::partitioner::{partition_for_key, StickyPartitioner};
use super::payload::Payloads;
use super::stats::{latency_histogram, SharedStats, LATENCY_MAX_US};
use super::BenchError;
use crate::protocol::record_batch::{Compression, RECORD_BATCH_HEADER_BYTES};

/// Everything one produce run needs.
#[derive(Debug, Clone)]
pub struct ProduceSpec {
    /// Topic to write.
    pub topic: String,
    /// Records to send in total, if bounded by count.
    pub num_records: Option<u64>,
    /// How long to send, if bounded by time.
    pub duration: Option<Duration>,
    /// Target records/s over all workers; `<= 0` is unlimited.
    pub throughput: f64,
    /// Producer settings.
    pub config: ProducerConfig,
    /// Number of executors (threads).
    pub threads: usize,
    /// Producer workers over all executors (at least `threads`; worker `i` runs on executor
    /// `i % threads`), each with its own connections and share of the records and throughput.
    pub producers: usize,
    /// Distinct keys (`key-<i % keys>`, murmur2-partitioned); `None` sends null keys (sticky).
    pub keys: Option<u64>,
    /// Record values.
    pub payloads: Payloads,
    /// For e2e: write nanoseconds since this instant into each value's first 8 bytes.
    pub stamp_epoch: Option<Instant>,
}

/// What one worker did.
#[derive(Debug)]
pub struct ProduceWorkerResult {
    /// Per-record latency in microseconds.
    pub histogram: Histogram<u64>,
    /// Batches sent.
    pub batches: u64,
    /// Produce requests sent.
    pub requests: u64,
    /// Batch bytes sent (compressed, with headers).
    pub wire_bytes: u64,
    /// Record bytes before compression (records sections only).
    pub uncompressed_bytes: u64,
}

/// The part of a sent batch kept to account for its records when the answer comes.
struct SentBatch {
    send_times: Vec<Instant>,
    value_bytes: u64,
}

struct WorkerState {
    accumulator: RecordAccumulator,
    in_flight: Vec<usize>,
    sequences: Vec<i32>,
    generating: bool,
    histogram: Histogram<u64>,
    batches: u64,
    requests: u64,
    wire_bytes: u64,
    uncompressed_bytes: u64,
}

struct Worker {
    spec: Arc<ProduceSpec>,
    stats: Arc<SharedStats>,
    topic: kafka_protocol::messages::TopicName,
    nodes: Vec<(Rc<Connection>, i16, Vec<usize>)>,
    producer_id: i64,
    producer_epoch: i16,
    state: RefCell<WorkerState>,
    wake_sender: RefCell<mpsc::Sender<()>>,
    wake_generator: RefCell<mpsc::Sender<()>>,
}

/// Runs one worker on the current executor: connects to every leader, produces its share of the
/// records (`worker` of `spec.producers`), and returns its figures. Errors met while running are
/// also reported through `stats.fail` so the other workers stop.
pub async fn produce_worker(
    spec: Arc<ProduceSpec>,
    layout: TopicLayout,
    worker: usize,
    stats: Arc<SharedStats>,
) -> Result<ProduceWorkerResult, BenchError> {
    let result = produce_worker_inner(spec, layout, worker, stats.clone()).await;
    if let Err(e) = &result {
        stats.fail(e.to_string());
    }
    result
}

async fn produce_worker_inner(
    spec: Arc<ProduceSpec>,
    layout: TopicLayout,
    worker: usize,
    stats: Arc<SharedStats>,
) -> Result<ProduceWorkerResult, BenchError> {
    let config = &spec.config;
    let partitions: Vec<usize> = (0..layout.partitions()).collect();
    let mut nodes = Vec::new();
    for (broker, led) in layout.by_leader(&partitions) {
        let connection = Connection::connect(
            &layout.brokers[&broker],
            &config.client_id,
            config.request_timeout(),
        )
        .await?;
        let version = connection.version::<ProduceRequest>(12)?;
        if config.compression == Compression::Zstd && version < 7 {
            return Err(BenchError::ZstdUnsupported {
                broker: connection.addr.clone(),
                version,
            });
        }
        nodes.push((Rc::new(connection), version, led));
    }
    let (producer_id, producer_epoch) = if config.enable_idempotence {
        init_producer_id(&nodes[0].0).await?
    } else {
        (-1, -1)
    };
    let (wake_sender, wake_sender_rx) = mpsc::channel(1);
    let (wake_generator, wake_generator_rx) = mpsc::channel(1);
    let worker_state = WorkerState {
        accumulator: RecordAccumulator::new(
            layout.partitions(),
            config.batch_size,
            config.linger(),
            config.compression,
        ),
        in_flight: vec![0; nodes.len()],
        sequences: vec![0; layout.partitions()],
        generating: true,
        histogram: latency_histogram(),
        batches: 0,
        requests: 0,
        wire_bytes: 0,
        uncompressed_bytes: 0,
    };
    let context = Rc::new(Worker {
        topic: topic_name(&spec.topic),
        spec: spec.clone(),
        stats,
        nodes,
        producer_id,
        producer_epoch,
        state: RefCell::new(worker_state),
        wake_sender: RefCell::new(wake_sender),
        wake_generator: RefCell::new(wake_generator),
    });
    let sender = glommio::spawn_local(run_sender(context.clone(), wake_sender_rx));
    let generated = generate(&context, worker, layout.partitions(), wake_generator_rx).await;
    {
        let mut state = context.state.borrow_mut();
        state.generating = false;
        state.accumulator.begin_flush();
    }
    context.wake_sender();
    let sent = sender.await;
    generated?;
    sent?;
    let state = context.state.replace(WorkerState {
        accumulator: RecordAccumulator::new(0, 0, Duration::ZERO, Compression::None),
        in_flight: Vec::new(),
        sequences: Vec::new(),
        generating: false,
        histogram: latency_histogram(),
        batches: 0,
        requests: 0,
        wire_bytes: 0,
        uncompressed_bytes: 0,
    });
    Ok(ProduceWorkerResult {
        histogram: state.histogram,
        batches: state.batches,
        requests: state.requests,
        wire_bytes: state.wire_bytes,
        uncompressed_bytes: state.uncompressed_bytes,
    })
}

/// InitProducerId for an idempotent producer (null `transactional.id`), KIP-98.
/// Kafka error codes COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR:
/// retriable for InitProducerId (Apache Kafka answers them while it creates and loads
/// `__transaction_state` on first use; the Java producer retries them).
const INIT_PRODUCER_ID_RETRIABLE: [i16; 3] = [14, 15, 16];
/// How long InitProducerId is retried on those errors.
const INIT_PRODUCER_ID_RETRY_MS: u64 = 30_000;

async fn init_producer_id(connection: &Connection) -> Result<(i64, i16), BenchError> {
    let version = connection.version::<InitProducerIdRequest>(5)?;
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let deadline = Instant::now() + Duration::from_millis(INIT_PRODUCER_ID_RETRY_MS);
    loop {
        let response = connection.call(&request, version).await?;
        if response.error_code == 0 {
            return Ok((response.producer_id.0, response.producer_epoch));
        }
        if !INIT_PRODUCER_ID_RETRIABLE.contains(&response.error_code) || Instant::now() >= deadline
        {
            return Err(
                ClientError::broker(ApiKey::InitProducerId, "", response.error_code).into(),
            );
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
}

impl Worker {
    fn wake_sender(&self) {
        let _ = self.wake_sender.borrow_mut().try_send(());
    }

    fn wake_generator(&self) {
        let _ = self.wake_generator.borrow_mut().try_send(());
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap to 0 after `i32::MAX`.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

async fn generate(
    worker: &Rc<Worker>,
    index: usize,
    partitions: usize,
    mut wake_rx: mpsc::Receiver<()>,
) -> Result<(), BenchError> {
    let spec = &worker.spec;
    let config = &spec.config;
    let producers = spec.producers as u64;
    let share = spec
        .num_records
        .map(|n| n / producers + u64::from((index as u64) < n % producers));
    let rate = if spec.throughput > 0.0 {
        spec.throughput / producers as f64
    } else {
        0.0
    };
    let start = Instant::now();
    let deadline = spec.duration.map(|d| start + d);
    let mut sticky = StickyPartitioner::new(partitions, config.batch_size, index as u64 + 1);
    let mut value = Vec::new();
    let mut key = String::new();
    let mut timestamp_ms = now_ms();
    let mut i: u64 = 0;
    loop {
        if share.is_some_and(|n| i >= n) || worker.stats.stopping() {
            break;
        }
        let mut now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let send_time = if rate > 0.0 {
            let intended = start + Duration::from_secs_f64(i as f64 / rate);
            if intended > now + Duration::from_micros(100) {
                worker.wake_sender();
                glommio::timer::sleep(intended - now).await;
                now = Instant::now();
            }
            intended
        } else {
            now
        };
        while worker.state.borrow().accumulator.buffered_bytes() >= config.buffer_memory {
            worker.wake_sender();
            if with_timeout(config.request_timeout(), wake_rx.next())
                .await
                .is_none()
            {
                return Err(BenchError::BufferFull {
                    timeout_ms: config.request_timeout_ms,
                });
            }
            if worker.stats.stopping() {
                return Ok(());
            }
            now = Instant::now();
        }
        let payload = spec.payloads.get(i);
        let value_bytes: &[u8] = match spec.stamp_epoch {
            Some(epoch) => {
                value.clear();
                value.extend_from_slice(payload);
                let stamp = (epoch.elapsed().as_nanos() as u64).to_le_bytes();
                let n = value.len().min(8);
                value[..n].copy_from_slice(&stamp[..n]);
                &value
            }
            None => payload,
        };
        let key_bytes = spec.keys.map(|keys| {
            key.clear();
            use std::fmt::Write;
            let _ = write!(key, "key-{}", i % keys.max(1));
            key.as_bytes()
        });
        let partition = match key_bytes {
            Some(k) => partition_for_key(k, partitions),
            None => sticky.partition(value_bytes.len()),
        };
        if i.is_multiple_of(1024) {
            timestamp_ms = now_ms();
        }
        let outcome = worker.state.borrow_mut().accumulator.append(
            partition,
            key_bytes,
            value_bytes,
            timestamp_ms,
            send_time,
            now,
        );
        if outcome.batch_full && key_bytes.is_none() {
            sticky.on_new_batch();
        }
        i += 1;
        if outcome.batch_full || config.linger_ms == 0 {
            worker.wake_sender();
        }
        // Let the sender run. (Not `yield_task_queue_now`: with glommio 0.9 a queue marked for
        // yield can make the executor park with runnable tasks, a lost wake-up.)
        if outcome.batch_full || i.is_multiple_of(64) {
            futures_lite::future::yield_now().await;
        }
    }
    Ok(())
}

async fn run_sender(worker: Rc<Worker>, mut wake_rx: mpsc::Receiver<()>) -> Result<(), BenchError> {
    let config = &worker.spec.config;
    let max_in_flight = config.max_in_flight_requests_per_connection;
    loop {
        let now = Instant::now();
        let mut sent = false;
        for node in 0..worker.nodes.len() {
            if worker.stats.stopping() {
                break;
            }
            let batches = {
                let mut state = worker.state.borrow_mut();
                if state.in_flight[node] >= max_in_flight {
                    continue;
                }
                state
                    .accumulator
                    .drain(&worker.nodes[node].2, now, config.max_request_size)
            };
            if batches.is_empty() {
                continue;
            }
            worker.wake_generator();
            sent = true;
            if let Err(e) = send_request(&worker, node, batches).await {
                worker.stats.fail(e.to_string());
                return Err(e);
            }
        }
        let (done, deadline) = {
            let state = worker.state.borrow();
            let idle = state.in_flight.iter().all(|&n| n == 0);
            let done = idle
                && ((!state.generating && state.accumulator.is_empty()) || worker.stats.stopping());
            (done, state.accumulator.next_linger_deadline())
        };
        if done {
            return Ok(());
        }
        if !sent {
            let wait = match deadline {
                Some(d) if d > now => d - now,
                _ => Duration::from_millis(100),
            };
            with_timeout(wait.min(Duration::from_millis(100)), wake_rx.next()).await;
        }
    }
}

async fn send_request(
    worker: &Rc<Worker>,
    node: usize,
    batches: Vec<(usize, BatchBuilder)>,
) -> Result<(), BenchError> {
    let config = &worker.spec.config;
    let (connection, version, _) = &worker.nodes[node];
    let mut partition_data = Vec::with_capacity(batches.len());
    let mut sent = Vec::with_capacity(batches.len());
    {
        let mut state = worker.state.borrow_mut();
        for (partition, batch) in batches {
            let base_sequence = if worker.producer_id >= 0 {
                let sequence = state.sequences[partition];
                state.sequences[partition] =
                    increment_sequence(sequence, batch.record_count() as i32);
                sequence
            } else {
                -1
            };
            let bytes = batch
                .finish(
                    config.compression,
                    config.compression_level,
                    worker.producer_id,
                    worker.producer_epoch,
                    base_sequence,
                )
                .map_err(|e| BenchError::Encode(e.to_string()))?;
            let records_bytes = batch.uncompressed_bytes() - RECORD_BATCH_HEADER_BYTES;
            state
                .accumulator
                .observe_compression(records_bytes, bytes.len() - RECORD_BATCH_HEADER_BYTES);
            state.batches += 1;
            state.wire_bytes += bytes.len() as u64;
            state.uncompressed_bytes += records_bytes as u64;
            let value_bytes =
                (batch.record_count() as f64 * worker.spec.payloads.mean_bytes()) as u64;
            partition_data.push(
                PartitionProduceData::default()
                    .with_index(partition as i32)
                    .with_records(Some(bytes)),
            );
            sent.push(SentBatch {
                send_times: batch.send_times,
                value_bytes,
            });
        }
        state.requests += 1;
    }
    let request = ProduceRequest::default()
        .with_acks(config.acks.wire_value())
        .with_timeout_ms(config.request_timeout_ms as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(worker.topic.clone())
            .with_partition_data(partition_data)]);
    let expect_response = config.acks != Acks::None;
    if expect_response {
        worker.state.borrow_mut().in_flight[node] += 1;
    }
    let receiver = match connection.send(&request, *version, expect_response).await {
        Ok(receiver) => receiver,
        Err(e) => {
            if expect_response {
                worker.state.borrow_mut().in_flight[node] -= 1;
            }
            return Err(e.into());
        }
    };
    match receiver {
        Some(receiver) => {
            glommio::spawn_local(handle_response(worker.clone(), node, receiver, sent)).detach();
        }
        None => complete(worker, &sent, Instant::now()),
    }
    Ok(())
}

async fn handle_response(
    worker: Rc<Worker>,
    node: usize,
    receiver: ResponseReceiver,
    sent: Vec<SentBatch>,
) {
    let (connection, version, _) = &worker.nodes[node];
    let result = connection
        .receive::<ProduceRequest>(receiver, *version)
        .await;
    let now = Instant::now();
    match result {
        Err(e) => worker.stats.fail(e.to_string()),
        Ok(response) => {
            let failed = response.responses.iter().flat_map(|t| {
                t.partition_responses
                    .iter()
                    .filter(|p| p.error_code != 0)
                    .map(move |p| (t.name.as_str(), p))
            });
            let mut ok = true;
            for (topic, p) in failed {
                let message = p
                    .error_message
                    .as_ref()
                    .map(|m| format!(" ({})", m.as_str()))
                    .unwrap_or_default();
                worker.stats.fail(
                    ClientError::broker(
                        ApiKey::Produce,
                        format!(" for {topic}-{}{message}", p.index),
                        p.error_code,
                    )
                    .to_string(),
                );
                ok = false;
            }
            if ok {
                complete(&worker, &sent, now);
            }
        }
    }
    worker.state.borrow_mut().in_flight[node] -= 1;
    worker.wake_sender();
}

/// Accounts for sent batches completed at `now`.
fn complete(worker: &Worker, sent: &[SentBatch], now: Instant) {
    let mut state = worker.state.borrow_mut();
    let (mut records, mut bytes, mut sum_us, mut max_us) = (0u64, 0u64, 0u64, 0u64);
    for batch in sent {
        for &send_time in &batch.send_times {
            let latency_us = (now.saturating_duration_since(send_time).as_micros() as u64)
                .clamp(1, LATENCY_MAX_US);
            state
                .histogram
                .record(latency_us)
                .expect("latency clamped into the histogram's range");
            sum_us += latency_us;
            max_us = max_us.max(latency_us);
        }
        records += batch.send_times.len() as u64;
        bytes += batch.value_bytes;
    }
    worker.stats.complete(records, bytes, sum_us, max_us);
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Figures of a whole produce run, all workers merged.
#[derive(Debug, serde::Serialize)]
pub struct ProduceFigures {
    /// Records acknowledged.
    pub records: u64,
    /// Value bytes acknowledged.
    pub bytes: u64,
    /// Wall time from the first send to the last acknowledgment, seconds.
    pub elapsed_s: f64,
    /// Records per second.
    pub records_per_sec: f64,
    /// Value MiB per second (MB as kafka-producer-perf-test counts: 1024 * 1024 bytes).
    pub mb_per_sec: f64,
    /// Mean latency, milliseconds.
    pub latency_avg_ms: f64,
    /// Maximum latency, milliseconds.
    pub latency_max_ms: f64,
    /// Median latency, milliseconds.
    pub latency_p50_ms: f64,
    /// 95th percentile latency, milliseconds.
    pub latency_p95_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub latency_p99_ms: f64,
    /// 99.9th percentile latency, milliseconds.
    pub latency_p999_ms: f64,
    /// 99.99th percentile latency, milliseconds.
    pub latency_p9999_ms: f64,
    /// Record batches sent.
    pub batches: u64,
    /// Produce requests sent.
    pub requests: u64,
    /// Mean records per batch.
    pub records_per_batch: f64,
    /// Compressed/uncompressed size of the records sections (1.0 without compression).
    pub compression_ratio: f64,
}

impl ProduceFigures {
    /// Computes the figures from merged worker results.
    pub fn new(
        histogram: &Histogram<u64>,
        bytes: u64,
        elapsed: Duration,
        batches: u64,
        requests: u64,
        wire_bytes: u64,
        uncompressed_bytes: u64,
    ) -> ProduceFigures {
        let records = histogram.len();
        let elapsed_s = elapsed.as_secs_f64().max(1e-9);
        let ms = |us: u64| us as f64 / 1000.0;
        ProduceFigures {
            records,
            bytes,
            elapsed_s,
            records_per_sec: records as f64 / elapsed_s,
            mb_per_sec: bytes as f64 / elapsed_s / (1024.0 * 1024.0),
            latency_avg_ms: if records == 0 {
                0.0
            } else {
                histogram.mean() / 1000.0
            },
            latency_max_ms: ms(histogram.max()),
            latency_p50_ms: ms(histogram.value_at_quantile(0.50)),
            latency_p95_ms: ms(histogram.value_at_quantile(0.95)),
            latency_p99_ms: ms(histogram.value_at_quantile(0.99)),
            latency_p999_ms: ms(histogram.value_at_quantile(0.999)),
            latency_p9999_ms: ms(histogram.value_at_quantile(0.9999)),
            batches,
            requests,
            records_per_batch: if batches == 0 {
                0.0
            } else {
                records as f64 / batches as f64
            },
            compression_ratio: if uncompressed_bytes == 0 {
                1.0
            } else {
                (wire_bytes - batches * RECORD_BATCH_HEADER_BYTES as u64) as f64
                    / uncompressed_bytes as f64
            },
        }
    }

    /// kafka-producer-perf-test's final line (`ProducerPerformance.Stats.printTotal`); the
    /// percentiles are whole milliseconds as there.
    pub fn perf_test_line(&self) -> String {
        format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.records,
            self.records_per_sec,
            self.mb_per_sec,
            self.latency_avg_ms,
            self.latency_max_ms,
            self.latency_p50_ms as u64,
            self.latency_p95_ms as u64,
            self.latency_p99_ms as u64,
            self.latency_p999_ms as u64
        )
    }
}

/// The first error of a run that was stopped early, if it was.
pub fn stopped_early(stats: &SharedStats) -> Option<String> {
    if stats.stop.load(Ordering::Relaxed) {
        stats.first_error.lock().ok().and_then(|e| e.clone())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_like_java() {
        assert_eq!(increment_sequence(0, 5), 5);
        assert_eq!(increment_sequence(i32::MAX - 5, 5), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX - 4, 5), 0);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
    }
}
