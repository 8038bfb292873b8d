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
//! Producer state (Kafka's `ProducerStateManager`: epoch, last sequence and the last five
//! batches per producer id) and transaction state are snapshotted after every segment roll and
//! at close (`<offset>.producer-state`, CRC-32C checked); opening loads the newest usable
//! snapshot and replays only the batch headers after it, as Kafka's `LogLoader` does. Without
//! one they are rebuilt from the batch headers of every segment.
//!
//! Invariants: `durable_offset <= high_watermark <= log_end_offset <= next_offset` and
//! `log_start_offset <= high_watermark` (asserted after each write and each fdatasync);
//! offsets in the pending chunk are contiguous from `high_watermark` (asserted before each
//! write). After a storage error the partition is offline: nothing more is accepted, nothing
//! acknowledged is touched, and every waiter gets the same `Arc<LogError>`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use uuid::Uuid;

use crate::config::{CleanupPolicy, CompressionType, TimestampType, TopicConfig};
use crate::log::{Log, LogConfig, LogError};
use crate::protocol::record_batch::{
    self, validate_batch, BatchError, Compression, RecordBatchHeader, LOG_OVERHEAD,
};

mod leader;
pub(crate) mod log_validator; // fuzzing::record_batch validates as append does
mod transactions;
pub use crate::log::AbortedTxn;
pub use leader::{DeleteRecordsError, LeaderEpochError};
pub use transactions::{ProducerDescription, TxnMarker};

/// How many recent batches per producer are remembered for duplicate detection (Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`, the max.in.flight limit for idempotence).
pub const PRODUCER_BATCHES_TO_RETAIN: usize = 5;

/// Producer state is rebuilt from at least this many of the newest batches (the whole active
/// segment, plus older segments while it holds fewer), so a roll just before a crash does not
/// forget the producers.
pub const PRODUCER_STATE_MIN_BATCHES: usize = 1024;

/// Bytes written to a partition between two recovery checkpoints ([`Partition::checkpoint`]),
/// at most: after a crash, recovery reads about this much of each active segment twice (CRC
/// scan, producer-state replay) instead of up to `segment.bytes`. Each checkpoint costs one
/// fdatasync, two index-file writes (about 5 KiB per MiB of segment) and a snapshot.
pub const RECOVERY_CHECKPOINT_BYTES: u64 = 64 << 20;
/// The fewest bytes between two recovery checkpoints, whatever `segment.bytes`.
pub const RECOVERY_CHECKPOINT_MIN_BYTES: u64 = 256 << 10;
const _: () = assert!(RECOVERY_CHECKPOINT_MIN_BYTES <= RECOVERY_CHECKPOINT_BYTES);

/// Bytes between two recovery checkpoints for `segment_bytes`: a quarter segment, within
/// [`RECOVERY_CHECKPOINT_MIN_BYTES`, `RECOVERY_CHECKPOINT_BYTES`] (a smaller segment is
/// recovered in fewer bytes anyway).
fn checkpoint_bytes_for(segment_bytes: u64) -> u64 {
    (segment_bytes / 4).clamp(RECOVERY_CHECKPOINT_MIN_BYTES, RECOVERY_CHECKPOINT_BYTES)
}

/// A producer that appended nothing for this long is forgotten (Kafka's
/// `producer.id.expiration.ms`, default one day), so producer state stays bounded.
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
const _: () = assert!(PRODUCER_STATE_MIN_BATCHES >= PRODUCER_BATCHES_TO_RETAIN);
const _: () = assert!(PRODUCER_BATCHES_TO_RETAIN > 0);
const _: () = assert!(PRODUCER_ID_EXPIRATION_MS > 0);

/// Why a produce to this partition was refused; mapped to Kafka codes in `request_handler::produce`.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("the produce request carries no record batch")]
    EmptyRecords,
    #[error("bytes after the last complete batch: {0} bytes")]
    TrailingBytes(usize),
    #[error(
        "Clients are not allowed to write control records in topic partition {topic_partition}"
    )]
    ControlBatch { topic_partition: String },
    /// A non-transactional batch from a producer with an ongoing transaction here (Kafka's
    /// `ProducerAppendInfo.appendDataBatch`: INVALID_TXN_STATE).
    #[error("Expected transactional write from producer {producer_id} at offset {offset} in partition {topic_partition}")]
    InvalidTxnState {
        producer_id: i64,
        offset: i64,
        topic_partition: String,
    },
    /// A transaction marker from an older coordinator epoch than the producer's last marker
    /// (Kafka's `ProducerAppendInfo.checkCoordinatorEpoch`: TRANSACTION_COORDINATOR_FENCED).
    #[error("Invalid coordinator epoch for producerId {producer_id} in partition {topic_partition}: {coordinator_epoch} (zombie), {current} (current)")]
    TransactionCoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
        topic_partition: String,
    },
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
    /// The partition went offline after a failed write or fdatasync; the error is the
    /// log's (shared with every waiter that failed with it). Its text is in the message
    /// because produce answers carry it as `error_message`.
    #[error("partition is offline after a storage error: {0}")]
    Offline(#[source] Arc<LogError>),
    /// acks=all with fewer in-sync replicas than `min.insync.replicas` (Kafka's
    /// `Partition.appendRecordsToLeader`); this node is the only replica.
    #[error("The size of the current ISR Set({node_id}) is insufficient to satisfy the min.isr requirement of {min_insync_replicas} for partition {topic_partition}")]
    NotEnoughReplicas {
        node_id: i32,
        min_insync_replicas: i32,
        topic_partition: String,
    },
    /// Records refused one by one (KIP-467): `record_errors` holds (index in the batch,
    /// message) per refused record; `message` is Kafka's summary (`LogValidator`).
    #[error("{message}")]
    RecordErrors {
        kind: RecordErrorKind,
        record_errors: Vec<(i32, String)>,
        message: String,
    },
    /// A batch's records decompress to more than the broker holds in memory for one batch.
    #[error("the decompressed records of a batch in append to partition {topic_partition} exceed {max_bytes} bytes")]
    DecompressedTooLarge {
        topic_partition: String,
        max_bytes: usize,
    },
    /// A recompressed batch is larger than `max.message.bytes` (Kafka's `UnifiedLog.append`).
    #[error("Message batch size is {size} bytes in append to partition {topic_partition} which exceeds the maximum configured size of {max}.")]
    RecordTooLarge {
        topic_partition: String,
        size: usize,
        max: usize,
    },
    /// The records of a batch that had to be decoded could not be read (bad compressed data,
    /// records overrunning the batch).
    #[error("cannot read the records of a batch: {0}")]
    Undecodable(String),
}

/// Which error the per-record errors of [`AppendError::RecordErrors`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordErrorKind {
    /// INVALID_RECORD (87), e.g. a record without a key on a compacted topic.
    InvalidRecord,
    /// INVALID_TIMESTAMP (32): a CreateTime timestamp outside the KIP-937 bounds.
    InvalidTimestamp,
}

/// Why a wait for a write or a sync failed; cloned to every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// A write or fdatasync failed and the partition is offline.
    #[error("storage error: {0}")]
    Offline(#[source] Arc<LogError>),
    /// The partition was closed (or deleted) before the offset was written.
    #[error("storage error: partition closed")]
    Closed,
}

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
    /// Kafka's last stable offset at the time of the read (filled for both isolation levels).
    pub last_stable_offset: i64,
    /// read_committed: the aborted transactions overlapping the records read (Kafka's
    /// `collectAbortedTransactions`); `None` for read_uncommitted.
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
}

/// A read answered without awaiting ([`Partition::read_isolated_now`]), or the news that it
/// needs the segment files (then [`Partition::read_isolated`] does the I/O).
pub enum ReadNow {
    /// The answer, as [`Partition::read_isolated`] would give it.
    Done(Result<FetchRead, ReadError>),
    /// Not in the tail cache: the log must be read.
    NeedsLog,
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
    /// The partition is offline (its log dir failed): Kafka answers KAFKA_STORAGE_ERROR for a
    /// fetch from an offline partition (`ReplicaManager.getPartitionOrError`).
    #[error("partition is offline after a storage error: {0}")]
    Offline(#[source] Arc<LogError>),
}

/// Settings a partition needs, derived from the topic config.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionConfig {
    /// `max.message.bytes`: largest batch accepted, in bytes.
    pub max_message_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// Bytes of recent batches kept in memory for fetches (`ringtail.partition.cache.bytes`).
    pub cache_bytes: usize,
    pub log: LogConfig,
    // --- Record validation on append (Kafka's LogValidator; `log_validator`) ---
    /// `cleanup.policy` contains `compact`: every record needs a key.
    pub compacted: bool,
    /// `compression.type`: the codec batches are stored with; `None` for `producer`.
    pub compression: Option<Compression>,
    /// `compression.gzip.level`, `None` for the codec's default.
    pub compression_gzip_level: Option<i32>,
    /// `compression.zstd.level`.
    pub compression_zstd_level: Option<i32>,
    /// `message.timestamp.before.max.ms` (KIP-937), ms; `i64::MAX` is no bound.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (KIP-937), ms.
    pub timestamp_after_max_ms: i64,
    /// `min.insync.replicas`: acks=all needs this many in-sync replicas (one here).
    pub min_insync_replicas: i32,
}

impl PartitionConfig {
    pub fn new(topic: &TopicConfig, cache_bytes: usize) -> PartitionConfig {
        PartitionConfig {
            max_message_bytes: topic.max_message_bytes.max(0) as usize,
            log_append_time: topic.message_timestamp_type == TimestampType::LogAppendTime,
            cache_bytes,
            log: LogConfig {
                segment_bytes: topic.segment_bytes.max(0) as u64,
                segment_ms: roll_ms(topic),
                index_interval_bytes: topic.index_interval_bytes.max(0) as u32,
                segment_index_bytes: topic.segment_index_bytes.max(0) as u64,
                preallocate: topic.preallocate,
            },
            compacted: topic.cleanup_policy != CleanupPolicy::Delete,
            compression: match topic.compression_type {
                CompressionType::Producer => None,
                CompressionType::Uncompressed => Some(Compression::None),
                CompressionType::Gzip => Some(Compression::Gzip),
                CompressionType::Snappy => Some(Compression::Snappy),
                CompressionType::Lz4 => Some(Compression::Lz4),
                CompressionType::Zstd => Some(Compression::Zstd),
            },
            compression_gzip_level: (topic.compression_gzip_level > 0)
                .then_some(topic.compression_gzip_level),
            compression_zstd_level: Some(topic.compression_zstd_level),
            timestamp_before_max_ms: topic.message_timestamp_before_max_ms,
            timestamp_after_max_ms: topic.message_timestamp_after_max_ms,
            min_insync_replicas: topic.min_insync_replicas,
        }
    }
}

