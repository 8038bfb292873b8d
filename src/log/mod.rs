//! The partition log: one directory `<log_dir>/<topic>-<partition>/` of segments in Kafka's
//! on-disk layout (Kafka's `UnifiedLog` / `LocalLog`).
//!
//! A [`Log`] lives on the shard that owns the partition: it is `!Send`, uses `Rc`/`RefCell`/`Cell`
//! inside and never holds a borrow across an await. Appends are serialized by the caller; reads,
//! flushes and offset lookups may interleave with an append and see only completed appends.
//!
//! Invariants: segments are sorted by base offset, each base offset equals the previous
//! segment's next offset, the last segment is the active one and the only one appended to;
//! `log_start_offset <= log_end_offset`; offsets are strictly increasing, and contiguous except
//! where log compaction (`log_cleaner`) removed records from sealed segments: it never touches
//! the active segment and never reorders or renumbers offsets.

mod checkpoint;
mod cleaner;
mod cleaner_checkpoint;
mod log_cleaner;
pub mod log_dirs;
mod offset_index;
mod preallocate;
pub mod read_ahead;
mod recovery;
mod segment;
mod time_index;
mod txn_index;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::protocol::record_batch::{
    BatchError, BatchIter, RecordBatchHeader, RECORD_BATCH_HEADER_BYTES,
};

pub use checkpoint::{
    checkpointed_log_start_offset, EpochEntry, LeaderEpochCache, LEADER_EPOCH_CHECKPOINT_FILE,
    LOG_START_OFFSET_CHECKPOINT_FILE, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET,
};
pub use cleaner::{CleanerConfig, DELETE_HORIZON_FLAG};
pub use cleaner_checkpoint::{
    read_cleaner_checkpoint, write_cleaner_checkpoint, CLEANER_OFFSET_CHECKPOINT_FILE,
};
pub use log_cleaner::{CleanSummary, CLEANED_FILE_SUFFIX, SWAP_FILE_SUFFIX};
pub use offset_index::{OffsetIndex, OffsetIndexEntry, OffsetPosition, OFFSET_INDEX_ENTRY_BYTES};
pub use segment::{segment_file_path, INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX};
pub use time_index::{TimeIndex, TimestampOffset, TIME_INDEX_ENTRY_BYTES};
pub use txn_index::{AbortedTxn, ABORTED_TXN_BYTES, TXN_INDEX_FILE_SUFFIX};

use crate::protocol::control_record::{self, ControlRecordType};

use segment::{now_ms, LogSegment};

/// Largest `segment_bytes`: positions in `.index` entries are `i32` (Kafka caps `segment.bytes`
/// at `Integer.MAX_VALUE`).
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Smallest `segment_bytes` (Kafka: `LegacyRecord.RECORD_OVERHEAD_V0`-based minimum of 14; we
/// require room for one batch header).
pub const SEGMENT_BYTES_MIN: u64 = 61;
/// Kafka's `segment.bytes` default: 1 GiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Kafka's `segment.index.bytes` default: 10 MiB.
pub const SEGMENT_INDEX_BYTES_DEFAULT: u64 = 10 * 1024 * 1024;
const _: () = assert!(SEGMENT_BYTES_MIN < SEGMENT_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_MIN >= RECORD_BATCH_HEADER_BYTES as u64);
const _: () = assert!(SEGMENT_BYTES_MAX <= i32::MAX as u64);
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
const _: () = assert!(SEGMENT_INDEX_BYTES_DEFAULT >= OFFSET_INDEX_ENTRY_BYTES as u64);
const _: () = assert!(SEGMENT_INDEX_BYTES_DEFAULT >= TIME_INDEX_ENTRY_BYTES as u64);

/// Suffix of the producer-state snapshot `<offset:020>.producer-state` written at every roll and
/// at a clean close (Kafka keeps `<offset>.snapshot` files for the same purpose, in its own
/// format; `partition::ProducerSnapshot` is ours).
pub const PRODUCER_SNAPSHOT_SUFFIX: &str = "producer-state";
/// How many producer-state snapshots a log keeps: the newest is where recovery starts, the one
/// before it is used when a crash left the log end below the newest.
pub const PRODUCER_SNAPSHOTS_KEPT: usize = 2;
const _: () = assert!(PRODUCER_SNAPSHOTS_KEPT >= 1);

/// Per-partition log settings (Kafka topic configs of the same names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this size in bytes.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is older than this, in milliseconds.
    pub segment_ms: u64,
    /// `index.interval.bytes`: bytes appended between two offset-index entries.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: maximum size of each index file in bytes; roll when full.
    pub segment_index_bytes: u64,
    /// `preallocate`: write zeros ahead of the active segment's appends, so that they overwrite
    /// allocated blocks (see the `preallocate` module for why and how).
    pub preallocate: bool,
}

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, 7 days, 4 KiB index interval, 10 MiB indexes.
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: SEGMENT_INDEX_BYTES_DEFAULT,
            preallocate: false,
        }
    }
}

/// Errors of the log module; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A system call on a log file failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A rename of a log file or directory failed.
    #[error("rename {from} -> {to}: {source}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A DMA write completed with fewer bytes than submitted.
    #[error("short write to {path} at {position}: {written} of {expected} bytes")]
    ShortWrite {
        path: PathBuf,
        position: u64,
        expected: usize,
        written: usize,
    },
    /// The requested offset is outside `[log_start_offset, log_end_offset]` (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// A stored batch header inside the logical size does not parse (disk corruption).
    #[error("corrupt batch in {path} at position {position}")]
    CorruptBatch {
        path: PathBuf,
        position: u64,
        #[source]
        source: BatchError,
    },
    /// A segment's content contradicts its bookkeeping (disk corruption).
    #[error("corrupt segment {path} at position {position}: {reason}")]
    CorruptSegment {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// kafka-protocol could not decode the records of a stored batch.
    #[error("cannot decode records of batch {base_offset} in {path}: {reason}")]
    RecordDecode {
        path: PathBuf,
        base_offset: i64,
        reason: String,
    },
    /// The configuration is unusable.
    #[error("invalid log config for {path}: {reason}")]
    InvalidConfig { path: PathBuf, reason: String },
    /// The log was closed or deleted.
    #[error("log {path} is closed")]
    Closed { path: PathBuf },
}

