//! One partition on its owning shard: the [`Log`], idempotent-producer state, the high watermark,
//! group-committed fsync, and an in-memory tail cache that serves fetches of recent batches.
//!
//! Produce path, per batch and never per record:
//! 1. [`Partition::append`] (synchronous, so requests are ordered as they arrive): validate header
//!    and CRC-32C, check the producer sequence, assign `base_offset`, copy the bytes once into the
//!    pending chunk, and make sure the writer task runs.
//! 2. The writer task writes everything pending in one DMA write ([`Log::append`]), then advances
//!    the high watermark and wakes waiters. One write is in flight per partition at a time.
//! 3. acks=-1 callers then await [`Partition::wait_durable`]: one fdatasync covers every batch
//!    written before it started (group commit).
//!
//! Invariants: `high_watermark <= next_offset`; `durable_offset <= high_watermark`; offsets in
//! the pending chunk are contiguous from `high_watermark`. After a storage error the partition is
//! offline: nothing more is accepted, nothing acknowledged is touched.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use uuid::Uuid;

use crate::config::{TimestampType, TopicConfig};
use crate::log::{Log, LogConfig, LogError};
use crate::protocol::record_batch::{
    self, validate_batch, BatchError, RecordBatchHeader, LOG_OVERHEAD,
};

/// How many recent batches per producer are remembered for duplicate detection (Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`, the max.in.flight limit for idempotence).
pub const PRODUCER_BATCHES_TO_RETAIN: usize = 5;

/// Why a produce to this partition was refused; mapped to Kafka codes in `request_handler::produce`.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("the produce request carries no record batch")]
    EmptyRecords,
    #[error("bytes after the last complete batch: {0} bytes")]
    TrailingBytes(usize),
    #[error("control batches cannot be produced by clients")]
    ControlBatch,
    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: expected sequence {expected}, got {received}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    #[error("partition is offline after a storage error: {0}")]
    Offline(String),
}

/// Why a wait for a write or a sync failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StorageError(pub String);

/// Result of [`Partition::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// New batches at `base_offset..=last_offset`; `log_append_time` is -1 for CreateTime topics.
    New {
        base_offset: i64,
        last_offset: i64,
        log_append_time: i64,
    },
    /// A retry of a batch already in the log (idempotent producer): answer with its offset.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// Bytes of whole batches read for a fetch, with the partition's offsets at the time.
#[derive(Debug, Clone)]
pub struct FetchRead {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} is out of range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Settings a partition needs, derived from the topic config.
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    /// `max.message.bytes`: largest batch accepted, in bytes.
    pub max_message_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// Bytes of recent batches kept in memory for fetches (`ringtail.partition.cache.bytes`).
    pub cache_bytes: usize,
    pub log: LogConfig,
}

impl PartitionConfig {
    pub fn new(topic: &TopicConfig, cache_bytes: usize) -> PartitionConfig {
        PartitionConfig {
            max_message_bytes: topic.max_message_bytes.max(0) as usize,
            log_append_time: topic.message_timestamp_type == TimestampType::LogAppendTime,
            cache_bytes,
            log: LogConfig {
                segment_bytes: topic.segment_bytes.max(0) as u64,
                segment_ms: topic.segment_ms.max(0) as u64,
                index_interval_bytes: topic.index_interval_bytes.max(0) as u32,
                segment_index_bytes: topic.segment_index_bytes.max(0) as u64,
            },
        }
    }
}

/// One partition log with its write pipeline. Lives on its owning shard only.
pub struct Partition {
    pub topic: String,
    pub partition: i32,
    pub topic_id: Uuid,
    config: PartitionConfig,
    log: Log,
    /// Next offset to assign, counting batches not yet written.
    next_offset: Cell<i64>,
    pending: RefCell<PendingWrite>,
    writer_running: Cell<bool>,
    /// Offsets below this are written (acks=1) and visible to consumers.
    high_watermark: Cell<i64>,
    /// Offsets below this are on disk after fdatasync.
    durable_offset: Cell<i64>,
    sync_running: Cell<bool>,
    sync_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    written_waiters: OffsetWaiters,
    producers: RefCell<HashMap<i64, ProducerState>>,
    cache: RefCell<TailCache>,
    offline: RefCell<Option<String>>,
}