/// The segment roll time of a topic, ms: `segment.ms`, capped by `max.compaction.lag.ms` on
/// compacted topics so that records become cleanable in time (Kafka's `LogConfig.maxSegmentMs`).
fn roll_ms(topic: &TopicConfig) -> u64 {
    let compact = matches!(
        topic.cleanup_policy,
        crate::config::CleanupPolicy::Compact | crate::config::CleanupPolicy::CompactDelete
    );
    let segment_ms = topic.segment_ms.max(0);
    if compact && topic.max_compaction_lag_ms > 0 {
        segment_ms.min(topic.max_compaction_lag_ms) as u64
    } else {
        segment_ms as u64
    }
}

/// One partition log with its write pipeline. Lives on its owning shard only.
pub struct Partition {
    pub topic: String,
    pub partition: i32,
    pub topic_id: Uuid,
    /// Replaced live by [`Partition::set_config`] (topic configs altered at run time); read
    /// through [`Partition::config`] on every use.
    config: RefCell<PartitionConfig>,
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
    /// Why the partition is offline (the first write or sync error), if it is.
    offline: RefCell<Option<Arc<LogError>>>,
    /// This topic's counters on this shard (bytes in/out, messages in), resolved at open.
    topic_metrics: Rc<crate::metrics::TopicCounters>,
    /// The partition leader epoch from the metadata, stamped on every appended batch
    /// ([`Partition::become_leader`]; -1 until then).
    leader_epoch: Cell<i32>,
    /// Ongoing transactions and coordinator epochs (`transactions`, KIP-98).
    transactions: RefCell<transactions::TransactionState>,
    /// Base offset of the active segment when the last roll snapshot was written (at open: the
    /// active segment then); the writer takes one when the log has rolled past it.
    snapshot_segment: Cell<i64>,
    /// Bytes written since the last recovery checkpoint started ([`Partition::checkpoint`]).
    bytes_since_checkpoint: Cell<u64>,
    /// A recovery checkpoint is running.
    checkpoint_running: Cell<bool>,
    /// Bytes written between two recovery checkpoints ([`checkpoint_bytes_for`] the segment
    /// size; smaller in unit tests).
    checkpoint_bytes: Cell<u64>,
}