/// Why an index file read from disk is rejected; `recovery` then rebuilds the index from the
/// `.log` (Kafka's `LogLoader` does the same on a corrupt index).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The file size is not a whole number of entries.
    #[error("size {size_bytes} is not a multiple of {entry_bytes}")]
    PartialEntry {
        size_bytes: usize,
        entry_bytes: usize,
    },
    /// An offset-index entry with a negative field or a position outside the `.log`.
    #[error("entry {entry} ({relative_offset}, {position}) is out of range (log {log_size_bytes} bytes)")]
    OffsetEntryOutOfRange {
        entry: usize,
        relative_offset: i32,
        position: i32,
        log_size_bytes: u64,
    },
    /// An offset-index entry whose offset or position does not exceed the previous entry's.
    #[error("entry {entry} ({relative_offset}, {position}) is not increasing")]
    OffsetEntryNotIncreasing {
        entry: usize,
        relative_offset: i32,
        position: i32,
    },
    /// The last offset-index entry names an offset of the next segment.
    #[error("offset {offset} beyond next segment {next_base_offset}")]
    BeyondNextSegment { offset: i64, next_base_offset: i64 },
    /// A time-index entry with a negative relative offset or one past the segment's last.
    #[error("entry {entry} has relative offset {relative_offset} out of range")]
    TimeEntryOutOfRange {
        entry: usize,
        relative_offset: i32,
        max_relative_offset: Option<i64>,
    },
    /// A time-index entry whose timestamp does not exceed, or whose offset is below, the
    /// previous entry's.
    #[error("entry {entry} ({timestamp}, {relative_offset}) is not increasing")]
    TimeEntryNotIncreasing {
        entry: usize,
        timestamp: i64,
        relative_offset: i32,
    },
}

impl LogError {
    /// An [`LogError::Io`] from any error convertible to `std::io::Error` (glommio's included).
    pub fn io(op: &'static str, path: &Path, source: impl Into<std::io::Error>) -> LogError {
        LogError::Io {
            op,
            path: path.to_path_buf(),
            source: source.into(),
        }
    }
}

/// The log of one partition.
pub struct Log {
    dir: PathBuf,
    /// Replaced live by [`Log::set_config`]; read (copied) on each use, never held across I/O.
    config: RefCell<LogConfig>,
    /// Sorted by base offset; never empty; the last one is active.
    segments: RefCell<Vec<Rc<LogSegment>>>,
    log_start_offset: Cell<i64>,
    log_end_offset: Cell<i64>,
    closed: Cell<bool>,
    /// Segment files created or deleted so far (directory entries to make durable).
    dir_changes: Cell<u64>,
    /// Value of `dir_changes` that the last finished directory fsync covered.
    dir_changes_synced: Cell<u64>,
    /// fdatasyncs of `.log` files issued by [`Log::flush`] (group-commit observability).
    flush_count: Cell<u64>,
    /// The first failed fdatasync's message: a failed sync is never retried (the kernel may
    /// have dropped the dirty pages and a second fdatasync would report success, PostgreSQL's
    /// fsyncgate), every later [`Log::flush`] fails with it.
    sync_failed: RefCell<Option<String>>,
    /// Leader epochs and their start offsets (`leader-epoch-checkpoint`).
    epochs: RefCell<LeaderEpochCache>,
    /// True while the cleaner's committed swap is being finished (`log_cleaner`); retention
    /// waits for the next round then, so it never deletes files a rename is about to create.
    swapping: Cell<bool>,
    /// One permit: held by [`Log::append`] (and its roll) and by [`Log::apply_retention`]
    /// while it rolls and picks segments, so retention's roll never races an append.
    writer: glommio::sync::Semaphore,
    /// One permit: held while a producer-state snapshot is written, and by [`Log::close`].
    snapshot_writer: glommio::sync::Semaphore,
    /// One permit: held while [`Log::checkpoint_active_indexes`] writes, and by a roll or
    /// close before it seals the active segment (so a checkpoint never overwrites a sealed
    /// segment's whole indexes with its partial ones).
    index_checkpoint: glommio::sync::Semaphore,
    /// This log's key in the shard's read-ahead store ([`read_ahead`]).
    read_ahead_id: u64,
    /// Every aborted transaction of the partition, sorted by `last_offset` (the marker's);
    /// each also in the `.txnindex` of the segment holding its marker (`txn_index`).
    aborted_txns: RefCell<Vec<AbortedTxn>>,
    /// Some `.txnindex` was torn or held entries outside its segment at open
    /// ([`Log::txn_index_damaged`]).
    txn_index_damaged: Cell<bool>,
}

/// The batches of one segment for rebuilding producer and transaction state: each header, and
/// for a control batch its marker type and coordinator epoch (`None` when it has none).
pub struct SegmentBatches {
    pub base_offset: i64,
    pub batches: Vec<(RecordBatchHeader, Option<(ControlRecordType, i32)>)>,
}