impl Partition {
    /// Opens (recovering when `recover`) the log in `dir` and rebuilds producer state from the
    /// active segment's batch headers after an unclean shutdown.
    pub async fn open(
        topic: &str,
        partition: i32,
        topic_id: Uuid,
        dir: PathBuf,
        config: PartitionConfig,
        recover: bool,
    ) -> Result<Rc<Partition>, LogError> {
        let log = Log::open(dir, config.log.clone(), recover).await?;
        let mut producers = HashMap::new();
        if recover {
            for header in log.active_segment_batch_headers().await? {
                if header.has_producer_id() {
                    ProducerState::record(&mut producers, &header, header.base_offset);
                }
            }
        }
        let end = log.log_end_offset();
        Ok(Rc::new(Partition {
            topic: topic.to_string(),
            partition,
            topic_id,
            cache: RefCell::new(TailCache::new(config.cache_bytes)),
            config,
            log,
            next_offset: Cell::new(end),
            pending: RefCell::new(PendingWrite::default()),
            writer_running: Cell::new(false),
            high_watermark: Cell::new(end),
            durable_offset: Cell::new(end),
            sync_running: Cell::new(false),
            sync_waiters: RefCell::new(Vec::new()),
            written_waiters: OffsetWaiters::default(),
            producers: RefCell::new(producers),
            offline: RefCell::new(None),
        }))
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Validates and assigns offsets to every batch in `records`, synchronously.
    ///
    /// Either all batches are accepted or none is. `now_ms` is the broker's clock, used for
    /// LogAppendTime topics. `max_message_bytes` (Kafka's `LogValidator`) bounds each batch.
    pub fn append(self: &Rc<Self>, records: &[u8], now_ms: i64) -> Result<Appended, AppendError> {
        if let Some(reason) = self.offline.borrow().as_ref() {
            return Err(AppendError::Offline(reason.clone()));
        }
        let headers = self.validate(records)?;
        if let Some(duplicate) = self.check_sequences(&headers)? {
            return Ok(duplicate);
        }
        let base_offset = self.next_offset.get();
        let mut pending = self.pending.borrow_mut();
        let mut position = 0;
        for header in &headers {
            let size = header.size_bytes();
            let offset = self.next_offset.get();
            let start = pending.chunk.len();
            pending
                .chunk
                .extend_from_slice(&records[position..position + size]);
            let stored = &mut pending.chunk[start..];
            record_batch::set_base_offset(stored, offset);
            if self.config.log_append_time {
                set_log_append_time(stored, now_ms);
            }
            let mut assigned = *header;
            assigned.base_offset = offset;
            pending.headers.push(assigned);
            if assigned.has_producer_id() {
                ProducerState::record(&mut self.producers.borrow_mut(), &assigned, offset);
            }
            self.next_offset.set(assigned.next_offset());
            position += size;
        }
        drop(pending);
        if !self.writer_running.replace(true) {
            glommio::spawn_local(self.clone().run_writer()).detach();
        }
        Ok(Appended::New {
            base_offset,
            last_offset: self.next_offset.get() - 1,
            log_append_time: if self.config.log_append_time {
                now_ms
            } else {
                -1
            },
        })
    }

    /// Resolves once every offset up to `last_offset` is written (acks=1).
    pub async fn wait_written(&self, last_offset: i64) -> Result<(), StorageError> {
        if self.high_watermark.get() > last_offset {
            return Ok(());
        }
        if let Some(reason) = self.offline.borrow().as_ref() {
            return Err(StorageError(reason.clone()));
        }
        let waiter = self.written_waiters.wait_until(last_offset + 1);
        match waiter.await {
            Ok(()) => Ok(()),
            Err(_) => Err(StorageError(self.offline_reason())),
        }
    }

    /// Resolves once fdatasync covered `last_offset` (acks=-1). Call after [`Self::wait_written`].
    ///
    /// Group commit: while one sync runs, later callers wait for it, then one of them starts the
    /// next sync, which covers all of them.
    pub async fn wait_durable(&self, last_offset: i64) -> Result<(), StorageError> {
        loop {
            if self.durable_offset.get() > last_offset {
                return Ok(());
            }
            if let Some(reason) = self.offline.borrow().as_ref() {
                return Err(StorageError(reason.clone()));
            }
            if self.sync_running.get() {
                let (tx, rx) = oneshot::channel();
                self.sync_waiters.borrow_mut().push(tx);
                let _ = rx.await;
                continue;
            }
            self.sync_running.set(true);
            let target = self.high_watermark.get();
            let result = self.log.flush().await;
            self.sync_running.set(false);
            match result {
                Ok(()) => self
                    .durable_offset
                    .set(self.durable_offset.get().max(target)),
                Err(e) => self.go_offline(format!("fdatasync failed: {e}")),
            }
            for waiter in self.sync_waiters.borrow_mut().drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// A receiver that resolves when the high watermark moves past `offset` (fetch long poll).
    /// Dropping it is fine.
    pub fn wait_for_data(&self, offset: i64) -> oneshot::Receiver<()> {
        self.written_waiters.wait_until(offset + 1)
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` (the first batch whole,
    /// KIP-74), never past the high watermark. Served from the tail cache when it covers `offset`.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchRead, ReadError> {
        let high_watermark = self.high_watermark.get();
        let log_start_offset = self.log.log_start_offset();
        if offset < log_start_offset || offset > high_watermark {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            });
        }
        let records = if offset == high_watermark {
            Bytes::new()
        } else if let Some(cached) = self.cache.borrow().read(offset, max_bytes, high_watermark) {
            cached
        } else {
            self.log.read(offset, max_bytes, high_watermark).await?
        };
        Ok(FetchRead {
            records,
            high_watermark,
            log_start_offset,
        })
    }

    /// Flushes and closes the log (clean shutdown). Waits for the in-flight write first.
    pub async fn close(&self) -> Result<(), LogError> {
        let pending_end = self.next_offset.get() - 1;
        let _ = self.wait_written(pending_end).await;
        self.log.close().await
    }

    fn validate(&self, records: &[u8]) -> Result<Vec<RecordBatchHeader>, AppendError> {
        if records.is_empty() {
            return Err(AppendError::EmptyRecords);
        }
        let mut headers = Vec::with_capacity(1);
        let mut position = 0;
        while position < records.len() {
            let rest = &records[position..];
            if rest.len() < LOG_OVERHEAD {
                return Err(AppendError::TrailingBytes(rest.len()));
            }
            let length = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
            let size = (length.max(0) as usize)
                .saturating_add(LOG_OVERHEAD)
                .min(rest.len());
            let header = validate_batch(&rest[..size], self.config.max_message_bytes)?;
            if header.is_control() {
                return Err(AppendError::ControlBatch);
            }
            headers.push(header);
            position += size;
        }
        Ok(headers)
    }

    /// Kafka's idempotence rules (`ProducerStateManager`, KIP-98), checked on the first batch
    /// of a producer in this request; later batches of one request must follow it in sequence.
    fn check_sequences(
        &self,
        headers: &[RecordBatchHeader],
    ) -> Result<Option<Appended>, AppendError> {
        let producers = self.producers.borrow();
        let mut expected: HashMap<i64, (i16, i32)> = HashMap::new();
        for header in headers.iter().filter(|h| h.has_producer_id()) {
            let state = producers.get(&header.producer_id);
            let (epoch, last_sequence) = match expected.get(&header.producer_id) {
                Some(&known) => known,
                None => match state {
                    None => {
                        expected.insert(
                            header.producer_id,
                            (header.producer_epoch, header.last_sequence()),
                        );
                        continue;
                    }
                    Some(state) => (state.epoch, state.last_sequence),
                },
            };
            if header.producer_epoch < epoch {
                return Err(AppendError::InvalidProducerEpoch {
                    producer_id: header.producer_id,
                    epoch: header.producer_epoch,
                    current: epoch,
                });
            }
            if header.producer_epoch > epoch {
                if header.base_sequence != 0 {
                    return Err(AppendError::OutOfOrderSequence {
                        producer_id: header.producer_id,
                        expected: 0,
                        received: header.base_sequence,
                    });
                }
            } else {
                if headers.len() == 1 {
                    if let Some(batch) = state.and_then(|s| s.find_duplicate(header)) {
                        return Ok(Some(Appended::Duplicate {
                            base_offset: batch.base_offset,
                            last_offset: batch.last_offset,
                        }));
                    }
                }
                let next = next_sequence(last_sequence);
                if header.base_sequence != next {
                    return Err(AppendError::OutOfOrderSequence {
                        producer_id: header.producer_id,
                        expected: next,
                        received: header.base_sequence,
                    });
                }
            }
            expected.insert(
                header.producer_id,
                (header.producer_epoch, header.last_sequence()),
            );
        }
        Ok(None)
    }

    /// The writer task: drains the pending chunk with one DMA write at a time.
    async fn run_writer(self: Rc<Self>) {
        loop {
            let (chunk, headers) = {
                let mut pending = self.pending.borrow_mut();
                if pending.headers.is_empty() {
                    self.writer_running.set(false);
                    return;
                }
                let pending = std::mem::take(&mut *pending);
                (pending.chunk.freeze(), pending.headers)
            };
            let first = headers.first().expect("non-empty").base_offset;
            assert_eq!(first, self.high_watermark.get(), "pending starts at the HW");
            match self.log.append(&chunk, &headers).await {
                Ok(()) => {
                    let end = headers.last().expect("non-empty").next_offset();
                    assert_eq!(self.log.log_end_offset(), end, "log end matches batches");
                    self.cache.borrow_mut().push(&chunk, &headers);
                    self.high_watermark.set(end);
                    self.written_waiters.notify(end);
                }
                Err(e) => {
                    self.go_offline(format!("write failed: {e}"));
                    self.writer_running.set(false);
                    return;
                }
            }
        }
    }

    fn go_offline(&self, reason: String) {
        tracing::error!(
            topic = %self.topic,
            partition = self.partition,
            "partition goes offline: {reason}; acknowledged data is kept, new produces get KAFKA_STORAGE_ERROR"
        );
        self.offline.borrow_mut().get_or_insert(reason);
        self.pending.borrow_mut().headers.clear();
        self.pending.borrow_mut().chunk.clear();
        self.written_waiters.fail_all();
        for waiter in self.sync_waiters.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
    }

    fn offline_reason(&self) -> String {
        self.offline
            .borrow()
            .clone()
            .unwrap_or_else(|| "partition closed".to_string())
    }
}

/// Sets LogAppendTime (attribute bit 3, `max_timestamp = now`) and recomputes the CRC, as
/// Kafka's `LogValidator` does for `message.timestamp.type=LogAppendTime`.
fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x08;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

#[derive(Default)]
struct PendingWrite {
    chunk: BytesMut,
    headers: Vec<RecordBatchHeader>,
}

#[derive(Debug, Clone, Copy)]
struct ProducerBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
    last_offset: i64,
}

/// Per (producer, partition) state: the epoch, last sequence and the last five batches.
#[derive(Debug)]
struct ProducerState {
    epoch: i16,
    last_sequence: i32,
    recent: VecDeque<ProducerBatch>,
}

impl ProducerState {
    fn record(
        producers: &mut HashMap<i64, ProducerState>,
        header: &RecordBatchHeader,
        base_offset: i64,
    ) {
        let state = producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerState {
                epoch: header.producer_epoch,
                last_sequence: -1,
                recent: VecDeque::new(),
            });
        if header.producer_epoch != state.epoch {
            state.epoch = header.producer_epoch;
            state.recent.clear();
        }
        state.last_sequence = header.last_sequence();
        if state.recent.len() == PRODUCER_BATCHES_TO_RETAIN {
            state.recent.pop_front();
        }
        state.recent.push_back(ProducerBatch {
            first_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            base_offset,
            last_offset: base_offset + header.last_offset_delta as i64,
        });
    }

    fn find_duplicate(&self, header: &RecordBatchHeader) -> Option<ProducerBatch> {
        self.recent.iter().copied().find(|batch| {
            batch.first_sequence == header.base_sequence
                && batch.last_sequence == header.last_sequence()
        })
    }
}

/// Waiters woken when an offset is reached.
#[derive(Default)]
struct OffsetWaiters {
    waiters: RefCell<Vec<(i64, oneshot::Sender<()>)>>,
}

/// Pruning threshold for abandoned waiters (fetch long polls that timed out).
const WAITERS_PRUNE_AT: usize = 64;

impl OffsetWaiters {
    fn wait_until(&self, offset: i64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters.borrow_mut();
        if waiters.len() >= WAITERS_PRUNE_AT {
            waiters.retain(|(_, tx)| !tx.is_canceled());
        }
        waiters.push((offset, tx));
        rx
    }

    fn notify(&self, reached: i64) {
        let mut waiters = self.waiters.borrow_mut();
        let mut i = 0;
        while i < waiters.len() {
            if waiters[i].0 <= reached {
                let (_, tx) = waiters.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
    }

    fn fail_all(&self) {
        self.waiters.borrow_mut().clear();
    }
}

/// Recently written batches, newest last, bounded by bytes. Entries are zero-copy slices of the
/// chunks the writer wrote.
struct TailCache {
    batches: VecDeque<(RecordBatchHeader, Bytes)>,
    bytes: usize,
    max_bytes: usize,
}

impl TailCache {
    fn new(max_bytes: usize) -> TailCache {
        TailCache {
            batches: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    fn push(&mut self, chunk: &Bytes, headers: &[RecordBatchHeader]) {
        if self.max_bytes == 0 {
            return;
        }
        let mut position = 0;
        for header in headers {
            let size = header.size_bytes();
            self.batches
                .push_back((*header, chunk.slice(position..position + size)));
            self.bytes += size;
            position += size;
        }
        while self.bytes > self.max_bytes {
            match self.batches.pop_front() {
                Some((header, _)) => self.bytes -= header.size_bytes(),
                None => break,
            }
        }
    }

    /// `None` when `offset` is older than the cache; else whole batches as in [`Log::read`].
    fn read(&self, offset: i64, max_bytes: usize, high_watermark: i64) -> Option<Bytes> {
        let first = self.batches.front()?;
        if offset < first.0.base_offset {
            return None;
        }
        let start = self
            .batches
            .partition_point(|(header, _)| header.last_offset() < offset);
        let mut selected = self
            .batches
            .range(start..)
            .take_while(|(header, _)| header.base_offset < high_watermark);
        let (_, first_bytes) = selected.next()?;
        let mut total = first_bytes.len();
        let rest: Vec<&Bytes> = selected
            .map(|(_, bytes)| bytes)
            .take_while(|bytes| {
                total += bytes.len();
                total <= max_bytes
            })
            .collect();
        if rest.is_empty() {
            return Some(first_bytes.clone());
        }
        let mut out = BytesMut::with_capacity(
            first_bytes.len() + rest.iter().map(|b| b.len()).sum::<usize>(),
        );
        out.extend_from_slice(first_bytes);
        for bytes in rest {
            out.extend_from_slice(bytes);
        }
        Some(out.freeze())
    }
}