impl Partition {
    /// Opens (recovering when `recover`) the log in `dir` and rebuilds producer state from the
    /// newest batch headers ([`Log::tail_batch_headers`]) after an unclean shutdown.
    pub async fn open(
        topic: &str,
        partition: i32,
        topic_id: Uuid,
        dir: PathBuf,
        config: PartitionConfig,
        recover: bool,
    ) -> Result<Rc<Partition>, LogError> {
        let log = Log::open(dir, config.log.clone(), recover).await?;
        let (producers, transactions) = load_producers(&log, topic, partition, recover).await?;
        let end = log.log_end_offset();
        let log_active_base = log.active_segment_base_offset();
        let checkpoint_bytes = checkpoint_bytes_for(config.log.segment_bytes);
        Ok(Rc::new(Partition {
            topic: topic.to_string(),
            partition,
            topic_id,
            cache: RefCell::new(TailCache::new(config.cache_bytes)),
            config: RefCell::new(config),
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
            topic_metrics: crate::metrics::topic_counters(topic),
            leader_epoch: Cell::new(-1),
            transactions: RefCell::new(transactions),
            snapshot_segment: Cell::new(log_active_base),
            bytes_since_checkpoint: Cell::new(0),
            checkpoint_running: Cell::new(false),
            checkpoint_bytes: Cell::new(checkpoint_bytes),
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

    /// The partition went offline after a write or fdatasync failure.
    pub fn is_offline(&self) -> bool {
        self.offline.borrow().is_some()
    }

    /// Changes the tail cache's bound (at most the configured `cache_bytes`), dropping the oldest
    /// batches beyond it now.
    pub fn set_cache_bytes(&self, max_bytes: usize) {
        self.cache
            .borrow_mut()
            .set_max_bytes(max_bytes.min(self.config.borrow().cache_bytes));
    }

    /// The settings in effect now (a copy; the topic config may change between two calls).
    pub fn config(&self) -> PartitionConfig {
        self.config.borrow().clone()
    }

    /// Replaces the partition's settings live (IncrementalAlterConfigs / AlterConfigs of its
    /// topic, or a dynamic broker default): the next append validates and stamps by them, the
    /// log rolls and indexes by the new [`LogConfig`] from its next append on. The tail cache
    /// bound set by [`Partition::set_cache_bytes`] is kept. Refused log settings leave both
    /// configs unchanged.
    pub fn set_config(&self, config: PartitionConfig) -> Result<(), LogError> {
        self.log.set_config(config.log.clone())?;
        self.checkpoint_bytes
            .set(checkpoint_bytes_for(config.log.segment_bytes));
        let cache_bytes = self.config.borrow().cache_bytes;
        *self.config.borrow_mut() = PartitionConfig {
            cache_bytes,
            ..config
        };
        Ok(())
    }

    /// Validates and assigns offsets to every batch in `records`, synchronously.
    ///
    /// Either all batches are accepted or none is. `now_ms` is the broker's clock, used for
    /// LogAppendTime topics. `max_message_bytes` (Kafka's `LogValidator`) bounds each batch.
    pub fn append(self: &Rc<Self>, records: &[u8], now_ms: i64) -> Result<Appended, AppendError> {
        self.check_log_dir();
        if let Some(error) = self.offline.borrow().as_ref() {
            return Err(AppendError::Offline(error.clone()));
        }
        let headers = self.validate(records)?;
        // Record-level rules (compaction keys, timestamp bounds, recompression): decided per
        // batch from its header; most batches are never decoded (`log_validator`).
        let rewritten = self.validate_records(records, &headers, now_ms)?;
        let (records, headers) = match &rewritten {
            Some((bytes, headers)) => (bytes.as_slice(), headers.clone()),
            None => (records, headers),
        };
        if let Some(duplicate) = self.check_sequences(&headers)? {
            return Ok(duplicate);
        }
        self.transactions
            .borrow()
            .check_data_batches(&headers, self.next_offset.get(), || {
                format!("{}-{}", self.topic, self.partition)
            })?;
        Ok(self.enqueue(records, &headers, now_ms))
    }

    /// Assigns offsets to validated `headers` (tiling `records`), stamps the leader epoch (and
    /// LogAppendTime), updates producer and transaction state, queues the bytes for the writer.
    fn enqueue(
        self: &Rc<Self>,
        records: &[u8],
        headers: &[RecordBatchHeader],
        now_ms: i64,
    ) -> Appended {
        let base_offset = self.next_offset.get();
        let log_append_time = self.config.borrow().log_append_time;
        let mut pending = self.pending.borrow_mut();
        let mut position = 0;
        for header in headers {
            let size = header.size_bytes();
            let offset = self.next_offset.get();
            let start = pending.chunk.len();
            pending
                .chunk
                .extend_from_slice(&records[position..position + size]);
            let stored = &mut pending.chunk[start..];
            record_batch::set_base_offset(stored, offset);
            record_batch::set_partition_leader_epoch(stored, self.leader_epoch.get());
            let mut assigned = *header;
            assigned.base_offset = offset;
            assigned.partition_leader_epoch = self.leader_epoch.get();
            if log_append_time {
                // The log indexes the header it is given: it must carry the new timestamp.
                set_log_append_time(stored, now_ms);
                assigned = RecordBatchHeader::parse(stored).expect("validated batch header");
                assert_eq!(assigned.max_timestamp, now_ms, "LogAppendTime stored");
            }
            pending.headers.push(assigned);
            if assigned.is_control() {
                ProducerState::record_marker(&mut self.producers.borrow_mut(), &assigned, now_ms);
            } else if assigned.has_producer_id() {
                ProducerState::record(&mut self.producers.borrow_mut(), &assigned, offset, now_ms);
                self.transactions.borrow_mut().on_data_batch(&assigned);
            }
            assert_eq!(
                assigned.base_offset, offset,
                "invariant: offsets are contiguous (a batch gets the next offset)"
            );
            self.next_offset.set(assigned.next_offset());
            position += size;
        }
        assert_eq!(
            position,
            records.len(),
            "invariant: the validated batches tile the request's records"
        );
        drop(pending);
        self.record_append_metrics(records.len(), headers);
        if !self.writer_running.replace(true) {
            glommio::spawn_local(self.clone().run_writer()).detach();
        }
        Appended::New {
            base_offset,
            last_offset: self.next_offset.get() - 1,
            log_append_time: if log_append_time { now_ms } else { -1 },
        }
    }

    /// acks=all needs the effective `min.insync.replicas` in-sync replicas, before anything is
    /// appended (Kafka's `Partition.appendRecordsToLeader` / `isUnderMinIsr`). As in Kafka 4,
    /// the effective minimum is `min(min.insync.replicas, replication factor)`
    /// (`Partition.effectiveMinIsr`): a larger setting does not refuse writes to a partition
    /// with fewer replicas. This node is the only replica and always in sync, so today this never
    /// refuses; it is where replication will make the setting bite. acks=0/1 are not checked.
    pub fn check_min_insync_replicas(&self, node_id: i32) -> Result<(), AppendError> {
        const REPLICAS: i32 = 1;
        const IN_SYNC_REPLICAS: i32 = 1;
        let min_insync_replicas = self.config.borrow().min_insync_replicas;
        if IN_SYNC_REPLICAS < min_insync_replicas.min(REPLICAS) {
            return Err(AppendError::NotEnoughReplicas {
                node_id,
                min_insync_replicas,
                topic_partition: format!("{}-{}", self.topic, self.partition),
            });
        }
        Ok(())
    }

    /// Resolves once every offset up to `last_offset` is written (acks=1).
    pub async fn wait_written(&self, last_offset: i64) -> Result<(), StorageError> {
        if self.high_watermark.get() > last_offset {
            return Ok(());
        }
        if let Some(error) = self.offline_error() {
            return Err(error);
        }
        let waiter = self.written_waiters.wait_until(last_offset + 1);
        match waiter.await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.offline_error().unwrap_or(StorageError::Closed)),
        }
    }

    /// Resolves once fdatasync covered `last_offset` (acks=-1). Waits for the write first.
    ///
    /// Group commit: while one sync runs, later callers wait for it, then one of them starts the
    /// next sync, which covers all of them.
    pub async fn wait_durable(&self, last_offset: i64) -> Result<(), StorageError> {
        // A sync only covers written batches: without this, a caller ahead of the writer would
        // loop on syncs that complete without awaiting and never let the writer run.
        self.wait_written(last_offset).await?;
        loop {
            if self.durable_offset.get() > last_offset {
                return Ok(());
            }
            if let Some(error) = self.offline_error() {
                return Err(error);
            }
            if self.sync_running.get() {
                let (tx, rx) = oneshot::channel();
                self.sync_waiters.borrow_mut().push(tx);
                let _ = rx.await;
                continue;
            }
            self.sync_running.set(true);
            let target = self.high_watermark.get();
            let flush_started = std::time::Instant::now();
            let result = self.log.flush().await;
            crate::metrics::with(|m| m.log_flushed(flush_started.elapsed()));
            self.sync_running.set(false);
            match result {
                Ok(()) => {
                    self.durable_offset
                        .set(self.durable_offset.get().max(target));
                    self.assert_offsets();
                }
                Err(e) => self.go_offline(e),
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
        self.read_isolated(offset, max_bytes, false).await
    }

    /// [`Self::read`] bounded by `max_offset` (at most the high watermark: the last stable
    /// offset for read_committed) from the segment files: no batch with a base offset at or
    /// above it is returned. Called only after [`Self::read_below_now`] answered
    /// [`ReadNow::NeedsLog`] with nothing awaited since, so its checks (offline, range, nothing
    /// new, tail cache) hold and are not repeated.
    async fn read_from_log(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<FetchRead, ReadError> {
        let high_watermark = self.high_watermark.get();
        let max_offset = max_offset.min(high_watermark);
        let last_stable_offset = self.last_stable_offset();
        let log_start_offset = self.log.log_start_offset();
        let records = match self.log.read(offset, max_bytes, max_offset).await {
            Ok(records) => records,
            Err(error) => {
                // Kafka's `maybeHandleIOException` on a read: an I/O error takes the log dir
                // offline (LogDirFailureChannel), as a failed write does.
                if matches!(error, LogError::Io { .. } | LogError::ShortWrite { .. }) {
                    self.go_offline(LogError::io(
                        "read",
                        self.log_dir(),
                        std::io::Error::other(error.to_string()),
                    ));
                }
                return Err(ReadError::Log(error));
            }
        };
        crate::metrics::with(|m| m.tail_cache(false));
        self.topic_metrics.record_out(records.len());
        Ok(FetchRead {
            records,
            high_watermark,
            log_start_offset,
            last_stable_offset,
            aborted_transactions: None,
        })
    }

    /// What a read bounded by `max_offset` answers without I/O: an offline partition, an offset out of
    /// range, nothing new (the offset at `max_offset`), or batches the tail cache holds.
    /// [`ReadNow::NeedsLog`] when the segment files must be read.
    fn read_below_now(&self, offset: i64, max_bytes: usize, max_offset: i64) -> ReadNow {
        self.check_log_dir();
        if let Some(error) = self.offline.borrow().as_ref() {
            return ReadNow::Done(Err(ReadError::Offline(error.clone())));
        }
        let high_watermark = self.high_watermark.get();
        let max_offset = max_offset.min(high_watermark);
        let last_stable_offset = self.last_stable_offset();
        let log_start_offset = self.log.log_start_offset();
        if offset < log_start_offset || offset > high_watermark {
            return ReadNow::Done(Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            }));
        }
        let records = if offset >= max_offset {
            Bytes::new()
        } else {
            let Some(cached) = self.cache.borrow().read(offset, max_bytes, max_offset) else {
                return ReadNow::NeedsLog;
            };
            crate::log::assert_read(&cached, offset, max_bytes, max_offset);
            crate::metrics::with(|m| m.tail_cache(true));
            self.topic_metrics.record_out(cached.len());
            cached
        };
        ReadNow::Done(Ok(FetchRead {
            records,
            high_watermark,
            log_start_offset,
            last_stable_offset,
            aborted_transactions: None,
        }))
    }

    /// Deletes the oldest segments beyond `retention_ms` / `retention_bytes` (-1 = unlimited),
    /// up to the high watermark, and advances the log start offset; returns the number
    /// deleted. When all of them expired the active one goes too, after a roll, and the log
    /// start offset becomes the log end offset, as in Kafka ([`Log::apply_retention`]).
    /// Reads below the new log start offset fail with `OffsetOutOfRange`, the tail cache's
    /// included ([`Self::read`] checks the log start first); cached batches below it are dropped.
    pub async fn apply_retention(
        &self,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> Result<usize, LogError> {
        let deleted = self
            .log
            .apply_retention(retention_ms, retention_bytes, self.high_watermark())
            .await?;
        if deleted > 0 {
            self.cache
                .borrow_mut()
                .drop_below(self.log.log_start_offset());
        }
        Ok(deleted)
    }

    /// One log-cleaner pass over this partition ([`Log::clean`]); `first_dirty_offset` is its
    /// checkpointed dirty start. Cached tail batches below the cleaned range are dropped, so
    /// reads there see the cleaned segments.
    pub async fn clean(
        &self,
        config: &crate::log::CleanerConfig,
        first_dirty_offset: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<crate::log::CleanSummary>, LogError> {
        let summary = self.log.clean(config, first_dirty_offset, now_ms).await?;
        if let Some(summary) = &summary {
            self.cache
                .borrow_mut()
                .drop_below(summary.cleaned_end_offset);
        }
        Ok(summary)
    }

    /// Forgets producers whose last append was [`PRODUCER_ID_EXPIRATION_MS`] or more before
    /// `now_ms` (Kafka's `ProducerStateManager.removeExpiredProducers`); their next batch
    /// is then accepted as from an unknown producer. Returns how many were removed.
    pub fn expire_producers(&self, now_ms: i64) -> usize {
        let mut producers = self.producers.borrow_mut();
        let before = producers.len();
        let mut transactions = self.transactions.borrow_mut();
        producers.retain(|id, state| {
            // Kafka never expires a producer with an ongoing transaction (`isProducerExpired`).
            transactions.has_ongoing(*id)
                || now_ms.saturating_sub(state.last_append_ms) < PRODUCER_ID_EXPIRATION_MS
        });
        transactions.retain_producers(|id| producers.contains_key(&id));
        before - producers.len()
    }

    /// Flushes and closes the log (clean shutdown). Waits for the in-flight write first, then
    /// leaves a producer-state snapshot so a clean restart still recognizes retried batches
    /// without reading the log (a failed snapshot only costs that read).
    pub async fn close(&self) -> Result<(), LogError> {
        let pending_end = self.next_offset.get() - 1;
        let written = self.wait_written(pending_end).await.is_ok();
        if written && self.offline.borrow().is_none() && !self.log.is_closed() {
            let end = self.log.log_end_offset();
            assert_eq!(
                end,
                self.next_offset.get(),
                "invariant: at close every assigned offset is written"
            );
            let bytes = self.producer_snapshot().encode();
            if let Err(e) = self.log.write_producer_snapshot(end, &bytes).await {
                tracing::warn!(topic = %self.topic, partition = self.partition, "no producer-state snapshot: {e}");
            }
        }
        self.log.close().await
    }

    /// The producer and transaction state now: after every batch assigned an offset below
    /// `next_offset` (pending ones included).
    fn producer_snapshot(&self) -> ProducerSnapshot {
        ProducerSnapshot {
            aborted_index: Some(self.log.aborted_index_digest(self.next_offset.get())),
            producers: self
                .producers
                .borrow()
                .iter()
                .map(|(&id, state)| (id, state.clone()))
                .collect(),
            transactions: self.transactions.borrow().snapshot(),
        }
    }

    /// After a roll: stores the producer state as a snapshot at the next offset to assign, so
    /// opening after a crash replays only the batches after it (Kafka's `UnifiedLog.roll` takes
    /// one at every roll). Put off to a later write while a transaction marker is undecided:
    /// recovery trusts the `.txnindex` entries below a snapshot, and an abort's entry is
    /// durable only once its marker is. A failed write only costs a longer replay (warned).
    async fn snapshot_after_roll(&self) {
        if self.offline.borrow().is_some() || self.transactions.borrow().has_undecided() {
            return;
        }
        self.snapshot_segment
            .set(self.log.active_segment_base_offset());
        self.write_snapshot("the roll").await;
    }

    /// Writes the producer-state snapshot at the next offset to assign, unless a marker is
    /// undecided or the partition is offline ([`Self::snapshot_after_roll`]); a failure is
    /// warned about (`after` names the occasion).
    async fn write_snapshot(&self, after: &str) {
        if self.offline.borrow().is_some() || self.transactions.borrow().has_undecided() {
            return;
        }
        let offset = self.next_offset.get();
        let bytes = self.producer_snapshot().encode();
        if let Err(e) = self.log.write_producer_snapshot(offset, &bytes).await {
            tracing::warn!(topic = %self.topic, partition = self.partition, offset, "no producer-state snapshot after {after}: {e}");
        }
    }

    /// A recovery checkpoint, every [`checkpoint_bytes_for`] `segment.bytes` written (64 MiB
    /// for the default 1 GiB): fdatasync what is
    /// written (group-committed with acks=all waiters), write the active segment's index files
    /// with the entries below the durable offset, then a producer-state snapshot. After a
    /// crash, recovery then CRC-scans and replays about that many bytes of the active segment
    /// instead of all of it (up to `segment.bytes`). Kafka gets the same bound from
    /// `log.flush.offset.checkpoint.interval.ms` and its snapshots at roll; a failure here
    /// only costs a longer recovery (warned), except a failed fdatasync, which takes the
    /// partition offline as any failed fdatasync does.
    async fn checkpoint(self: Rc<Self>) {
        let written = self.high_watermark.get();
        if written > 0 && self.wait_durable(written - 1).await.is_ok() {
            let durable = self.durable_offset.get();
            match self.log.checkpoint_active_indexes(durable).await {
                Ok(_) => self.write_snapshot("a recovery checkpoint").await,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, partition = self.partition, "no recovery checkpoint: {e}")
                }
            }
        }
        self.checkpoint_running.set(false);
    }

    fn validate(&self, records: &[u8]) -> Result<Vec<RecordBatchHeader>, AppendError> {
        if records.is_empty() {
            return Err(AppendError::EmptyRecords);
        }
        let max_message_bytes = self.config.borrow().max_message_bytes;
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
            let header = validate_batch(&rest[..size], max_message_bytes)?;
            if header.is_control() {
                return Err(AppendError::ControlBatch {
                    topic_partition: format!("{}-{}", self.topic, self.partition),
                });
            }
            headers.push(header);
            position += size;
        }
        Ok(headers)
    }

    /// Applies [`log_validator`] to the batches that need it: `None` when every batch is kept as
    /// sent, else the request's batches with the recompressed ones replaced, and their headers.
    /// Any refused record refuses the whole request.
    #[allow(clippy::type_complexity)]
    fn validate_records(
        &self,
        records: &[u8],
        headers: &[RecordBatchHeader],
        now_ms: i64,
    ) -> Result<Option<(Vec<u8>, Vec<RecordBatchHeader>)>, AppendError> {
        let config = &*self.config.borrow();
        if !headers
            .iter()
            .any(|h| log_validator::needs_record_pass(config, h, now_ms))
        {
            return Ok(None);
        }
        let topic_partition = format!("{}-{}", self.topic, self.partition);
        let mut scratch = Vec::new();
        let mut out = Vec::with_capacity(records.len());
        let mut out_headers = Vec::with_capacity(headers.len());
        let mut position = 0;
        for header in headers {
            let batch = &records[position..position + header.size_bytes()];
            position += header.size_bytes();
            let rebuilt = if log_validator::needs_record_pass(config, header, now_ms) {
                log_validator::validate_records(
                    config,
                    &topic_partition,
                    batch,
                    header,
                    now_ms,
                    &mut scratch,
                )?
            } else {
                None
            };
            match rebuilt {
                Some(bytes) => {
                    let rebuilt_header = RecordBatchHeader::parse(&bytes)
                        .expect("invariant: a recompressed batch has a valid header");
                    debug_assert_eq!(
                        (rebuilt_header.record_count, rebuilt_header.max_timestamp),
                        (header.record_count, header.max_timestamp),
                        "invariant: recompression keeps the records and timestamps"
                    );
                    out.extend_from_slice(&bytes);
                    out_headers.push(rebuilt_header);
                }
                None => {
                    out.extend_from_slice(batch);
                    out_headers.push(*header);
                }
            }
        }
        Ok(Some((out, out_headers)))
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
            assert_eq!(
                first,
                self.high_watermark.get(),
                "invariant: the pending chunk starts at the high watermark"
            );
            match self.log.append(&chunk, &headers).await {
                Ok(()) => {
                    let end = headers.last().expect("non-empty").next_offset();
                    assert_eq!(
                        self.log.log_end_offset(),
                        end,
                        "invariant: the log ends where the written batches end"
                    );
                    self.cache.borrow_mut().push(&chunk, &headers);
                    self.high_watermark.set(end);
                    self.assert_offsets();
                    self.written_waiters.notify(end);
                    if self.log.active_segment_base_offset() != self.snapshot_segment.get() {
                        self.snapshot_after_roll().await;
                    }
                    let since = self.bytes_since_checkpoint.get() + chunk.len() as u64;
                    self.bytes_since_checkpoint.set(since);
                    if since >= self.checkpoint_bytes.get() && !self.checkpoint_running.get() {
                        self.bytes_since_checkpoint.set(0);
                        self.checkpoint_running.set(true);
                        glommio::spawn_local(self.clone().checkpoint()).detach();
                    }
                }
                Err(e) => {
                    self.go_offline(e);
                    self.writer_running.set(false);
                    return;
                }
            }
        }
    }

    /// Takes the partition offline after `error` (a failed write or fdatasync; the first one
    /// is kept): pending batches are dropped and every waiter fails.
    /// Counts an accepted produce: its bytes and records for the topic, its batches by codec.
    fn record_append_metrics(&self, bytes: usize, headers: &[RecordBatchHeader]) {
        let records: u64 = headers.iter().map(|h| h.record_count.max(0) as u64).sum();
        self.topic_metrics.record_in(bytes, records);
        crate::metrics::with(|m| {
            for header in headers {
                m.produce_batch(header.compression().map_or(usize::MAX, |c| c as usize));
            }
        });
    }

    /// The log dir this partition's directory is in (`log.dirs` entry).
    pub fn log_dir(&self) -> &std::path::Path {
        self.log.dir().parent().unwrap_or(self.log.dir())
    }

    /// Takes the partition offline if its log dir went offline (another log in it failed,
    /// [`crate::log::log_dirs::mark_offline`]); one atomic load while no dir ever failed.
    pub fn check_log_dir(&self) {
        if self.offline.borrow().is_some() {
            return;
        }
        if let Some(reason) = crate::log::log_dirs::offline_reason(self.log.dir()) {
            self.go_offline(LogError::io(
                "log dir offline",
                self.log_dir(),
                std::io::Error::other(reason),
            ));
        }
    }

    fn go_offline(&self, error: LogError) {
        if self.offline.borrow().is_none() {
            // Kafka's LogDirFailureChannel: a storage error on one log takes its whole dir
            // offline (the other partitions in it follow, `check_log_dir`).
            crate::log::log_dirs::mark_offline(self.log.dir(), &error.to_string());
            crate::metrics::health::partition_offline(
                &self.topic,
                self.partition,
                &error.to_string(),
            );
            tracing::error!(
                topic = %self.topic,
                partition = self.partition,
                "partition goes offline: {error}; acknowledged data is kept, new produces get KAFKA_STORAGE_ERROR"
            );
        }
        self.offline.borrow_mut().get_or_insert(Arc::new(error));
        self.pending.borrow_mut().headers.clear();
        self.pending.borrow_mut().chunk.clear();
        self.written_waiters.fail_all();
        for waiter in self.sync_waiters.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Asserts the offset order of the module docs (invariant): `durable_offset <=
    /// high_watermark <= log_end_offset <= next_offset` and `log_start_offset <=
    /// high_watermark`. Checked after each write and each fdatasync.
    fn assert_offsets(&self) {
        let durable = self.durable_offset.get();
        let high_watermark = self.high_watermark.get();
        let log_end_offset = self.log.log_end_offset();
        assert!(
            durable <= high_watermark,
            "invariant: durable_offset {durable} <= high_watermark {high_watermark}"
        );
        assert!(
            high_watermark <= log_end_offset,
            "invariant: high_watermark {high_watermark} <= log_end_offset {log_end_offset}"
        );
        assert!(
            log_end_offset <= self.next_offset.get(),
            "invariant: log_end_offset {log_end_offset} <= next offset to assign {}",
            self.next_offset.get()
        );
        assert!(
            self.log.log_start_offset() <= high_watermark,
            "invariant: log_start_offset {} <= high_watermark {high_watermark}",
            self.log.log_start_offset()
        );
    }

    fn offline_error(&self) -> Option<StorageError> {
        self.offline.borrow().clone().map(StorageError::Offline)
    }
}

/// Idempotent-producer and transaction state at open (Kafka's `LogLoader` /
/// `ProducerStateManager.truncateAndReload`): the newest usable snapshot (`Log::open` removed
/// those beyond the log end and below the first segment) plus a replay of the batch headers
/// after it. A snapshot is unusable when its checksum or contents are bad (warned and
/// removed), or when it is an unchecksummed one of an older version anywhere but at the log end
/// of a clean close. After an unclean shutdown the aborted-transaction index is rebuilt from
/// the markers after the snapshot; the entries below it were durable before it was written.
///
/// Without a usable snapshot, or when a `.txnindex` was damaged, state is rebuilt from the log
/// (`transactions::rebuild_from_log`: the headers of every segment), and after an unclean
/// shutdown or damage the aborted index of every segment is rebuilt from the markers too.
async fn load_producers(
    log: &Log,
    topic: &str,
    partition: i32,
    recover: bool,
) -> Result<(HashMap<i64, ProducerState>, transactions::TransactionState), LogError> {
    let txn_index_damaged = log.txn_index_damaged();
    // Rebuilt producers count as active now: record timestamps are the clients'.
    let opened_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let snapshots = if txn_index_damaged {
        Vec::new()
    } else {
        log.producer_snapshots()?
    };
    for (offset, path) in snapshots.into_iter().rev() {
        let decoded = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                ProducerSnapshot::decode(&bytes, !recover && offset == log.log_end_offset())
            });
        match decoded {
            Ok(snapshot) if !snapshot.matches_aborted_index(log, offset) => {
                tracing::warn!(topic, partition, path = %path.display(), "the transaction index disagrees with the producer-state snapshot: rebuilding it from the log's markers");
                let (producers, transactions, aborted) =
                    transactions::rebuild_from_log(log, PRODUCER_STATE_MIN_BATCHES, 0, opened_ms)
                        .await?;
                log.replace_aborted_txns_from(0, aborted)?;
                return Ok((producers, transactions));
            }
            Ok(snapshot) => {
                return replay_from_snapshot(log, snapshot, offset, recover, opened_ms).await;
            }
            Err(why) => {
                tracing::warn!(topic, partition, path = %path.display(), "ignoring producer-state snapshot: {why}");
                std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, e))?;
            }
        }
    }
    // After an unclean stop any `.txnindex` may be torn (a sealed segment's as well as the
    // active one's: an abort's entry is appended before its marker is durable), and a damaged
    // one lost entries: the aborted index is rebuilt from every marker in the log (the replay
    // reads every segment's headers anyway). Offset 0: every segment (entries below the log
    // start offset included, as `Log::open` loads them).
    let rebuild = recover || txn_index_damaged;
    let rebuild_from = if rebuild { 0 } else { log.log_end_offset() };
    let (producers, transactions, aborted) =
        transactions::rebuild_from_log(log, PRODUCER_STATE_MIN_BATCHES, rebuild_from, opened_ms)
            .await?;
    if rebuild {
        log.replace_aborted_txns_from(rebuild_from, aborted)?;
    }
    Ok((producers, transactions))
}