impl Log {
    /// Opens or creates the directory. `recover` = true after an unclean shutdown: the active
    /// segment is then scanned with CRC checks and its torn tail truncated (Kafka's `LogLoader`).
    pub async fn open(dir: PathBuf, config: LogConfig, recover: bool) -> Result<Log, LogError> {
        validate_config(&dir, &config)?;
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io("create_dir", &dir, e))?;
        segment::prime_iopoll_probe(&dir).await?;
        let segments = recovery::load_segments(&dir, &config, recover).await?;
        let log_start_offset = segments.first().map_or(0, |s| s.base_offset());
        let log_end_offset = segments.last().map_or(0, |s| s.next_offset());
        assert!(
            log_start_offset <= log_end_offset,
            "invariant: log_start_offset <= log_end_offset"
        );
        assert_contiguous_segments(&segments);
        let mut epochs = LeaderEpochCache::load(&dir)?;
        epochs.truncate_from_end(log_end_offset)?;
        // DeleteRecords may have moved the start beyond the first segment (Kafka's
        // log-start-offset-checkpoint); never beyond the log end.
        let log_start_offset = checkpoint::checkpointed_log_start_offset(&dir)?
            .map_or(log_start_offset, |c| {
                c.clamp(log_start_offset, log_end_offset)
            });
        epochs.truncate_from_start(log_start_offset)?;
        let (aborted_txns, txn_index_damaged) = load_aborted_txns(&dir, &segments)?;
        let log = Log {
            dir,
            config: RefCell::new(config),
            segments: RefCell::new(segments.into_iter().map(Rc::new).collect()),
            log_start_offset: Cell::new(log_start_offset),
            log_end_offset: Cell::new(log_end_offset),
            closed: Cell::new(false),
            dir_changes: Cell::new(1),
            dir_changes_synced: Cell::new(0),
            flush_count: Cell::new(0),
            sync_failed: RefCell::new(None),
            epochs: RefCell::new(epochs),
            swapping: Cell::new(false),
            writer: glommio::sync::Semaphore::new(1),
            snapshot_writer: glommio::sync::Semaphore::new(1),
            index_checkpoint: glommio::sync::Semaphore::new(1),
            aborted_txns: RefCell::new(aborted_txns),
            txn_index_damaged: Cell::new(txn_index_damaged),
            read_ahead_id: read_ahead::new_log_id(),
        };
        log.delete_segments_below_start().await?;
        prune_producer_snapshots(
            &log.dir,
            log.segments.borrow()[0].base_offset(),
            log_end_offset,
        )?;
        Ok(log)
    }

    /// First offset still stored (advanced by retention).
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.get()
    }

    /// Next offset to be written; covers only completed appends.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.get()
    }

    /// Logical size of all segments in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.segments.borrow().iter().map(|s| s.size_bytes()).sum()
    }

    /// True after [`Log::close`] or [`Log::delete`].
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings in effect now (those it was opened with, or the last [`Log::set_config`]).
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }

    /// Replaces the settings live (a topic config altered at run time): the next append rolls
    /// by the new `segment_bytes` / `segment_ms` and indexes by the new `index_interval_bytes`;
    /// segments created from now on get the new `segment_index_bytes`. Refuses settings the
    /// on-disk format cannot hold, keeping the old ones.
    pub fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        validate_config(&self.dir, &config)?;
        *self.config.borrow_mut() = config;
        Ok(())
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.borrow().len()
    }

    /// Appends `chunk` = one or more consecutive complete batches whose base offsets are already
    /// assigned and start at `log_end_offset()`; `headers` are their parsed headers in order.
    /// Never called concurrently with another append/close (the caller serializes). Returns once
    /// the DMA write completed (NOT synced). Rolls the segment first when the active one would
    /// exceed `segment_bytes` (and is non-empty) or is older than `segment_ms` (Kafka's
    /// `UnifiedLog.maybeRoll`).
    pub async fn append(
        &self,
        chunk: &[u8],
        headers: &[RecordBatchHeader],
    ) -> Result<(), LogError> {
        self.check_open()?;
        let _writer = self
            .writer
            .acquire_permit(1)
            .await
            .expect("invariant: the writer permit is never closed");
        self.check_open()?;
        check_chunk(chunk, headers, self.log_end_offset());
        let active = self.active_segment();
        let config = self.config();
        let active = if active.should_roll(&config, chunk.len() as u64, headers, now_ms()) {
            self.roll(&active).await?
        } else {
            active
        };
        active
            .append(chunk, headers, config.index_interval_bytes)
            .await?;
        if config.preallocate {
            active.maybe_preallocate(config.segment_bytes);
        }
        let next = headers
            .last()
            .map_or(self.log_end_offset(), |h| h.next_offset());
        let appended: i64 = headers.iter().map(|h| h.record_count as i64).sum();
        assert_eq!(
            next,
            self.log_end_offset() + appended,
            "invariant: offsets are contiguous (the log end grows by the records appended)"
        );
        assert!(
            next > self.log_end_offset(),
            "invariant: the log end offset grows with every append"
        );
        assert_eq!(
            active.next_offset(),
            next,
            "invariant: the active segment ends at the log end offset"
        );
        self.log_end_offset.set(next);
        assert!(
            self.log_start_offset() <= self.log_end_offset(),
            "invariant: log_start_offset <= log_end_offset"
        );
        Ok(())
    }

    /// fdatasync of every segment written since the last flush. May run concurrently with
    /// append; it covers at least every append that completed before flush was called.
    ///
    /// After one failed fdatasync every later call fails with that error without syncing
    /// again (asserted: a failed sync is never retried and reported as success).
    pub async fn flush(&self) -> Result<(), LogError> {
        if let Some(first) = self.sync_failed.borrow().as_ref() {
            return Err(LogError::io(
                "fdatasync (an earlier fdatasync failed; not retried)",
                &self.dir,
                std::io::Error::other(first.clone()),
            ));
        }
        assert!(
            self.sync_failed.borrow().is_none(),
            "invariant: a failed fdatasync is never retried (log {})",
            self.dir.display()
        );
        let mut result = self.flush_segments().await;
        if result.is_ok() {
            // Another flush of this log (the group coordinator's writer may overlap) failed
            // while this one ran: its pages may be among the ones this sync covered.
            if let Some(first) = self.sync_failed.borrow().as_ref() {
                result = Err(LogError::io(
                    "fdatasync (a concurrent fdatasync failed)",
                    &self.dir,
                    std::io::Error::other(first.clone()),
                ));
            }
        }
        if let Err(error) = &result {
            self.sync_failed
                .borrow_mut()
                .get_or_insert_with(|| error.to_string());
        }
        result
    }

    async fn flush_segments(&self) -> Result<(), LogError> {
        let segments: Vec<Rc<LogSegment>> = self.segments.borrow().clone();
        for segment in &segments {
            if segment.flush().await? {
                self.flush_count.set(self.flush_count.get() + 1);
            }
        }
        self.sync_dir().await
    }

    /// Number of `.log` fdatasyncs [`Log::flush`] issued since open; shows how well concurrent
    /// flushes are group-committed.
    pub fn flush_count(&self) -> u64 {
        self.flush_count.get()
    }

    /// Whole batches starting with the batch that contains `offset`, at most `max_bytes` total
    /// except that the first batch is returned whole even when larger (KIP-74), never any batch
    /// with base_offset >= `max_offset` (the high watermark). Empty when offset == max_offset or
    /// LEO. `Err(LogError::OffsetOutOfRange{..})` when offset < log_start_offset or >
    /// log_end_offset. Reads one segment at most, as Kafka's `LocalLog.read` does.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<bytes::Bytes, LogError> {
        self.check_open()?;
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        if offset >= end || offset >= max_offset {
            return Ok(bytes::Bytes::new());
        }
        let candidates: Vec<Rc<LogSegment>> = {
            let segments = self.segments.borrow();
            let first = segments
                .partition_point(|s| s.base_offset() <= offset)
                .saturating_sub(1);
            segments[first..].to_vec()
        };
        if let Some(bytes) = self
            .read_ahead_taken(&candidates[0], offset, max_bytes, max_offset)
            .await
        {
            assert_read(&bytes, offset, max_bytes, max_offset);
            return Ok(bytes);
        }
        let slack = self.config.borrow().index_interval_bytes as usize;
        for segment in candidates {
            if let Some((position, bytes)) =
                segment.read(offset, max_bytes, max_offset, slack).await?
            {
                assert_read(&bytes, offset, max_bytes, max_offset);
                self.start_read_ahead(&segment, position, &bytes, max_bytes);
                return Ok(bytes);
            }
        }
        Ok(bytes::Bytes::new())
    }

    /// The batches a read-ahead of `segment` holds for a read at `offset`, if one was started
    /// where an earlier read of this log ended ([`read_ahead`]). A failed read-ahead answers
    /// nothing: the caller reads the segment, which reports the error if it persists. A hit
    /// starts the next read-ahead.
    async fn read_ahead_taken(
        &self,
        segment: &Rc<LogSegment>,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Option<bytes::Bytes> {
        let (position, task) = read_ahead::take(self.read_ahead_id, segment, offset)?;
        let data = task.await.ok()?;
        let (skipped, bytes) = read_ahead::batches_from(&data, offset, max_bytes, max_offset)?;
        drop(data);
        read_ahead::record_hit();
        self.start_read_ahead(segment, position + skipped as u64, &bytes, max_bytes);
        Some(bytes)
    }

    /// After a read of `segment` that returned `bytes` (whole batches from `position`), starts
    /// reading the next `max_bytes` behind them ([`read_ahead`]).
    fn start_read_ahead(
        &self,
        segment: &Rc<LogSegment>,
        position: u64,
        bytes: &bytes::Bytes,
        max_bytes: usize,
    ) {
        if bytes.len() < read_ahead::MIN_READ_AHEAD_BYTES {
            return;
        }
        let Some((_, last)) = crate::protocol::record_batch::BatchIter::new(bytes).last() else {
            return;
        };
        read_ahead::start(
            self.read_ahead_id,
            segment,
            last.next_offset(),
            position + bytes.len() as u64,
            max_bytes,
        );
    }

    /// Kafka ListOffsets by timestamp: the offset and timestamp of the first record with
    /// timestamp >= `timestamp` (Kafka's `UnifiedLog.fetchOffsetByTimestamp`): the first segment
    /// whose largest timestamp reaches it, the time and offset indexes for a start position,
    /// then a header walk to the first batch whose `max_timestamp` reaches it, whose records are
    /// decoded. `None` if no such record.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        self.check_open()?;
        let segment = {
            let segments = self.segments.borrow();
            segments
                .iter()
                .find(|s| {
                    s.max_timestamp_and_offset()
                        .is_some_and(|(t, _)| t >= timestamp)
                })
                .cloned()
        };
        let Some(segment) = segment else {
            return Ok(None);
        };
        let position = {
            let state = segment.state();
            let from_offset = state
                .time_index
                .lookup_below(timestamp)
                .map_or(segment.base_offset(), |e| e.offset);
            state.offset_index.lookup(from_offset).position as u64
        };
        let found = segment
            .find_batch(position, |h| h.max_timestamp >= timestamp)
            .await?;
        match found {
            Some((position, header)) => {
                segment
                    .find_record_by_timestamp(position, &header, timestamp)
                    .await
            }
            None => Ok(None),
        }
    }

    /// (offset, timestamp) of the record with the largest timestamp (ListOffsets -3, KIP-734),
    /// the earliest such record when several share it. `None` if the log holds no timestamps.
    pub async fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.check_open()?;
        let best = {
            let segments = self.segments.borrow();
            let mut best: Option<(Rc<LogSegment>, i64, i64)> = None;
            for segment in segments.iter() {
                if let Some((timestamp, offset)) = segment.max_timestamp_and_offset() {
                    if best.as_ref().is_none_or(|(_, t, _)| timestamp > *t) {
                        best = Some((segment.clone(), timestamp, offset));
                    }
                }
            }
            best
        };
        let Some((segment, timestamp, offset)) = best else {
            return Ok(None);
        };
        let position = segment.state().offset_index.lookup(offset).position as u64;
        let found = segment
            .find_batch(position, |h| h.last_offset() >= offset)
            .await?;
        match found {
            Some((position, header)) => Ok(segment
                .find_record_by_timestamp(position, &header, timestamp)
                .await?
                .or(Some((offset, timestamp)))),
            None => Ok(Some((offset, timestamp))),
        }
    }

    /// Headers of the batches in the active (last) segment, for rebuilding idempotent-producer
    /// state (Kafka's `ProducerStateManager` reload).
    pub async fn active_segment_batch_headers(&self) -> Result<Vec<RecordBatchHeader>, LogError> {
        self.check_open()?;
        let active = self.active_segment();
        let mut headers = Vec::new();
        active
            .find_batch(0, |h| {
                headers.push(*h);
                false
            })
            .await?;
        Ok(headers)
    }

    /// Headers of the newest batches, in offset order, for rebuilding idempotent-producer state:
    /// every batch of the active segment and, while fewer than `min_batches` were found, of the
    /// segments before it, newest first. Right after a roll the active segment is empty and the
    /// producers' last batches are all in the previous one.
    pub async fn tail_batch_headers(
        &self,
        min_batches: usize,
    ) -> Result<Vec<RecordBatchHeader>, LogError> {
        self.check_open()?;
        let segments: Vec<Rc<LogSegment>> = self.segments.borrow().clone();
        let mut newest_first: Vec<Vec<RecordBatchHeader>> = Vec::new();
        let mut found = 0;
        for segment in segments.iter().rev() {
            if !newest_first.is_empty() && found >= min_batches {
                break;
            }
            let mut headers = Vec::new();
            segment
                .find_batch(0, |h| {
                    headers.push(*h);
                    false
                })
                .await?;
            found += headers.len();
            newest_first.push(headers);
        }
        Ok(newest_first.into_iter().rev().flatten().collect())
    }

    /// Stores `bytes` (the caller's idempotent-producer state) as the snapshot taken at
    /// `offset`: the state after every batch below `offset` and none at or above it (Kafka's
    /// `ProducerStateManager.takeSnapshot`, at every roll and at close). Written to a
    /// temporary file, fdatasynced, renamed and the directory fsynced, so a reader finds either
    /// a whole snapshot or none, and a snapshot that exists outlives a crash. Keeps the newest
    /// [`PRODUCER_SNAPSHOTS_KEPT`] snapshots (this one included) and removes the others.
    ///
    /// Errors: I/O errors of the write, rename or directory sync; [`LogError::Closed`].
    pub async fn write_producer_snapshot(&self, offset: i64, bytes: &[u8]) -> Result<(), LogError> {
        // One at a time: they share the temporary file's name per offset.
        let _snapshot = self
            .snapshot_writer
            .acquire_permit(1)
            .await
            .expect("invariant: the snapshot permit is never closed");
        self.check_open()?;
        assert!(
            offset >= self.log_start_offset(),
            "invariant: a producer snapshot is taken at or above the log start offset"
        );
        let path = segment_file_path(&self.dir, offset, PRODUCER_SNAPSHOT_SUFFIX);
        let temporary = path.with_extension(format!("{PRODUCER_SNAPSHOT_SUFFIX}.tmp"));
        segment::write_file(&temporary, bytes).await?;
        std::fs::rename(&temporary, &path).map_err(|e| LogError::io("rename", &path, e))?;
        self.dir_changes.set(self.dir_changes.get() + 1);
        self.sync_dir().await?;
        let snapshots = self.producer_snapshots()?;
        let keep_from = snapshots.len().saturating_sub(PRODUCER_SNAPSHOTS_KEPT);
        for (_, old) in &snapshots[..keep_from] {
            std::fs::remove_file(old).map_err(|e| LogError::io("remove", old, e))?;
        }
        Ok(())
    }

    /// Writes the active segment's index files with the entries of the batches below
    /// `durable_offset` (the caller's fdatasynced offset): after a crash, recovery CRC-scans
    /// the active segment only from its last entry on instead of from its first byte
    /// ([`LogSegment::write_index_checkpoint`]). Returns whether it wrote. Errors: I/O errors
    /// of the writes; [`LogError::Closed`].
    pub async fn checkpoint_active_indexes(&self, durable_offset: i64) -> Result<bool, LogError> {
        let _indexes = self
            .index_checkpoint
            .acquire_permit(1)
            .await
            .expect("invariant: the index checkpoint permit is never closed");
        self.check_open()?;
        let active = self.active_segment();
        if active.base_offset() >= durable_offset {
            return Ok(false);
        }
        active.write_index_checkpoint(durable_offset).await
    }

    /// The producer-state snapshots in the directory as (offset, path), oldest first.
    pub fn producer_snapshots(&self) -> Result<Vec<(i64, PathBuf)>, LogError> {
        list_producer_snapshots(&self.dir)
    }

    /// Deletes whole segments entirely older than `retention_ms` (by their largest timestamp,
    /// or the file time when they carry none) or beyond `retention_bytes` (-1 = off), oldest
    /// first, and advances `log_start_offset`; returns the number of segments deleted.
    ///
    /// Kafka's rule (`UnifiedLog.deleteRetentionSizeBreachedSegments`, then
    /// `deleteRetentionMsBreachedSegments`, each through `deletableSegments`): a segment is
    /// deletable only while `high_watermark` >= its upper bound (the next segment's base offset,
    /// or the log end offset for the active segment), and an empty active segment never is.
    /// When every segment is deletable, the active one included, a new empty active segment is
    /// rolled at the log end first (`UnifiedLog.deleteSegments`), so the log start offset moves
    /// to the log end. The roll and the choice of segments happen under the writer permit that
    /// [`Log::append`] holds, so no append runs in between.
    ///
    /// Errors: I/O errors of the roll or of deleting the files; [`LogError::Closed`].
    pub async fn apply_retention(
        &self,
        retention_ms: i64,
        retention_bytes: i64,
        high_watermark: i64,
    ) -> Result<usize, LogError> {
        self.check_open()?;
        if self.swapping.get() {
            return Ok(0);
        }
        self.delete_segments_below_start().await?;
        let writer = self
            .writer
            .acquire_permit(1)
            .await
            .expect("invariant: the writer permit is never closed");
        self.check_open()?;
        if self.swapping.get() {
            return Ok(0);
        }
        let count = self.deletable_segments(retention_ms, retention_bytes, high_watermark);
        if count == 0 {
            return Ok(0);
        }
        if count == self.segment_count() {
            // "we must always have at least one segment" (Kafka's deleteSegments).
            let active = self.active_segment();
            self.roll(&active).await?;
            if self.swapping.get() {
                return Ok(0); // the next check deletes them behind the new active segment
            }
        }
        let deleted: Vec<Rc<LogSegment>> = self.segments.borrow_mut().drain(..count).collect();
        drop(writer);
        // DeleteRecords may already have moved the start inside the new first segment.
        let new_start = self.segments.borrow()[0]
            .base_offset()
            .max(self.log_start_offset());
        assert!(
            new_start >= self.log_start_offset(),
            "invariant: retention advances the log start offset"
        );
        assert!(
            new_start <= self.log_end_offset(),
            "invariant: log_start_offset <= log_end_offset"
        );
        assert!(
            new_start <= high_watermark.max(self.log_start_offset()),
            "invariant: retention never moves the log start offset past the high watermark"
        );
        assert!(
            !self.segments.borrow().is_empty(),
            "invariant: a log always has an active segment"
        );
        self.log_start_offset.set(new_start);
        self.epochs.borrow_mut().truncate_from_start(new_start)?;
        self.drop_aborted_txns_below_first_segment();
        self.dir_changes.set(self.dir_changes.get() + 1);
        // A read-ahead holds its segment's file open: an unlinked file keeps its space until then.
        read_ahead::forget_log(self.read_ahead_id);
        for segment in &deleted {
            tracing::info!(path = %segment.log_path().display(), "deleting segment by retention");
            segment.delete_files().await?;
        }
        Ok(deleted.len())
    }

    /// How many of the oldest segments retention deletes now (Kafka's `deletableSegments` with
    /// the retention.bytes predicate, then the retention.ms one); see [`Log::apply_retention`].
    fn deletable_segments(
        &self,
        retention_ms: i64,
        retention_bytes: i64,
        high_watermark: i64,
    ) -> usize {
        let segments = self.segments.borrow();
        let log_end_offset = self.log_end_offset();
        let eligible = |i: usize| {
            let next = segments.get(i + 1);
            let upper_bound_offset = next.map_or(log_end_offset, |n| n.base_offset());
            let is_last_segment_and_empty = next.is_none() && segments[i].size_bytes() == 0;
            high_watermark >= upper_bound_offset && !is_last_segment_and_empty
        };
        let mut count = 0;
        if retention_bytes >= 0 {
            let size: i64 = segments.iter().map(|s| s.size_bytes() as i64).sum();
            if size >= retention_bytes {
                let mut diff = size - retention_bytes;
                while count < segments.len()
                    && eligible(count)
                    && diff - segments[count].size_bytes() as i64 >= 0
                {
                    diff -= segments[count].size_bytes() as i64;
                    count += 1;
                }
            }
        }
        if retention_ms >= 0 {
            let now = now_ms();
            while count < segments.len() && eligible(count) && {
                let segment = &segments[count];
                let largest = segment
                    .max_timestamp_and_offset()
                    .map_or(segment.state().created_ms, |(t, _)| t);
                now - largest > retention_ms
            } {
                count += 1;
            }
        }
        count
    }

    /// Clean close: flush, truncate the active `.log` to its logical size, write the indexes.
    pub async fn close(&self) -> Result<(), LogError> {
        // A snapshot being written finishes first; none starts after (they check `closed`).
        let _snapshot = self
            .snapshot_writer
            .acquire_permit(1)
            .await
            .expect("invariant: the snapshot permit is never closed");
        let _indexes = self
            .index_checkpoint
            .acquire_permit(1)
            .await
            .expect("invariant: the index checkpoint permit is never closed");
        if self.closed.replace(true) {
            return Ok(());
        }
        read_ahead::forget_log(self.read_ahead_id);
        let segments: Vec<Rc<LogSegment>> = self.segments.borrow().clone();
        for segment in &segments {
            segment.flush().await?;
        }
        if let Some(active) = segments.last() {
            active.seal().await?;
        }
        for segment in &segments {
            segment.write_indexes().await?;
        }
        self.sync_dir().await
    }

    /// Close and remove the directory (DeleteTopics), and its log start offset checkpoint entry.
    pub async fn delete(&self) -> Result<(), LogError> {
        self.close().await?;
        checkpoint::checkpoint_log_start_offset(&self.dir, None)?;
        self.segments.borrow_mut().clear();
        std::fs::remove_dir_all(&self.dir).map_err(|e| LogError::io("remove_dir", &self.dir, e))
    }

    /// Advances the log start offset to `offset` (DeleteRecords, Kafka's
    /// `UnifiedLog.maybeIncrementLogStartOffset`): checkpointed in the log dir's
    /// `log-start-offset-checkpoint`, leader epochs below it dropped, then every non-active
    /// segment wholly below it deleted. `offset` must be at most the log end offset (the caller
    /// checks it against the high watermark); an offset at or below the current start changes
    /// nothing. Returns the log start offset (the low watermark).
    pub async fn delete_records(&self, offset: i64) -> Result<i64, LogError> {
        self.check_open()?;
        assert!(
            offset <= self.log_end_offset(),
            "invariant: DeleteRecords never moves the log start beyond the log end"
        );
        if offset <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        checkpoint::checkpoint_log_start_offset(&self.dir, Some(offset))?;
        self.log_start_offset.set(offset);
        self.epochs.borrow_mut().truncate_from_start(offset)?;
        // While the cleaner finishes a swap its renames own the segment files: the segments
        // below the new start go at the next retention check instead (reads below it already
        // answer OFFSET_OUT_OF_RANGE).
        if !self.swapping.get() {
            self.delete_segments_below_start().await?;
        }
        Ok(self.log_start_offset())
    }

    /// Records that leader epoch `epoch` starts at the log end offset (Kafka's
    /// `UnifiedLog.maybeAssignEpochStartOffset`, called when the partition's leader is elected).
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<(), LogError> {
        self.epochs
            .borrow_mut()
            .assign(epoch, self.log_end_offset())
    }

    /// `(leader_epoch, end_offset)` of `requested_epoch` ([`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, requested_epoch: i32) -> (i32, i64) {
        self.epochs
            .borrow()
            .end_offset_for(requested_epoch, self.log_end_offset())
    }

    /// The leader epoch `offset` was written in, if known (`LeaderEpochFileCache.epochForOffset`).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs.borrow().epoch_for_offset(offset)
    }

    /// Deletes the non-active segments whose records all lie below the log start offset
    /// (Kafka's `deleteLogStartOffsetBreachedSegments`).
    async fn delete_segments_below_start(&self) -> Result<(), LogError> {
        let start = self.log_start_offset();
        let deleted: Vec<Rc<LogSegment>> = {
            let mut segments = self.segments.borrow_mut();
            let below = segments[..segments.len() - 1]
                .iter()
                .take_while(|s| s.next_offset() <= start)
                .count();
            segments.drain(..below).collect()
        };
        assert!(
            !self.segments.borrow().is_empty(),
            "invariant: the active segment is never deleted"
        );
        if deleted.is_empty() {
            return Ok(());
        }
        self.drop_aborted_txns_below_first_segment();
        self.dir_changes.set(self.dir_changes.get() + 1);
        read_ahead::forget_log(self.read_ahead_id);
        for segment in &deleted {
            tracing::info!(path = %segment.log_path().display(), log_start_offset = start, "deleting segment below the log start offset");
            segment.delete_files().await?;
        }
        self.sync_dir().await
    }

    /// Records the aborted transaction `txn` (its ABORT marker at `txn.last_offset` already
    /// written): appended to the `.txnindex` of the segment holding the marker and fdatasynced,
    /// then kept in memory for [`Log::collect_aborted_transactions`].
    ///
    /// Errors: the index file cannot be written; [`LogError::Closed`].
    pub fn append_aborted_txn(&self, txn: AbortedTxn) -> Result<(), LogError> {
        self.check_open()?;
        assert!(
            txn.last_offset < self.log_end_offset() && txn.first_offset <= txn.last_offset,
            "invariant: an aborted transaction is indexed after its marker is written"
        );
        assert!(
            self.aborted_txns
                .borrow()
                .last()
                .is_none_or(|last| last.last_offset < txn.last_offset),
            "invariant: aborted transactions are indexed in marker order"
        );
        let base_offset = self.segment_base_of(txn.last_offset);
        txn_index::append_txn_index(
            &segment_file_path(&self.dir, base_offset, TXN_INDEX_FILE_SUFFIX),
            &txn,
        )?;
        self.aborted_txns.borrow_mut().push(txn);
        Ok(())
    }

    /// The aborted transactions a fetch of `[fetch_offset, upper_bound_offset)` must report
    /// (Kafka's `UnifiedLog.collectAbortedTransactions` / `TransactionIndex.collectAbortedTxns`).
    pub fn collect_aborted_transactions(
        &self,
        fetch_offset: i64,
        upper_bound_offset: i64,
    ) -> Vec<AbortedTxn> {
        txn_index::collect_aborted(
            &self.aborted_txns.borrow(),
            fetch_offset,
            upper_bound_offset,
        )
    }

    /// Every aborted transaction indexed, in marker order.
    pub fn aborted_txns(&self) -> Vec<AbortedTxn> {
        self.aborted_txns.borrow().clone()
    }

    /// A digest of the aborted-transaction index below `offset`, one (segment base offset,
    /// entries, CRC-32C of the entries' 34-byte encodings) per segment holding any, oldest
    /// first. A producer-state snapshot keeps the digest of the index below its offset, so
    /// opening can tell whether those entries are still the ones it was taken with.
    pub fn aborted_index_digest(&self, offset: i64) -> Vec<(i64, u32, u32)> {
        let mut digest: Vec<(i64, u32, u32)> = Vec::new();
        for txn in self.aborted_txns.borrow().iter() {
            if txn.last_offset >= offset {
                break;
            }
            let base = self.segment_base_of(txn.last_offset);
            let crc = |seed| crc32c::crc32c_append(seed, &txn.encode());
            match digest.last_mut() {
                Some((last, entries, sum)) if *last == base => {
                    *entries += 1;
                    *sum = crc(*sum);
                }
                _ => digest.push((base, 1, crc(0))),
            }
        }
        digest
    }

    /// Replaces the indexed aborted transactions with markers at or after `from_offset` by
    /// `rebuilt` (recovery rebuilt them from the log) and rewrites the `.txnindex` files of
    /// the segments from the one holding `from_offset` on.
    pub fn replace_aborted_txns_from(
        &self,
        from_offset: i64,
        mut rebuilt: Vec<AbortedTxn>,
    ) -> Result<(), LogError> {
        self.check_open()?;
        rebuilt.sort_by_key(|t| t.last_offset);
        let entries = {
            let mut entries = self.aborted_txns.borrow_mut();
            entries.retain(|t| t.last_offset < from_offset);
            entries.extend(rebuilt);
            assert!(
                entries
                    .windows(2)
                    .all(|w| w[0].last_offset < w[1].last_offset),
                "invariant: aborted transactions are indexed in marker order"
            );
            entries.clone()
        };
        let segments: Vec<(i64, i64)> = self
            .segments
            .borrow()
            .iter()
            .map(|s| (s.base_offset(), s.next_offset()))
            .collect();
        for (base_offset, next_offset) in segments {
            if next_offset <= from_offset && base_offset < from_offset {
                continue;
            }
            let own: Vec<AbortedTxn> = entries
                .iter()
                .filter(|t| t.last_offset >= base_offset && t.last_offset < next_offset)
                .copied()
                .collect();
            txn_index::write_txn_index(
                &segment_file_path(&self.dir, base_offset, TXN_INDEX_FILE_SUFFIX),
                &own,
            )?;
        }
        Ok(())
    }

    /// The batches of the `nth_from_end` segment (0: the active one), for rebuilding producer
    /// and transaction state; `None` past the first segment. Control batches are read and
    /// their marker decoded; a marker that does not decode is reported without one (warned).
    pub async fn segment_batches(
        &self,
        nth_from_end: usize,
    ) -> Result<Option<SegmentBatches>, LogError> {
        self.check_open()?;
        let segment = {
            let segments = self.segments.borrow();
            match segments.len().checked_sub(nth_from_end + 1) {
                Some(i) => segments[i].clone(),
                None => return Ok(None),
            }
        };
        let batches = segment_batches_from(&segment, 0, i64::MIN).await?;
        Ok(Some(SegmentBatches {
            base_offset: segment.base_offset(),
            batches,
        }))
    }

    /// Every batch with `base_offset >= offset`, oldest first, as [`Log::segment_batches`]
    /// gives them: for replaying producer and transaction state from a snapshot taken at
    /// `offset`. Reads from the indexed position at or below `offset` in the segment holding
    /// it, so only the bytes after the snapshot are read.
    pub async fn batches_from(
        &self,
        offset: i64,
    ) -> Result<Vec<(RecordBatchHeader, Option<(ControlRecordType, i32)>)>, LogError> {
        self.check_open()?;
        let segments: Vec<Rc<LogSegment>> = self
            .segments
            .borrow()
            .iter()
            .filter(|s| s.next_offset() > offset)
            .cloned()
            .collect();
        let mut batches = Vec::new();
        for segment in segments {
            let position = if segment.base_offset() <= offset {
                segment.index_position(offset)
            } else {
                0
            };
            batches.extend(segment_batches_from(&segment, position, offset).await?);
        }
        Ok(batches)
    }

    /// Whether a `.txnindex` was found torn (a partial or unknown entry) or with entries outside
    /// its segment when the log was opened: its aborted transactions are then to be rebuilt
    /// from the markers in the log ([`Log::replace_aborted_txns_from`]), as Kafka rebuilds a
    /// segment's indexes on a `CorruptIndexException` (`LogLoader`).
    pub fn txn_index_damaged(&self) -> bool {
        self.txn_index_damaged.get()
    }

    /// Base offset of the first (oldest) segment.
    pub fn first_segment_base_offset(&self) -> i64 {
        self.segments.borrow()[0].base_offset()
    }

    /// Base offset of the active (last) segment.
    pub fn active_segment_base_offset(&self) -> i64 {
        self.active_segment().base_offset()
    }

    /// Base offset of the segment holding `offset`.
    fn segment_base_of(&self, offset: i64) -> i64 {
        let segments = self.segments.borrow();
        let i = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        segments[i].base_offset()
    }

    /// Forgets aborted transactions whose markers were in deleted segments.
    fn drop_aborted_txns_below_first_segment(&self) {
        let first = self.segments.borrow()[0].base_offset();
        self.aborted_txns
            .borrow_mut()
            .retain(|t| t.last_offset >= first);
    }

    fn active_segment(&self) -> Rc<LogSegment> {
        self.segments
            .borrow()
            .last()
            .cloned()
            .expect("a log always has an active segment")
    }

    fn check_open(&self) -> Result<(), LogError> {
        if self.closed.get() {
            return Err(LogError::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Seals `active` and starts a segment at the log end offset (Kafka's `UnifiedLog.roll`).
    async fn roll(&self, active: &Rc<LogSegment>) -> Result<Rc<LogSegment>, LogError> {
        let base_offset = self.log_end_offset();
        assert!(
            base_offset > active.base_offset(),
            "invariant: only a non-empty active segment is rolled"
        );
        assert_eq!(
            active.next_offset(),
            base_offset,
            "invariant: a new segment starts where the active one ends"
        );
        {
            let _indexes = self
                .index_checkpoint
                .acquire_permit(1)
                .await
                .expect("invariant: the index checkpoint permit is never closed");
            active.seal().await?;
        }
        let config = self.config();
        let segment = Rc::new(LogSegment::create(&self.dir, base_offset, &config).await?);
        self.segments.borrow_mut().push(segment.clone());
        self.dir_changes.set(self.dir_changes.get() + 1);
        tracing::debug!(path = %segment.log_path().display(), "rolled new segment");
        Ok(segment)
    }

    /// fsync of the directory when segment files were created or deleted since the last one
    /// finished; covers every change made before the call.
    async fn sync_dir(&self) -> Result<(), LogError> {
        let target = self.dir_changes.get();
        if self.dir_changes_synced.get() >= target {
            return Ok(());
        }
        let dir = glommio::io::Directory::open(&self.dir)
            .await
            .map_err(|e| LogError::io("open_dir", &self.dir, e))?;
        dir.sync()
            .await
            .map_err(|e| LogError::io("fsync_dir", &self.dir, e))?;
        dir.close()
            .await
            .map_err(|e| LogError::io("close_dir", &self.dir, e))?;
        self.dir_changes_synced
            .set(self.dir_changes_synced.get().max(target));
        assert!(
            self.dir_changes_synced.get() <= self.dir_changes.get(),
            "invariant: a directory sync covers only changes already made"
        );
        Ok(())
    }
}

/// The batches of `segment` from file `position` on whose base offset is at least
/// `min_offset`, each with its decoded marker when it is a control batch (a marker that does
/// not decode is warned about and reported without one).
async fn segment_batches_from(
    segment: &LogSegment,
    position: u64,
    min_offset: i64,
) -> Result<Vec<(RecordBatchHeader, Option<(ControlRecordType, i32)>)>, LogError> {
    let mut found = Vec::new();
    segment
        .find_batch(position, |h| {
            found.push(*h);
            false
        })
        .await?;
    let mut batches = Vec::with_capacity(found.len());
    let mut position = position;
    for header in found {
        let size = header.size_bytes() as u64;
        if header.base_offset < min_offset {
            position += size;
            continue;
        }
        let marker = if header.is_control() {
            let bytes = segment.read_batch(position, &header).await?;
            match control_record::parse_control_batch(&bytes) {
                Ok(marker) => marker,
                Err(e) => {
                    tracing::warn!(path = %segment.log_path().display(), offset = header.base_offset, "undecodable control batch: {e}");
                    None
                }
            }
        } else {
            None
        };
        position += size;
        batches.push((header, marker));
    }
    Ok(batches)
}

/// The producer-state snapshots in `dir` as (offset, path), oldest first; temporary files and
/// names that do not parse are left out.
fn list_producer_snapshots(dir: &Path) -> Result<Vec<(i64, PathBuf)>, LogError> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("read_dir", dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| LogError::io("read_dir", dir, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let offset = name.as_deref().and_then(|n| {
            let (stem, suffix) = n.split_once('.')?;
            (suffix == PRODUCER_SNAPSHOT_SUFFIX)
                .then(|| stem.parse::<i64>().ok())
                .flatten()
        });
        if let Some(offset) = offset {
            found.push((offset, path));
        }
    }
    found.sort();
    Ok(found)
}

/// At open: removes leftover temporary snapshot files, snapshots beyond `log_end_offset` (the
/// log was truncated below them, so they describe batches no longer there; Kafka's
/// `ProducerStateManager.truncateAndReload`) and snapshots below `first_base_offset` (the
/// batches after them up to the first segment are gone, so they cannot be replayed from).
fn prune_producer_snapshots(
    dir: &Path,
    first_base_offset: i64,
    log_end_offset: i64,
) -> Result<(), LogError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("read_dir", dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| LogError::io("read_dir", dir, e))?.path();
        let temporary = path
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .ends_with(&format!("{PRODUCER_SNAPSHOT_SUFFIX}.tmp"))
            })
            .unwrap_or(false);
        if temporary {
            std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, e))?;
        }
    }
    for (offset, path) in list_producer_snapshots(dir)? {
        if offset > log_end_offset || offset < first_base_offset {
            tracing::info!(path = %path.display(), log_end_offset, first_base_offset, "removing a producer-state snapshot outside the log");
            std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, e))?;
        }
    }
    Ok(())
}

/// The aborted transactions in the `.txnindex` files of `segments`, in marker order, and
/// whether any file was damaged: a torn or unknown entry (the file's length is not a multiple
/// of [`ABORTED_TXN_BYTES`] or an entry stopped the read) or entries outside their segment
/// (past a recovered log end). Such entries are dropped and the file rewritten; the caller
/// rebuilds the lost ones from the log's markers (`partition::load_producers`).
fn load_aborted_txns(
    dir: &Path,
    segments: &[segment::LogSegment],
) -> Result<(Vec<AbortedTxn>, bool), LogError> {
    let mut all = Vec::new();
    let mut damaged = false;
    for segment in segments {
        let path = segment_file_path(dir, segment.base_offset(), TXN_INDEX_FILE_SUFFIX);
        let entries = txn_index::read_txn_index(&path)?;
        let file_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        let torn = file_bytes != (entries.len() * ABORTED_TXN_BYTES) as u64;
        let kept: Vec<AbortedTxn> = entries
            .iter()
            .filter(|t| {
                t.last_offset >= segment.base_offset()
                    && t.last_offset < segment.next_offset()
                    && t.first_offset <= t.last_offset
            })
            .copied()
            .collect();
        if kept.len() != entries.len() || torn {
            tracing::warn!(path = %path.display(), dropped = entries.len() - kept.len(), torn, "damaged transaction index: dropping its bad entries, rebuilding from the log's markers");
            txn_index::write_txn_index(&path, &kept)?;
            damaged = true;
        }
        all.extend(kept);
    }
    all.sort_by_key(|t| t.last_offset);
    all.dedup_by_key(|t| t.last_offset);
    Ok((all, damaged))
}