/// The state of `snapshot` (taken at `offset`) advanced by every batch at or after `offset`;
/// with `recover`, the aborted transactions of the markers replayed replace the index entries
/// from `offset` on.
async fn replay_from_snapshot(
    log: &Log,
    snapshot: ProducerSnapshot,
    offset: i64,
    recover: bool,
    opened_ms: i64,
) -> Result<(HashMap<i64, ProducerState>, transactions::TransactionState), LogError> {
    let state = transactions::TransactionState::from_snapshot(
        snapshot.transactions,
        log.log_start_offset(),
        log.log_end_offset(),
    );
    let mut producers: HashMap<i64, ProducerState> = snapshot.producers.into_iter().collect();
    let batches = log.batches_from(offset).await?;
    let mut replay = transactions::Replay::resume(state, offset);
    for (header, marker) in &batches {
        replay.apply(header, *marker);
        if !header.has_producer_id() {
            continue;
        }
        if header.is_control() {
            ProducerState::record_marker(&mut producers, header, opened_ms);
        } else {
            ProducerState::record(&mut producers, header, header.base_offset, opened_ms);
        }
    }
    if recover {
        log.replace_aborted_txns_from(offset, replay.aborted)?;
    }
    tracing::debug!(
        snapshot_offset = offset,
        batches = batches.len(),
        "producer and transaction state loaded from a snapshot and the batches after it"
    );
    Ok((producers, replay.state))
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

/// What [`Partition::close`] and [`Partition::snapshot_after_roll`] store through
/// [`Log::write_producer_snapshot`]: a first line [`PRODUCER_SNAPSHOT_TAG`] with the CRC-32C (8
/// hex digits) of the JSON that follows it. Versions before the tag wrote the JSON alone.
#[derive(serde::Serialize, serde::Deserialize)]
struct ProducerSnapshot {
    producers: Vec<(i64, ProducerState)>,
    /// Absent in snapshots of versions before transactions: no ongoing transaction.
    #[serde(default)]
    transactions: transactions::TransactionSnapshot,
    /// [`Log::aborted_index_digest`] below the snapshot's offset when it was taken; absent in
    /// older snapshots. Opening rebuilds the whole index when the segments still present
    /// disagree with it (a `.txnindex` lost or cut at an entry boundary, which its own
    /// length cannot show).
    #[serde(default)]
    aborted_index: Option<Vec<(i64, u32, u32)>>,
}

/// The first line of a producer-state snapshot, before the checksum's 8 hex digits.
const PRODUCER_SNAPSHOT_TAG: &str = "ringtail-producer-state-v1 crc32c=";

impl ProducerSnapshot {
    /// The file's bytes: the tag line, then the JSON.
    fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("producer state serializes");
        let mut bytes =
            format!("{PRODUCER_SNAPSHOT_TAG}{:08x}\n", crc32c::crc32c(&json)).into_bytes();
        bytes.extend_from_slice(&json);
        bytes
    }

    /// Parses a snapshot file; `legacy` allows an untagged one (an older version's clean
    /// close). Errors: why the bytes are not a whole, plausible snapshot.
    fn decode(bytes: &[u8], legacy: bool) -> Result<ProducerSnapshot, String> {
        let json = if bytes.first() == Some(&b'{') {
            if !legacy {
                return Err("an older version's unchecksummed snapshot, usable only at the log end of a clean close".into());
            }
            bytes
        } else {
            let newline = bytes
                .iter()
                .position(|&b| b == b'\n')
                .ok_or("no header line")?;
            let crc = std::str::from_utf8(&bytes[..newline])
                .ok()
                .and_then(|line| line.strip_prefix(PRODUCER_SNAPSHOT_TAG))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .ok_or("unknown header line")?;
            let json = &bytes[newline + 1..];
            if crc32c::crc32c(json) != crc {
                return Err("checksum mismatch".into());
            }
            json
        };
        let snapshot: ProducerSnapshot =
            serde_json::from_slice(json).map_err(|e| format!("bad JSON: {e}"))?;
        if !snapshot.is_plausible() {
            return Err("implausible contents".into());
        }
        Ok(snapshot)
    }

    /// Whether the aborted-transaction index below `offset` is the one the snapshot was taken
    /// with, in the segments still present (retention may have deleted older ones). A snapshot
    /// without a digest (an older version's) is trusted.
    fn matches_aborted_index(&self, log: &Log, offset: i64) -> bool {
        let Some(taken) = &self.aborted_index else {
            return true;
        };
        let first_base = log.first_segment_base_offset();
        let taken: Vec<(i64, u32, u32)> = taken
            .iter()
            .copied()
            .filter(|&(base, _, _)| base >= first_base)
            .collect();
        taken == log.aborted_index_digest(offset)
    }

    /// Read from disk: at most five batches per producer, one entry per producer id.
    fn is_plausible(&self) -> bool {
        let ids: std::collections::HashSet<i64> =
            self.producers.iter().map(|(id, _)| *id).collect();
        ids.len() == self.producers.len()
            && self
                .producers
                .iter()
                .all(|(id, state)| *id >= 0 && state.recent.len() <= PRODUCER_BATCHES_TO_RETAIN)
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct ProducerBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
    last_offset: i64,
}

/// Per (producer, partition) state: the epoch, last sequence and the last five batches.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ProducerState {
    epoch: i16,
    last_sequence: i32,
    recent: VecDeque<ProducerBatch>,
    /// Broker time of the producer's last append in ms (Kafka uses the batch timestamp, which a
    /// client replaying old data sets far in the past; the broker's clock cannot be).
    #[serde(default)]
    last_append_ms: i64,
    /// The largest timestamp of the producer's last batch or marker (DescribeProducers'
    /// `last_timestamp`, Kafka's `ProducerStateEntry.lastTimestamp`); -1 when unknown.
    #[serde(default = "no_timestamp")]
    last_timestamp: i64,
}