/// Rejects settings the on-disk format cannot hold.
fn validate_config(dir: &Path, config: &LogConfig) -> Result<(), LogError> {
    let invalid = |reason: String| {
        Err(LogError::InvalidConfig {
            path: dir.to_path_buf(),
            reason,
        })
    };
    if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&config.segment_bytes) {
        return invalid(format!(
            "segment.bytes {} outside [{SEGMENT_BYTES_MIN}, {SEGMENT_BYTES_MAX}]",
            config.segment_bytes
        ));
    }
    if config.segment_index_bytes < OFFSET_INDEX_ENTRY_BYTES.max(TIME_INDEX_ENTRY_BYTES) as u64 {
        return invalid(format!(
            "segment.index.bytes {} too small",
            config.segment_index_bytes
        ));
    }
    Ok(())
}

/// Asserts the caller's side of the append contract: headers are non-empty, start at the log
/// end offset, are contiguous, and tile `chunk` exactly.
fn check_chunk(chunk: &[u8], headers: &[RecordBatchHeader], log_end_offset: i64) {
    assert!(
        !headers.is_empty(),
        "invariant: an append holds at least one batch"
    );
    let mut expected = log_end_offset;
    let mut position = 0usize;
    for header in headers {
        assert_eq!(
            header.base_offset, expected,
            "invariant: offsets are contiguous (each batch starts at the previous one's next)"
        );
        assert!(
            header.last_offset_delta >= 0,
            "invariant: a batch's last offset is not below its base offset"
        );
        assert!(
            header.size_bytes() >= RECORD_BATCH_HEADER_BYTES,
            "invariant: a batch is at least a header long"
        );
        assert!(
            chunk.len() >= position + header.size_bytes(),
            "invariant: the chunk holds every batch its headers describe"
        );
        assert_eq!(
            &chunk[position..position + 8],
            &header.base_offset.to_be_bytes(),
            "invariant: the chunk's bytes carry the assigned base offset"
        );
        expected = header.next_offset();
        position += header.size_bytes();
    }
    assert_eq!(
        position,
        chunk.len(),
        "invariant: the headers tile the chunk exactly"
    );
}