fn no_timestamp() -> i64 {
    -1
}

impl ProducerState {
    /// The producer's entry (created at the batch's epoch), noted as active at `now_ms` with
    /// the batch's timestamp; a new epoch forgets the batches and the sequence (Kafka's
    /// `ProducerStateEntry.maybeUpdateProducerEpoch`).
    fn touch<'a>(
        producers: &'a mut HashMap<i64, ProducerState>,
        header: &RecordBatchHeader,
        now_ms: i64,
    ) -> &'a mut ProducerState {
        let state = producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerState {
                epoch: header.producer_epoch,
                last_sequence: -1,
                recent: VecDeque::new(),
                last_append_ms: now_ms,
                last_timestamp: -1,
            });
        state.last_append_ms = now_ms;
        state.last_timestamp = header.max_timestamp;
        if header.producer_epoch != state.epoch {
            state.epoch = header.producer_epoch;
            state.last_sequence = -1;
            state.recent.clear();
        }
        state
    }

    /// Notes the batch `header` at `base_offset`, appended at broker time `now_ms`.
    fn record(
        producers: &mut HashMap<i64, ProducerState>,
        header: &RecordBatchHeader,
        base_offset: i64,
        now_ms: i64,
    ) {
        let state = ProducerState::touch(producers, header, now_ms);
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

    /// Notes a transaction marker of `header.producer_id` (Kafka's `ProducerStateEntry.update`):
    /// its epoch becomes the producer's, a new epoch forgets the batches and sequence (the next
    /// batch of that epoch starts at sequence 0).
    fn record_marker(
        producers: &mut HashMap<i64, ProducerState>,
        header: &RecordBatchHeader,
        now_ms: i64,
    ) {
        ProducerState::touch(producers, header, now_ms);
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
const _: () = assert!(WAITERS_PRUNE_AT > 0);

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

    fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes;
        self.evict();
    }

    fn evict(&mut self) {
        while self.bytes > self.max_bytes {
            match self.batches.pop_front() {
                Some((header, _)) => self.bytes -= header.size_bytes(),
                None => break,
            }
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
        self.evict();
    }

    /// Forgets batches that end below `offset` (the log start offset after retention).
    fn drop_below(&mut self, offset: i64) {
        while let Some((header, _)) = self.batches.front() {
            if header.last_offset() >= offset {
                break;
            }
            self.bytes -= header.size_bytes();
            self.batches.pop_front();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record_batch::{validate_batch, BatchIter};
    use crate::test_support::{encode_batch, BatchSpec};

    /// Runs `future` on a fresh executor with little pinned memory (`ulimit -l` is small).
    fn run<F: std::future::Future<Output = ()> + 'static>(
        make: impl FnOnce() -> F + Send + 'static,
    ) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .expect("executor")
            .run(make());
    }

    fn config(cache_bytes: usize, log_append_time: bool) -> PartitionConfig {
        PartitionConfig {
            max_message_bytes: 4096,
            log_append_time,
            cache_bytes,
            log: LogConfig {
                segment_bytes: 1 << 16,
                segment_ms: u64::MAX,
                index_interval_bytes: 256,
                segment_index_bytes: 1 << 16,
                preallocate: false,
            },
            compacted: false,
            compression: None,
            compression_gzip_level: None,
            compression_zstd_level: None,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            min_insync_replicas: 1,
        }
    }

    async fn open(dir: &std::path::Path, config: PartitionConfig, recover: bool) -> Rc<Partition> {
        Partition::open(
            "topic",
            0,
            Uuid::nil(),
            dir.join("topic-0"),
            config,
            recover,
        )
        .await
        .expect("open")
    }

    /// (producer_id, producer_epoch, base_sequence) of an idempotent producer.
    type Producer = (i64, i16, i32);
    const NO_PRODUCER: Producer = (-1, -1, -1);

    /// A batch of `count` records with `value_bytes` values, as kafka-protocol's producer
    /// encoder writes it; sequences wrap as `RecordBatchEncoder` computes them.
    fn encode(count: usize, value_bytes: usize, producer: Producer, control: bool) -> BytesMut {
        let (producer_id, producer_epoch, base_sequence) = producer;
        encode_batch(&BatchSpec {
            count,
            value_bytes,
            keyed: true,
            producer_id,
            producer_epoch,
            base_sequence,
            control,
            ..BatchSpec::default()
        })
    }

    fn batch(count: usize) -> BytesMut {
        encode(count, 20, NO_PRODUCER, false)
    }

    fn idempotent(count: usize, producer: Producer) -> BytesMut {
        encode(count, 20, producer, false)
    }

    fn new(base_offset: i64, last_offset: i64) -> Appended {
        Appended::New {
            base_offset,
            last_offset,
            log_append_time: -1,
        }
    }

    /// Every batch of `bytes`, CRC-checked, with nothing left over.
    fn batches(bytes: &[u8]) -> Vec<RecordBatchHeader> {
        let mut iter = BatchIter::with_crc(bytes);
        let headers: Vec<RecordBatchHeader> = iter.by_ref().map(|(_, h)| h).collect();
        assert!(iter.error().is_none(), "{:?}", iter.error());
        assert_eq!(iter.valid_bytes(), bytes.len(), "whole batches only");
        headers
    }

    #[test]
    fn append_assigns_contiguous_offsets_and_patches_base_offset() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let partition = open(dir.path(), config(0, false), false).await;
            let sent = [batch(3), batch(1), batch(5)];
            let mut expected_base = 0;
            for bytes in &sent {
                let count = RecordBatchHeader::parse(bytes).unwrap().record_count as i64;
                let appended = partition.append(bytes, 1).expect("append");
                assert_eq!(appended, new(expected_base, expected_base + count - 1));
                expected_base += count;
            }
            partition.wait_written(8).await.expect("written");
            assert_eq!(partition.high_watermark(), 9);
            let read = partition.read(0, 1 << 20).await.expect("read");
            assert_eq!((read.high_watermark, read.log_start_offset), (9, 0));
            let headers = batches(&read.records);
            let bases: Vec<i64> = headers.iter().map(|h| h.base_offset).collect();
            assert_eq!(bases, vec![0, 3, 4]);
            // Only base_offset differs from what the producer sent (it was 0 in each).
            let mut position = 0;
            for (bytes, header) in sent.iter().zip(&headers) {
                let stored = &read.records[position..position + header.size_bytes()];
                assert_eq!(&stored[8..], &bytes[8..]);
                position += header.size_bytes();
            }
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn one_request_with_several_batches() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let partition = open(dir.path(), config(0, false), false).await;
            partition.append(&batch(2), 1).expect("append");
            let request = [batch(4), batch(1), batch(3)].concat();
            assert_eq!(partition.append(&request, 1).expect("append"), new(2, 9));
            partition.wait_written(9).await.expect("written");
            let read = partition.read(2, 1 << 20).await.expect("read");
            let headers = batches(&read.records);
            let ranges: Vec<(i64, i64)> = headers
                .iter()
                .map(|h| (h.base_offset, h.last_offset()))
                .collect();
            assert_eq!(ranges, vec![(2, 5), (6, 6), (7, 9)]);
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn invalid_batches_are_rejected_and_nothing_is_appended() {
        type Matches = fn(&AppendError) -> bool;
        let good = batch(2);
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0x55;
        let too_large = encode(1, 5000, NO_PRODUCER, false);
        let control = encode(1, 0, (5, 0, 0), true);
        let cases: Vec<(&str, Vec<u8>, Matches)> = vec![
            ("empty", Vec::new(), |e| {
                matches!(e, AppendError::EmptyRecords)
            }),
            ("bad CRC", bad_crc.to_vec(), |e| {
                matches!(e, AppendError::InvalidBatch(BatchError::CrcMismatch { .. }))
            }),
            ("too large", too_large.to_vec(), |e| {
                matches!(e, AppendError::InvalidBatch(BatchError::TooLarge { .. }))
            }),
            ("control batch", control.to_vec(), |e| {
                matches!(e, AppendError::ControlBatch { .. })
            }),
            ("trailing bytes", [&good[..], &[0; 5]].concat(), |e| {
                matches!(e, AppendError::TrailingBytes(5))
            }),
            (
                "truncated second batch",
                [&good[..], &good[..70]].concat(),
                |e| matches!(e, AppendError::InvalidBatch(BatchError::Truncated { .. })),
            ),
            (
                "good then bad CRC",
                [&good[..], &bad_crc[..]].concat(),
                |e| matches!(e, AppendError::InvalidBatch(BatchError::CrcMismatch { .. })),
            ),
        ];
        run(move || async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let partition = open(dir.path(), config(1 << 20, false), false).await;
            partition.append(&good, 1).expect("first append");
            for (name, records, expected) in cases {
                let error = partition.append(&records, 1).expect_err(name);
                assert!(expected(&error), "{name}: unexpected {error:?}");
                assert_eq!(partition.next_offset.get(), 2, "{name}: nothing assigned");
                assert!(partition.producers.borrow().is_empty(), "{name}");
            }
            assert_eq!(partition.append(&good, 1).expect("append"), new(2, 3));
            partition.wait_written(3).await.expect("written");
            let read = partition.read(0, 1 << 20).await.expect("read");
            assert_eq!(batches(&read.records).len(), 2);
            partition.close().await.expect("close");
        });
    }

    #[derive(Debug)]
    enum Expect {
        New(i64, i64),
        Duplicate(i64, i64),
        OutOfOrder { expected: i32, received: i32 },
        OldEpoch { current: i16 },
    }

    /// Appends each request and checks the answer against Kafka's idempotence rules.
    async fn check_sequences(partition: &Rc<Partition>, steps: Vec<(&str, Vec<u8>, Expect)>) {
        for (name, records, expect) in steps {
            let got = partition.append(&records, 1);
            match (&expect, &got) {
                (Expect::New(base, last), Ok(got)) => assert_eq!(*got, new(*base, *last), "{name}"),
                (Expect::Duplicate(base, last), Ok(got)) => assert_eq!(
                    *got,
                    Appended::Duplicate {
                        base_offset: *base,
                        last_offset: *last
                    },
                    "{name}"
                ),
                (
                    Expect::OutOfOrder { expected, received },
                    Err(AppendError::OutOfOrderSequence {
                        expected: e,
                        received: r,
                        ..
                    }),
                ) => assert_eq!((e, r), (expected, received), "{name}"),
                (
                    Expect::OldEpoch { current },
                    Err(AppendError::InvalidProducerEpoch { current: c, .. }),
                ) => {
                    assert_eq!(c, current, "{name}")
                }
                _ => panic!("{name}: expected {expect:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn idempotent_producer_rules() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let partition = open(dir.path(), config(1 << 20, false), false).await;
            let p = |epoch: i16, sequence: i32, count: usize| {
                idempotent(count, (1, epoch, sequence)).to_vec()
            };
            let steps = vec![
                (
                    "unknown producer, any sequence",
                    p(0, 10, 2),
                    Expect::New(0, 1),
                ),
                ("next in sequence", p(0, 12, 3), Expect::New(2, 4)),
                (
                    "retry of the last batch",
                    p(0, 12, 3),
                    Expect::Duplicate(2, 4),
                ),
                (
                    "retry of an older batch",
                    p(0, 10, 2),
                    Expect::Duplicate(0, 1),
                ),
                (
                    "gap",
                    p(0, 16, 1),
                    Expect::OutOfOrder {
                        expected: 15,
                        received: 16,
                    },
                ),
                (
                    "overlapping, not a duplicate",
                    p(0, 11, 2),
                    Expect::OutOfOrder {
                        expected: 15,
                        received: 11,
                    },
                ),
                (
                    "newer epoch must start at 0",
                    p(1, 15, 1),
                    Expect::OutOfOrder {
                        expected: 0,
                        received: 15,
                    },
                ),
                ("newer epoch at 0", p(1, 0, 1), Expect::New(5, 5)),
                ("older epoch", p(0, 15, 1), Expect::OldEpoch { current: 1 }),
                (
                    "old epoch retry is not a duplicate",
                    p(0, 12, 3),
                    Expect::OldEpoch { current: 1 },
                ),
                (
                    "several batches in one request",
                    [p(1, 1, 2), p(1, 3, 1)].concat(),
                    Expect::New(6, 8),
                ),
                (
                    "gap inside one request",
                    [p(1, 4, 1), p(1, 6, 1)].concat(),
                    Expect::OutOfOrder {
                        expected: 5,
                        received: 6,
                    },
                ),
            ];
            check_sequences(&partition, steps).await;
            // Five more batches: sequences 4..=8 at offsets 9..=13; seq 1-2 (offsets 6-7)
            // and 3 (offset 8) fall out of the five remembered batches.
            for i in 0..5 {
                let expect = Expect::New(9 + i, 9 + i);
                check_sequences(&partition, vec![("fill", p(1, 4 + i as i32, 1), expect)]).await;
            }
            let steps = vec![
                (
                    "oldest remembered batch",
                    p(1, 4, 1),
                    Expect::Duplicate(9, 9),
                ),
                (
                    "newest remembered batch",
                    p(1, 8, 1),
                    Expect::Duplicate(13, 13),
                ),
                (
                    "forgotten batch",
                    p(1, 3, 1),
                    Expect::OutOfOrder {
                        expected: 9,
                        received: 3,
                    },
                ),
                (
                    "another producer is independent",
                    idempotent(1, (2, 7, 99)).to_vec(),
                    Expect::New(14, 14),
                ),
                (
                    "non-idempotent batches are never checked",
                    batch(1).to_vec(),
                    Expect::New(15, 15),
                ),
            ];
            check_sequences(&partition, steps).await;
            partition.wait_written(15).await.expect("written");
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let partition = open(dir.path(), config(1 << 20, false), false).await;
            let p = |sequence: i32, count: usize| idempotent(count, (3, 0, sequence)).to_vec();
            let steps = vec![
                ("up to i32::MAX", p(i32::MAX - 4, 3), Expect::New(0, 2)),
                ("across the wrap", p(i32::MAX - 1, 3), Expect::New(3, 5)),
                (
                    "duplicate across the wrap",
                    p(i32::MAX - 1, 3),
                    Expect::Duplicate(3, 5),
                ),
                ("after the wrap", p(1, 2), Expect::New(6, 7)),
                (
                    "gap after the wrap",
                    p(4, 1),
                    Expect::OutOfOrder {
                        expected: 3,
                        received: 4,
                    },
                ),
            ];
            check_sequences(&partition, steps).await;
            let steps = vec![
                (
                    "ends exactly at i32::MAX",
                    idempotent(1, (4, 0, i32::MAX - 1)).to_vec(),
                    Expect::New(8, 8),
                ),
                (
                    "ends exactly at i32::MAX 2",
                    idempotent(1, (4, 0, i32::MAX)).to_vec(),
                    Expect::New(9, 9),
                ),
                (
                    "wraps to 0",
                    idempotent(1, (4, 0, 0)).to_vec(),
                    Expect::New(10, 10),
                ),
            ];
            check_sequences(&partition, steps).await;
            partition.wait_written(10).await.expect("written");
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn wait_written_and_wait_durable_resolve_and_share_fdatasyncs() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let partition = open(dir.path(), config(1 << 20, false), false).await;
            // acks=-1 straight after append, before the writer task ran.
            let Appended::New { last_offset, .. } = partition.append(&batch(2), 1).unwrap() else {
                panic!("new batch expected");
            };
            partition.wait_durable(last_offset).await.expect("durable");
            assert_eq!(partition.durable_offset.get(), 2);
            assert_eq!(partition.log().flush_count(), 1);
            partition
                .wait_durable(last_offset)
                .await
                .expect("durable again");
            assert_eq!(partition.log().flush_count(), 1, "nothing new to sync");

            const PRODUCERS: i64 = 64;
            let tasks: Vec<_> = (0..PRODUCERS)
                .map(|i| {
                    let partition = partition.clone();
                    glommio::spawn_local(async move {
                        let delay = std::time::Duration::from_micros(200 * (i % 4) as u64);
                        glommio::timer::sleep(delay).await;
                        let appended = partition.append(&batch(1), 1).expect("append");
                        let Appended::New { last_offset, .. } = appended else {
                            panic!("new batch expected");
                        };
                        partition.wait_written(last_offset).await.expect("written");
                        assert!(partition.high_watermark() > last_offset);
                        partition.wait_durable(last_offset).await.expect("durable");
                        assert!(partition.durable_offset.get() > last_offset);
                    })
                })
                .collect();
            futures::future::join_all(tasks).await;
            assert_eq!(partition.high_watermark(), 2 + PRODUCERS);
            assert_eq!(partition.durable_offset.get(), 2 + PRODUCERS);
            let syncs = partition.log().flush_count() - 1;
            assert!(
                (1..=8).contains(&syncs),
                "{syncs} fdatasyncs for {PRODUCERS} acks=-1 produces"
            );
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn tail_cache_serves_the_same_bytes_as_the_log() {
        for cache_bytes in [1 << 20, 700] {
            run(move || async move {
                let dir = tempfile::tempdir().expect("tempdir");
                let partition = open(dir.path(), config(cache_bytes, false), false).await;
                for i in 0..12 {
                    partition.append(&batch(1 + i % 4), 1).expect("append");
                }
                let end = partition.next_offset.get();
                partition.wait_written(end - 1).await.expect("written");
                let mut served_by_cache = 0;
                for offset in 0..end {
                    for max_bytes in [1, 200, 450, 1 << 20] {
                        let read = partition.read(offset, max_bytes).await.expect("read");
                        let expected = partition.log().read(offset, max_bytes, end).await.unwrap();
                        assert_eq!(read.records, expected, "offset {offset}, max {max_bytes}");
                        let headers = batches(&read.records);
                        let first = headers.first().expect("KIP-74: at least one batch");
                        assert!(first.base_offset <= offset && offset <= first.last_offset());
                        if partition
                            .cache
                            .borrow()
                            .read(offset, max_bytes, end)
                            .is_some()
                        {
                            served_by_cache += 1;
                        }
                    }
                }
                assert!(served_by_cache > 0, "the cache served reads");
                if cache_bytes < 1000 {
                    assert!(
                        partition.cache.borrow().read(0, 1, end).is_none(),
                        "evicted"
                    );
                    assert!(partition.cache.borrow().bytes <= cache_bytes);
                }
                let at_end = partition.read(end, 1 << 20).await.expect("read at HW");
                assert!(at_end.records.is_empty());
                assert!(matches!(
                    partition.read(end + 1, 1 << 20).await,
                    Err(ReadError::OffsetOutOfRange { .. })
                ));
                partition.close().await.expect("close");
            });
        }
    }

    #[test]
    fn reads_race_with_appends() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            // A small cache: some reads are served from it, others await Log::read while
            // the writer task pushes to it.
            let partition = open(dir.path(), config(2000, false), false).await;
            const BATCHES: i64 = 300;
            let writer = {
                let partition = partition.clone();
                glommio::spawn_local(async move {
                    for i in 0..BATCHES {
                        let bytes = encode(2, 100, NO_PRODUCER, false);
                        let appended = partition.append(&bytes, 1).expect("append");
                        if i % 3 == 0 {
                            let Appended::New { last_offset, .. } = appended else {
                                panic!("new batch expected");
                            };
                            partition.wait_written(last_offset).await.expect("written");
                        }
                        futures_lite::future::yield_now().await;
                    }
                })
            };
            let readers: Vec<_> = (0..3)
                .map(|reader| {
                    let partition = partition.clone();
                    glommio::spawn_local(async move {
                        let mut reads = 0i64;
                        while partition.high_watermark() < 2 * BATCHES {
                            let high_watermark = partition.high_watermark();
                            if high_watermark > 0 {
                                let offset = (reads * 7 + reader) % high_watermark;
                                let read = partition.read(offset, 300).await.expect("read");
                                let headers = batches(&read.records);
                                let first = headers.first().expect("a batch");
                                assert!(first.base_offset <= offset);
                                assert!(offset <= first.last_offset());
                                for pair in headers.windows(2) {
                                    assert_eq!(pair[0].next_offset(), pair[1].base_offset);
                                }
                                let last = headers.last().expect("a batch");
                                assert!(last.next_offset() <= read.high_watermark);
                                reads += 1;
                            }
                            futures_lite::future::yield_now().await;
                        }
                        reads
                    })
                })
                .collect();
            writer.await;
            let reads: i64 = futures::future::join_all(readers).await.into_iter().sum();
            assert!(reads > 0, "reads ran while appends were in flight");
            assert!(
                partition.log().segment_count() > 1,
                "reads crossed segment rolls"
            );
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn log_append_time_sets_attribute_timestamp_and_valid_crc() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let partition = open(dir.path(), config(1 << 20, true), false).await;
            let now = 2_000_000_000_000;
            let request = [batch(3), batch(2)].concat();
            let appended = partition.append(&request, now).expect("append");
            let expected = Appended::New {
                base_offset: 0,
                last_offset: 4,
                log_append_time: now,
            };
            assert_eq!(appended, expected);
            partition.wait_written(4).await.expect("written");
            let read = partition.read(0, 1 << 20).await.expect("read");
            let from_log = partition.log().read(0, 1 << 20, 5).await.expect("log read");
            assert_eq!(read.records, from_log);
            let mut position = 0;
            for header in batches(&read.records) {
                let bytes = &read.records[position..position + header.size_bytes()];
                validate_batch(bytes, 1 << 20).expect("CRC and header still valid");
                assert!(header.is_log_append_time(), "attribute bit 3");
                assert_eq!(header.max_timestamp, now);
                assert_eq!(header.base_timestamp, 1_700_000_000_000, "kept");
                position += header.size_bytes();
            }
            // The log indexed the LogAppendTime, not the producer's CreateTime.
            let (_, timestamp) = partition
                .log()
                .max_timestamp_offset()
                .await
                .unwrap()
                .unwrap();
            assert_eq!(timestamp, now);
            let found = partition.log().offset_for_timestamp(now).await.unwrap();
            assert_eq!(found.map(|(offset, _)| offset), Some(0));
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn producer_state_is_rebuilt_by_recovery() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = |sequence: i32, count: usize| idempotent(count, (9, 2, sequence)).to_vec();
            {
                let partition = open(dir.path(), config(1 << 20, false), false).await;
                let steps = vec![
                    ("first", p(0, 2), Expect::New(0, 1)),
                    ("other producer", batch(1).to_vec(), Expect::New(2, 2)),
                    ("second", p(2, 3), Expect::New(3, 5)),
                ];
                check_sequences(&partition, steps).await;
                partition.wait_durable(5).await.expect("durable");
                // Crash: no close, the zero-padded last page stays on disk.
            }
            let partition = open(dir.path(), config(1 << 20, false), true).await;
            assert_eq!(partition.high_watermark(), 6);
            let steps = vec![
                ("retried after restart", p(2, 3), Expect::Duplicate(3, 5)),
                ("older retry", p(0, 2), Expect::Duplicate(0, 1)),
                (
                    "gap",
                    p(6, 1),
                    Expect::OutOfOrder {
                        expected: 5,
                        received: 6,
                    },
                ),
                (
                    "older epoch",
                    idempotent(1, (9, 1, 5)).to_vec(),
                    Expect::OldEpoch { current: 2 },
                ),
                ("next", p(5, 1), Expect::New(6, 6)),
            ];
            check_sequences(&partition, steps).await;
            partition.wait_written(6).await.expect("written");
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn a_crash_replays_only_the_batches_after_the_roll_snapshot() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = config(1 << 20, false);
            config.log.segment_bytes = 1024;
            let p = |sequence: i32| idempotent(2, (11, 0, sequence)).to_vec();
            let topic_dir = dir.path().join("topic-0");
            let snapshots = |dir: &std::path::Path| -> Vec<i64> {
                let mut found: Vec<i64> = std::fs::read_dir(dir)
                    .unwrap()
                    .filter_map(|e| {
                        let name = e.unwrap().file_name().to_string_lossy().into_owned();
                        name.strip_suffix(".producer-state")?.parse().ok()
                    })
                    .collect();
                found.sort();
                found
            };
            let end = {
                let partition = open(dir.path(), config.clone(), false).await;
                let mut sequence = 0;
                while partition.log().segment_count() < 4 {
                    let end = partition.next_offset.get();
                    partition.append(&p(sequence), 1).expect("append");
                    partition.wait_written(end + 1).await.expect("written");
                    sequence += 2;
                }
                let end = partition.next_offset.get();
                partition.wait_durable(end - 1).await.expect("durable");
                // Crash: no close. The newest snapshot is the last roll's, at most one batch
                // after the active segment's base (written after the batch that rolled).
                let active = partition.log().active_segment_base_offset();
                for _ in 0..500 {
                    // The newest file appears at its rename; the oldest goes only after the
                    // directory sync, so wait for both.
                    let taken = snapshots(&topic_dir);
                    if taken.last().is_some_and(|&o| o >= active)
                        && taken.len() <= crate::log::PRODUCER_SNAPSHOTS_KEPT
                    {
                        break;
                    }
                    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                }
                let taken = snapshots(&topic_dir);
                assert_eq!(taken.len(), 2, "the two newest rolls' snapshots: {taken:?}");
                assert!(
                    taken[1] >= active && taken[1] <= end,
                    "{taken:?} active {active} end {end}"
                );
                end
            };
            let partition = open(dir.path(), config.clone(), true).await;
            assert_eq!(partition.high_watermark(), end);
            let last = (end - 2) as i32;
            let steps = vec![
                (
                    "retry of the last batch",
                    p(last),
                    Expect::Duplicate(end - 2, end - 1),
                ),
                (
                    "gap",
                    p(last + 3),
                    Expect::OutOfOrder {
                        expected: last + 2,
                        received: last + 3,
                    },
                ),
                ("next", p(last + 2), Expect::New(end, end + 1)),
            ];
            check_sequences(&partition, steps).await;
            partition.wait_durable(end + 1).await.expect("durable");
            drop(partition);
            // A snapshot beyond the log end (the log was cut below it) is removed and an older
            // one used; a corrupt newest one is ignored for the one before it.
            let taken = snapshots(&topic_dir);
            let newest = crate::log::segment_file_path(&topic_dir, taken[1], "producer-state");
            let mut bytes = std::fs::read(&newest).unwrap();
            let last_byte = bytes.len() - 2;
            bytes[last_byte] ^= 0x01;
            std::fs::write(&newest, bytes).unwrap();
            let partition = open(dir.path(), config, true).await;
            assert!(!newest.exists(), "the corrupt snapshot is removed");
            let steps = vec![
                (
                    "retry after the second crash",
                    p(last + 2),
                    Expect::Duplicate(end, end + 1),
                ),
                ("next", p(last + 4), Expect::New(end + 2, end + 3)),
            ];
            check_sequences(&partition, steps).await;
            partition.wait_written(end + 3).await.expect("written");
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn a_crash_after_a_recovery_checkpoint_scans_from_it() {
        use std::os::unix::fs::FileExt;
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = config(1 << 20, false);
            let p = |sequence: i32| idempotent(2, (12, 0, sequence)).to_vec();
            let topic_dir = dir.path().join("topic-0");
            let index = crate::log::segment_file_path(&topic_dir, 0, "index");
            let end = {
                let partition = open(dir.path(), config.clone(), false).await;
                partition.checkpoint_bytes.set(2048);
                for i in 0..60 {
                    partition.append(&p(2 * i), 1).expect("append");
                    partition
                        .wait_written(2 * i as i64 + 1)
                        .await
                        .expect("written");
                }
                let end = partition.next_offset.get();
                partition.wait_durable(end - 1).await.expect("durable");
                for _ in 0..500 {
                    if !partition.checkpoint_running.get() && index.exists() {
                        break;
                    }
                    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                }
                assert_eq!(
                    partition.log().segment_count(),
                    1,
                    "no roll: the active segment"
                );
                end
            };
            // Crash: no close; a torn write after the batches.
            let log = crate::log::segment_file_path(&topic_dir, 0, "log");
            let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
            let length = file.metadata().unwrap().len();
            file.write_all_at(&[7; 100], length).unwrap();
            let entries = std::fs::metadata(&index)
                .expect("the checkpoint's index")
                .len()
                / 8;
            assert!(entries > 0, "the checkpoint wrote index entries");
            let snapshots = std::fs::read_dir(&topic_dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "producer-state")
                })
                .count();
            assert!(
                snapshots > 0,
                "the checkpoint wrote a producer-state snapshot"
            );

            let partition = open(dir.path(), config, true).await;
            assert_eq!(partition.high_watermark(), end, "the torn tail is cut");
            assert!(
                std::fs::metadata(&log).unwrap().len() <= length,
                "cut at the last valid batch"
            );
            for offset in 0..end {
                let read = partition.read(offset, 1).await.expect("read");
                let first = batches(&read.records)[0];
                assert!(
                    first.base_offset <= offset && offset <= first.last_offset(),
                    "offset {offset}"
                );
            }
            let last = (end - 2) as i32;
            let steps = vec![
                (
                    "retry of the last batch",
                    p(last),
                    Expect::Duplicate(end - 2, end - 1),
                ),
                ("next", p(last + 2), Expect::New(end, end + 1)),
            ];
            check_sequences(&partition, steps).await;
            partition.wait_written(end + 1).await.expect("written");
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn retention_moves_log_start_and_the_cache_follows() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = config(1 << 20, false);
            config.log.segment_bytes = 1024;
            let partition = open(dir.path(), config, false).await;
            for i in 0..40 {
                partition.append(&batch(2), 1).expect("append");
                partition.wait_written(2 * i + 1).await.expect("written");
            }
            let segments = partition.log().segment_count();
            assert!(segments > 3, "{segments} segments");
            assert_eq!(partition.apply_retention(-1, -1).await.unwrap(), 0);

            let deleted = partition.apply_retention(-1, 2048).await.expect("by size");
            assert!(deleted > 0);
            let start = partition.log_start_offset();
            assert!(start > 0);
            assert!(partition.log().size_bytes() >= 2048);
            let below = partition.read(start - 1, 1 << 20).await;
            assert!(
                matches!(below, Err(ReadError::OffsetOutOfRange { .. })),
                "{below:?}"
            );
            assert!(partition.cache.borrow().read(start - 1, 1, 80).is_none());
            let read = partition
                .read(start, 1 << 20)
                .await
                .expect("read at log start");
            assert_eq!(read.log_start_offset, start);
            assert_eq!(batches(&read.records)[0].base_offset, start);
            // Log::read stops at a segment's end (as Kafka's does); the cache need not.
            let from_log = partition.log().read(start, 1 << 20, 80).await.unwrap();
            assert!(!from_log.is_empty() && read.records.starts_with(&from_log));

            // Every record is older than 0 ms: every segment goes, the active one after a roll
            // (Kafka's UnifiedLog.deleteSegments), and the log starts at its end.
            partition.apply_retention(0, -1).await.expect("by time");
            assert_eq!(partition.log().segment_count(), 1);
            assert_eq!(partition.log_start_offset(), 80);
            assert_eq!(partition.high_watermark(), 80);
            let below = partition.read(79, 1 << 20).await;
            assert!(
                matches!(below, Err(ReadError::OffsetOutOfRange { .. })),
                "{below:?}"
            );
            let read = partition.read(80, 1 << 20).await.expect("read at the end");
            assert!(read.records.is_empty());
            assert_eq!(read.log_start_offset, 80);
            partition
                .append(&batch(1), 1)
                .expect("append after retention");
            partition.wait_written(80).await.expect("written");
            let read = partition.read(80, 1 << 20).await.expect("read");
            assert_eq!(batches(&read.records)[0].base_offset, 80);
            partition.close().await.expect("close");
        });
    }

    #[test]
    fn producer_state_survives_a_roll_just_before_a_crash() {
        use std::os::unix::fs::FileExt;
        // (what follows the producer's batches in the log, the active segment then; whether the
        // snapshots stay, else the state is rebuilt from every segment's headers)
        for (empty_active, snapshots) in
            [(true, true), (false, true), (true, false), (false, false)]
        {
            run(move || async move {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut config = config(1 << 20, false);
                config.log.segment_bytes = 1024;
                let p = |sequence: i32| idempotent(2, (11, 0, sequence)).to_vec();
                let end = {
                    let partition = open(dir.path(), config.clone(), false).await;
                    for i in 0..6 {
                        partition.append(&p(2 * i), 1).expect("append");
                        partition
                            .wait_written(2 * i as i64 + 1)
                            .await
                            .expect("written");
                    }
                    // Fill the segment with other data until it rolls.
                    while partition.log().segment_count() == 1 {
                        let end = partition.next_offset.get();
                        partition.append(&batch(3), 1).expect("append");
                        partition.wait_written(end + 2).await.expect("written");
                    }
                    let end = partition.next_offset.get();
                    partition.wait_durable(end - 1).await.expect("durable");
                    partition.close().await.expect("close");
                    end
                };
                let topic_dir = dir.path().join("topic-0");
                let segments: Vec<_> = std::fs::read_dir(&topic_dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "log"))
                    .collect();
                assert_eq!(segments.len(), 2, "{segments:?}");
                let snapshot_files: Vec<_> = std::fs::read_dir(&topic_dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "producer-state"))
                    .collect();
                assert!(
                    !snapshot_files.is_empty(),
                    "the roll's and the close's (both at the end here)"
                );
                if !snapshots {
                    for file in snapshot_files {
                        std::fs::remove_file(file).unwrap();
                    }
                }
                if empty_active {
                    // A crash right after a roll: the new active segment has no batch yet.
                    let last = crate::log::segment_file_path(&topic_dir, end, "log");
                    std::fs::File::create(last).unwrap();
                } else {
                    // A crash with zero padding after the active segment's batches.
                    let active = segments.iter().max().unwrap();
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(active)
                        .unwrap();
                    let length = file.metadata().unwrap().len();
                    file.write_all_at(&[0; 100], length).unwrap();
                }
                let partition = open(dir.path(), config, true).await;
                assert_eq!(partition.high_watermark(), end);
                let steps = vec![
                    ("retry of the last batch", p(10), Expect::Duplicate(10, 11)),
                    ("retry of an older batch", p(4), Expect::Duplicate(4, 5)),
                    (
                        "gap",
                        p(13),
                        Expect::OutOfOrder {
                            expected: 12,
                            received: 13,
                        },
                    ),
                    ("next", p(12), Expect::New(end, end + 1)),
                ];
                check_sequences(&partition, steps).await;
                partition.wait_written(end + 1).await.expect("written");
                partition.close().await.expect("close");
            });
        }
    }

    #[test]
    fn producer_state_survives_a_clean_restart() {
        type Tamper = fn(&std::path::Path);
        let snapshot_path = |dir: &std::path::Path| {
            crate::log::segment_file_path(
                &dir.join("topic-0"),
                6,
                crate::log::PRODUCER_SNAPSHOT_SUFFIX,
            )
        };
        // (case, change to the snapshot after the clean close, recover, producer 77 known)
        let cases: Vec<(&str, Tamper, bool, bool)> = vec![
            ("snapshot", |_| {}, false, false),
            (
                "no snapshot: rebuilt from the log",
                |path| std::fs::remove_file(path).unwrap(),
                false,
                false,
            ),
            (
                "bad snapshot: rebuilt from the log",
                |path| std::fs::write(path, b"{oops").unwrap(),
                false,
                false,
            ),
            (
                "snapshot is what the broker uses",
                |path| {
                    let state = r#"{"producers":[[77,{"epoch":5,"last_sequence":9,"recent":[]}]]}"#;
                    std::fs::write(path, state).unwrap()
                },
                false,
                true,
            ),
            (
                "recovery ignores snapshots",
                |path| {
                    let state = r#"{"producers":[[77,{"epoch":5,"last_sequence":9,"recent":[]}]]}"#;
                    std::fs::write(path, state).unwrap()
                },
                true,
                false,
            ),
        ];
        for (name, tamper, recover, known) in cases {
            run(move || async move {
                let dir = tempfile::tempdir().expect("tempdir");
                let p = |sequence: i32, count: usize| idempotent(count, (9, 2, sequence)).to_vec();
                let partition = open(dir.path(), config(1 << 20, false), false).await;
                let steps = vec![
                    ("first", p(0, 2), Expect::New(0, 1)),
                    ("other producer", batch(1).to_vec(), Expect::New(2, 2)),
                    ("second", p(2, 3), Expect::New(3, 5)),
                ];
                check_sequences(&partition, steps).await;
                partition.close().await.expect("close");
                let snapshot = snapshot_path(dir.path());
                assert!(snapshot.exists(), "{name}: snapshot written");
                tamper(&snapshot);

                let partition = open(dir.path(), config(1 << 20, false), recover).await;
                assert_eq!(
                    snapshot.exists(),
                    known || name == "snapshot",
                    "{name}: a used snapshot stays (a later crash replays from it), one not used is removed"
                );
                if known {
                    let old = idempotent(1, (77, 4, 0)).to_vec();
                    check_sequences(
                        &partition,
                        vec![(name, old, Expect::OldEpoch { current: 5 })],
                    )
                    .await;
                    return;
                }
                let steps = vec![
                    (name, p(2, 3), Expect::Duplicate(3, 5)),
                    (name, p(0, 2), Expect::Duplicate(0, 1)),
                    (
                        name,
                        p(6, 1),
                        Expect::OutOfOrder {
                            expected: 5,
                            received: 6,
                        },
                    ),
                    (name, idempotent(1, (77, 4, 0)).to_vec(), Expect::New(6, 6)),
                ];
                check_sequences(&partition, steps).await;
                partition.wait_written(6).await.expect("written");
                partition.close().await.expect("close");
            });
        }
    }

    #[test]
    fn idle_producers_expire() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let partition = open(dir.path(), config(1 << 20, false), false).await;
            // check_sequences appends at broker time 1 ms.
            let p = |id: i64, sequence: i32| idempotent(1, (id, 0, sequence)).to_vec();
            let steps = vec![
                ("producer 1", p(1, 0), Expect::New(0, 0)),
                ("producer 2", p(2, 0), Expect::New(1, 1)),
            ];
            check_sequences(&partition, steps).await;
            let last = 1;
            assert_eq!(
                partition.expire_producers(last + PRODUCER_ID_EXPIRATION_MS - 1),
                0
            );
            let steps = vec![(
                "still known",
                p(1, 5),
                Expect::OutOfOrder {
                    expected: 1,
                    received: 5,
                },
            )];
            check_sequences(&partition, steps).await;
            assert_eq!(
                partition.expire_producers(last + PRODUCER_ID_EXPIRATION_MS),
                2
            );
            assert!(partition.producers.borrow().is_empty());
            let steps = vec![("forgotten: any sequence", p(1, 5), Expect::New(2, 2))];
            check_sequences(&partition, steps).await;
            partition.wait_written(2).await.expect("written");
            partition.close().await.expect("close");
        });
    }
}