/// Asserts what [`Log::read`] promises about `bytes` read for `offset` (invariant: fetch returns
/// whole batches, never past the high watermark): they start at a batch boundary with the batch
/// that holds `offset`, every batch is whole and ends at or below `max_offset`, and only the
/// first may exceed `max_bytes` (KIP-74). The walk over every batch is a `debug_assert!` (one
/// header parse per batch on the fetch path); the first batch is always checked. The
/// partition's tail cache answers are checked with it too.
pub(crate) fn assert_read(bytes: &[u8], offset: i64, max_bytes: usize, max_offset: i64) {
    if bytes.is_empty() {
        return;
    }
    let first = RecordBatchHeader::parse(bytes);
    assert!(
        first.is_ok(),
        "invariant: a read starts at a batch boundary: {first:?}"
    );
    let first = first.expect("checked above");
    assert!(
        first.last_offset() >= offset,
        "invariant: a read starts with the batch holding the fetch offset"
    );
    assert!(
        first.next_offset() <= max_offset,
        "invariant: a read ends at or below the high watermark"
    );
    assert!(
        bytes.len() <= max_bytes.max(first.size_bytes()),
        "invariant: only the first batch of a read may exceed max_bytes"
    );
    debug_assert!(
        whole_batches_below(bytes, max_offset),
        "invariant: a read holds whole batches ending at or below the high watermark"
    );
}

/// True when `bytes` are whole batches, each ending at or below `max_offset`.
fn whole_batches_below(bytes: &[u8], max_offset: i64) -> bool {
    let mut iter = BatchIter::new(bytes);
    let all_below = iter.by_ref().all(|(_, h)| h.next_offset() <= max_offset);
    all_below && iter.error().is_none() && iter.valid_bytes() == bytes.len()
}

/// Asserts the segment list's shape (invariant): never empty, sorted by base offset, and each
/// segment starting at the previous one's next offset.
fn assert_contiguous_segments(segments: &[segment::LogSegment]) {
    assert!(
        !segments.is_empty(),
        "invariant: a log always has an active segment"
    );
    for pair in segments.windows(2) {
        assert!(
            pair[0].base_offset() < pair[1].base_offset(),
            "invariant: segments are sorted by base offset"
        );
        assert_eq!(
            pair[0].next_offset(),
            pair[1].base_offset(),
            "invariant: each segment starts at the previous one's next offset"
        );
    }
}

#[cfg(test)]
mod tests;
